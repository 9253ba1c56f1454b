"""ZConfig and zodburi configuration."""
import os

import pytest
import transaction
import ZODB.config
import zodburi

import gorelstorage


def _zconfig(data_dir, extra='', adapter_extra='', imports=''):
    return """
    %s
    %%import gorelstorage
    <zodb>
      <gorelstorage>
        %s
        <gosqlite3>
          data-dir %s
          %s
        </gosqlite3>
      </gorelstorage>
    </zodb>
    """ % (imports, extra, data_dir, adapter_extra)


def test_zconfig_opens_a_working_database(tmp_path):
    db = ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'keep-history false\ncommit-lock-timeout 5'))
    try:
        storage = db.storage
        assert isinstance(storage, gorelstorage.GoRelStorage)
        assert not storage.supportsUndo()
        with db.transaction() as conn:
            conn.root()['x'] = 42
        with db.transaction() as conn:
            assert conn.root()['x'] == 42
    finally:
        db.close()


def test_zconfig_pragmas_reach_the_engine(tmp_path):
    """<gopragmas> as RelStorage reads <pragmas> (byte sizes become numbers of bytes); the
    engine runs them on each connection (engine/adapter/sqlite's TestPragmasRunOnEveryConnection)."""
    db = ZODB.config.databaseFromString(_zconfig(
        tmp_path / 'data', adapter_extra='<gopragmas>\ncache_size 2mb\njournal_size_limit 1000\n</gopragmas>'))
    try:
        assert db.storage._db.adapter.engine_dict()['pragmas'] == {'cache_size': '2097152', 'journal_size_limit': '1000'}
    finally:
        db.close()
    assert os.path.exists(tmp_path / 'data' / 'main.sqlite3')


def test_zconfig_rejects_an_option_this_build_lacks(tmp_path):
    with pytest.raises(gorelstorage.ConfigurationError, match='blob-dir'):
        ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'blob-dir %s' % (tmp_path / 'blobs')))
    with pytest.raises(gorelstorage.ConfigurationError, match='cache-servers'):
        ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'cache-servers localhost:11211'))


def test_zconfig_accepts_options_left_at_relstorage_defaults(tmp_path):
    db = ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'pack-gc true\ncache-local-mb 7'))
    try:
        assert db.storage.cache_stats()['limit'] == 7 * 1000 * 1000, 'cache-local-mb is in force'
        with db.transaction() as conn:
            conn.root()['x'] = 1
    finally:
        db.close()


def test_zconfig_sits_beside_relstorage(tmp_path):
    db = ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', imports='%import relstorage'))
    db.close()


def test_zconfig_data_dir_parent_must_exist(tmp_path):
    import ZConfig
    with pytest.raises(ZConfig.ConfigurationError):
        ZODB.config.databaseFromString(_zconfig(tmp_path / 'missing' / 'data'))


def test_zodburi_resolves_gosqlite(tmp_path):
    uri = 'gosqlite://?data_dir=%s&keep_history=false&commit_lock_timeout=7&database_name=main' \
        '&connection_cache_size=123' % (tmp_path / 'data')
    factory, dbkw = zodburi.resolve_uri(uri)
    assert dbkw['database_name'] == 'main'
    assert dbkw['cache_size'] == 123
    storage = factory()
    try:
        assert not storage.supportsUndo()
        db = ZODB.DB(storage, **dbkw)
        with db.transaction() as conn:
            conn.root()['y'] = 1
        db.close()
    finally:
        storage.close()


def test_zodburi_rejects_bad_values(tmp_path):
    with pytest.raises(gorelstorage.ConfigurationError, match='keep_history'):
        zodburi.resolve_uri('gosqlite://?data_dir=%s&keep_history=maybe' % tmp_path)
    with pytest.raises(gorelstorage.ConfigurationError, match='data directory'):
        zodburi.resolve_uri('gosqlite://?keep_history=true')
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&blob_dir=/tmp/b' % tmp_path)
    with pytest.raises(gorelstorage.ConfigurationError, match='blob-dir'):
        factory()


def test_zodburi_demostorage(tmp_path):
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&demostorage=true' % (tmp_path / 'd'))
    storage = factory()
    try:
        assert type(storage).__name__ == 'DemoStorage'
    finally:
        storage.close()
        transaction.abort()
