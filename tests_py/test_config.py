"""ZConfig and zodburi configuration."""
import os

import pytest
import transaction
import ZODB.config
import zodburi
from persistent.mapping import PersistentMapping

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
    with pytest.raises(gorelstorage.ConfigurationError, match='replica-conf must name a file'):
        ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'replica-conf %s' % (tmp_path / 'replicas')))
    (tmp_path / 'replicas').write_text('127.0.0.1:5432\n')
    with pytest.raises(gorelstorage.ConfigurationError, match='SQLite is embedded and has none'):
        ZODB.config.databaseFromString(_zconfig(tmp_path / 'data', 'replica-conf %s' % (tmp_path / 'replicas')))
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
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&blob_dir=%s&blob_cache_size=lots'
                                     % (tmp_path, tmp_path / 'blobs'))
    with pytest.raises(gorelstorage.ConfigurationError, match='blob-cache-size'):
        factory()


def test_zodburi_demostorage(tmp_path):
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&demostorage=true' % (tmp_path / 'd'))
    storage = factory()
    try:
        assert type(storage).__name__ == 'DemoStorage'
    finally:
        storage.close()
        transaction.abort()


def test_zconfig_blob_options(tmp_path):
    """RelStorage's blob keys, with their meanings: a cache of 10 MB checked every 20 %."""
    db = ZODB.config.databaseFromString(_zconfig(
        tmp_path / 'data', 'blob-dir %s\nblob-cache-size 10mb\nblob-cache-size-check 20\nblob-chunk-size 64kb'
        % (tmp_path / 'blobs')))
    try:
        storage = db.storage
        assert ZODB.interfaces.IBlobStorage.providedBy(storage)
        opts = storage._options
        assert (opts.blob_cache_size, opts.blob_cache_size_check, opts.blob_chunk_size) == (10 << 20, 20, 64 << 10)
        assert storage.temporaryDirectory() == str(tmp_path / 'blobs' / 'tmp')
        with open(tmp_path / 'blobs' / '.layout') as f:
            assert f.read() == 'zeocache'
    finally:
        db.close()


def test_zodburi_blob_options(tmp_path):
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&blob_dir=%s&shared_blob_dir=true'
                                     % (tmp_path / 'd', tmp_path / 'blobs'))
    storage = factory()
    try:
        assert storage._options.shared_blob_dir
        with open(tmp_path / 'blobs' / '.layout') as f:
            assert f.read() == 'bushy'
    finally:
        storage.close()


def test_blob_dir_of_the_other_kind_is_refused(tmp_path):
    """A shared blob directory holds the only copy of its blobs: opening it as a cache (which
    prunes) is refused, and the reverse too."""
    shared = gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'shared'),
                                       shared_blob_dir=True)
    shared.close()
    with pytest.raises(gorelstorage.ConfigurationError, match='shared-blob-dir true'):
        gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'shared'))
    cache = gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'cache'))
    cache.close()
    with pytest.raises(gorelstorage.ConfigurationError, match='shared-blob-dir false'):
        gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'cache'),
                                  shared_blob_dir=True)


def test_blob_option_values_are_checked(tmp_path):
    for bad, name in ((dict(blob_cache_size_check=0), 'blob-cache-size-check'),
                      (dict(blob_cache_size_check=100), 'blob-cache-size-check'),
                      (dict(blob_chunk_size=0), 'blob-chunk-size'),
                      (dict(blob_cache_size=-1), 'blob-cache-size')):
        with pytest.raises(gorelstorage.ConfigurationError, match=name):
            gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'b'), **bad)
    with pytest.warns(UserWarning, match='blob-cache-size is ignored with shared-blob-dir'):
        s = gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 's'),
                                      shared_blob_dir=True, blob_cache_size=1000)
    s.close()


def test_pack_options(tmp_path):
    """RelStorage's pack keys, with their meanings: pack-gc false keeps unreachable objects;
    the deprecated duty-cycle keys are accepted with a warning; zodburi reads them too."""
    with pytest.warns(FutureWarning, match='pack-commit-busy-delay'):
        db = ZODB.config.databaseFromString(_zconfig(
            tmp_path / 'data', 'pack-gc false\npack-batch-timeout 3.5\npack-commit-busy-delay 2'))
    try:
        opts = db.storage._options
        assert (opts.pack_gc, opts.pack_prepack_only, opts.pack_batch_timeout) == (False, False, 3.5)
        with db.transaction() as conn:
            conn.root()['x'] = PersistentMapping()
        with db.transaction() as conn:
            x = conn.root()['x']._p_oid
            del conn.root()['x']
        db.pack()
        assert db.storage.load(x)  # not collected
    finally:
        db.close()
    factory, _ = zodburi.resolve_uri('gosqlite://?data_dir=%s&pack_gc=false&pack_prepack_only=true'
                                     % (tmp_path / 'd2'))
    storage = factory()
    try:
        assert (storage._options.pack_gc, storage._options.pack_prepack_only) == (False, True)
    finally:
        storage.close()
