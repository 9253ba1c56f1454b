"""The Oracle adapter: configuration and the missing-client error run everywhere; the
rest needs a server (GORELSTORAGE_ORACLE_DSN and GORELSTORAGE_ORACLE_USER/PASSWORD).
The shared suites (conformance, storage API, interop, multi-process) run against
Oracle through databases.OracleDatabase when those are set."""
import warnings

import pytest
import ZODB.config
from ZODB.POSException import StorageError
from ZODB.utils import z64

import gorelstorage
from test_servers import commit_root
from databases import ORACLE_DSN
from databases import ORACLE_SKIP
from databases import OracleDatabase
from databases import oracle_connect

PASSWORD = 'not-the-Password-1'
CLIENT_MISSING = 'Oracle client libraries not found: install Oracle Instant Client'
needs_server = pytest.mark.skipif(OracleDatabase.skip_reason is not None, reason=ORACLE_SKIP)
needs_no_client = pytest.mark.skipif(bool(ORACLE_DSN), reason='GORELSTORAGE_ORACLE_DSN is set: this '
                                     'machine has Oracle client libraries')


# Without a client library (every machine CI runs on)

@needs_no_client
def test_open_without_client_libraries_says_what_to_install():
    adapter = gorelstorage.Oracle('zodb', PASSWORD, 'db.example.com:1521/ORCLPDB1')
    with pytest.raises(gorelstorage.ConfigurationError) as info:
        gorelstorage.GoRelStorage(adapter)
    assert isinstance(info.value, StorageError)
    message = str(info.value)
    assert CLIENT_MISSING in message and 'LD_LIBRARY_PATH' in message
    assert 'DPI-1047' in message and 'db.example.com:1521/ORCLPDB1' in message
    assert PASSWORD not in message
    # The process is fine and another storage opens.
    with pytest.raises(gorelstorage.ConfigurationError, match=CLIENT_MISSING):
        gorelstorage.GoRelStorage(adapter, keep_history=False)


@needs_no_client
def test_zconfig_and_zodburi_reach_the_same_error():
    with pytest.raises(gorelstorage.ConfigurationError, match=CLIENT_MISSING):
        ZODB.config.storageFromString("""
            %%import gorelstorage
            <gorelstorage>
              <gooracle>
                user zodb
                password %s
                dsn db.example.com/ORCLPDB1
                twophase true
              </gooracle>
            </gorelstorage>
        """ % PASSWORD)
    from zodburi import resolve_uri
    factory, dbkw = resolve_uri('gooracle://?dsn=db.example.com/X&user=zodb&password=%s&twophase=1'
                                '&keep_history=false&connection_cache_size=99' % PASSWORD)
    assert dbkw['cache_size'] == 99
    with pytest.raises(gorelstorage.ConfigurationError, match=CLIENT_MISSING) as info:
        factory()
    assert PASSWORD not in str(info.value)


def test_configuration_reaches_the_adapter():
    from gorelstorage.zodburi import oracle_adapter
    adapter, options, leftover = oracle_adapter('gooracle://?dsn=db/X&user=zodb&password=pw&twophase=1'
                                                '&commit_lock_timeout=7&database_name=main')
    assert (adapter.user, adapter.dsn, adapter.twophase) == ('zodb', 'db/X', True)
    assert options == {'commit_lock_timeout': '7'} and leftover == {'database_name': 'main'}
    assert adapter.engine_dict() == {'user': 'zodb', 'password': 'pw', 'dsn': 'db/X', 'twophase': True,
                                     'driver': 'auto'}
    config = ZODB.config.storageFromString  # the section's keys, through ZConfig's schema
    import ZConfig
    with pytest.raises(ZConfig.ConfigurationError, match='not a valid boolean'):
        config("""
            %import gorelstorage
            <gorelstorage>
              <gooracle>
                user zodb
                password pw
                dsn db/X
                twophase perhaps
              </gooracle>
            </gorelstorage>
        """)


def test_bad_arguments_are_refused_by_name():
    with pytest.raises(gorelstorage.ConfigurationError, match='no dsn'):
        gorelstorage.Oracle('zodb', 'pw', '')
    with pytest.raises(gorelstorage.ConfigurationError, match='no user'):
        gorelstorage.Oracle('', 'pw', 'db/X')
    with pytest.raises(gorelstorage.ConfigurationError, match='oracle password must be a string'):
        gorelstorage.Oracle('zodb', None, 'db/X')
    with pytest.raises(gorelstorage.ConfigurationError, match="driver 'oci8' is not available"):
        gorelstorage.Oracle('zodb', 'pw', 'db/X', driver='oci8')
    from zodburi import resolve_uri
    with pytest.raises(gorelstorage.ConfigurationError, match='gooracle URI needs dsn'):
        resolve_uri('gooracle://?user=zodb&password=pw')
    with pytest.raises(gorelstorage.ConfigurationError, match='gooracle URIs take no data_dir'):
        resolve_uri('gooracle://?dsn=db/X&user=zodb&data_dir=/tmp')
    with pytest.raises(gorelstorage.ConfigurationError, match='twophase must be true or false'):
        resolve_uri('gooracle://?dsn=db/X&user=zodb&twophase=maybe')
    import ZConfig
    with pytest.raises(ZConfig.ConfigurationError, match='password'):
        ZODB.config.storageFromString("""
            %import gorelstorage
            <gorelstorage>
              <gooracle>
                user zodb
                dsn db/X
              </gooracle>
            </gorelstorage>
        """)


def test_repr_hides_the_password():
    adapter = gorelstorage.Oracle('zodb', PASSWORD, 'db/X', twophase=True)
    assert PASSWORD not in repr(adapter)
    assert repr(adapter) == "Oracle(user='zodb', dsn='db/X', twophase=True)"


def test_commit_lock_id_is_accepted_and_has_no_effect_as_in_relstorage():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        gorelstorage.Options(commit_lock_id=0)
        assert not caught
        options = gorelstorage.Options(commit_lock_id=7)
    assert [str(w.message) for w in caught] == ['option commit-lock-id is ignored (as RelStorage ignores it)']
    assert 'commit_lock_id' not in options.engine_dict()


# With a server

@needs_server
def test_wrong_password_is_a_clear_error_without_the_password():
    user = OracleDatabase.credentials(OracleDatabase('').location(True))[0]
    with pytest.raises(gorelstorage.ConfigurationError, match='authentication failed') as info:
        gorelstorage.GoRelStorage(gorelstorage.Oracle(user, PASSWORD, ORACLE_DSN))
    assert PASSWORD not in str(info.value)


@needs_server
@pytest.mark.parametrize('keep_history', [True, False])
def test_schema_has_relstorages_objects(keep_history):
    db = OracleDatabase('')
    location = db.location(keep_history)
    db.open_go(location, keep_history).close()
    conn = oracle_connect(*OracleDatabase.credentials(location))
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT LOWER(object_name) FROM user_objects WHERE object_type IN "
                        "('TABLE', 'VIEW', 'SEQUENCE', 'PACKAGE')")
            names = {name for (name,) in cur}
            cur.execute("SELECT text FROM user_source WHERE type = 'PACKAGE BODY' AND name = 'RELSTORAGE_OP'")
            body = ''.join(text for (text,) in cur)
            cur.execute('SELECT tid FROM commit_row_lock')
            assert cur.fetchall() == [(0,)]
    finally:
        conn.close()
    assert {'commit_row_lock', 'pack_lock', 'object_state', 'blob_chunk', 'zoid_seq', 'relstorage_op',
            'temp_store'} <= names
    assert ('transaction' in names) == keep_history and ('current_object_state' in names) == keep_history
    assert 'Version: 1.5A' in body
    with pytest.raises(gorelstorage.ConfigurationError, match='keep-history'):
        db.open_go(location, not keep_history)


@needs_server
@pytest.mark.parametrize('twophase', [False, True])
@pytest.mark.parametrize('keep_history', [True, False])
def test_commits_and_reads_back(keep_history, twophase):
    db = OracleDatabase('')
    location = db.location(keep_history)
    user, password = OracleDatabase.credentials(location)
    storage = gorelstorage.GoRelStorage(gorelstorage.Oracle(user, password, ORACLE_DSN, twophase=twophase),
                                        keep_history=keep_history)
    try:
        for value in (b'small', b'x' * 100000, b'y' * 3000):  # a state past RAW's 32767 bytes, then back
            commit_root(storage, value)
            assert storage.load(z64)[0] == value
    finally:
        storage.close()
