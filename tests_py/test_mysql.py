"""MySQL/MariaDB specifics: configuration, bad input, server restarts, the
schema RelStorage creates and its locks. Runs against the server
scripts/mariadb-server starts."""
import os
import re
import time

import pytest
import transaction
import ZODB
import ZODB.config
from BTrees.Length import Length
from ZODB.POSException import StorageError
from ZODB.utils import z64

import gorelstorage
from databases import MYSQL_URI
from databases import MySQLDatabase
from databases import mysql_connect
from databases import mysql_params
from test_servers import commit_root

pytestmark = pytest.mark.skipif(not MYSQL_URI, reason=MySQLDatabase.skip_reason or '')

PASSWORD = mysql_params(MYSQL_URI)['passwd'] if MYSQL_URI else None


@pytest.fixture
def uri():
    return MySQLDatabase('').location(True)  # empty, history-preserving database "gorelstorage"


def _adapter(uri, **changes):
    params = mysql_params(uri)
    params.update(changes)
    return gorelstorage.MySQL(**params)


def _open_error(adapter, **options):
    with pytest.raises(StorageError) as info:
        gorelstorage.GoRelStorage(adapter, **options)
    message = str(info.value)
    assert PASSWORD not in message
    assert PASSWORD not in repr(info.value)
    return message


def _tables(uri):
    conn = mysql_connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute('SHOW TABLES')
            return sorted(r[0] for r in cur.fetchall())
    finally:
        conn.close()


# Bad input

def test_wrong_password_is_a_clear_error_without_the_password(uri):
    message = _open_error(_adapter(uri, passwd='not-the-password'))
    assert 'authentication failed' in message
    assert 'not-the-password' not in message


def test_unreachable_host_fails_within_the_connect_timeout(uri):
    start = time.monotonic()
    # A TEST-NET-1 address (RFC 5737): routed nowhere, so the connection attempt hangs.
    message = _open_error(_adapter(uri, host='192.0.2.1', connect_timeout=2))
    assert time.monotonic() - start < 10
    assert 'cannot connect' in message and '192.0.2.1' in message


def test_closed_port_fails_at_once(uri):
    message = _open_error(_adapter(uri, port=1))
    assert 'cannot connect' in message


def test_missing_database(uri):
    message = _open_error(_adapter(uri, db='no_such_database'))
    assert 'does not exist' in message and 'no_such_database' in message


def test_create_schema_off_on_an_empty_database(uri):
    message = _open_error(_adapter(uri), create_schema=False)
    assert 'has no RelStorage schema and create-schema is off' in message
    assert _tables(uri) == []


def test_history_mode_that_does_not_match(uri):
    gorelstorage.GoRelStorage(_adapter(uri), keep_history=True).close()
    message = _open_error(_adapter(uri), keep_history=False)
    assert 'history-preserving but keep-history is false' in message


def test_bad_keywords_are_refused_by_name():
    with pytest.raises(gorelstorage.ConfigurationError, match="unknown or unsupported keyword 'colour'"):
        gorelstorage.MySQL(db='zodb', colour='red')
    with pytest.raises(gorelstorage.ConfigurationError, match='port must be a non-negative integer'):
        gorelstorage.MySQL(db='zodb', port='3306')
    with pytest.raises(gorelstorage.ConfigurationError, match='no database given'):
        gorelstorage.MySQL(host='localhost')
    with pytest.raises(gorelstorage.ConfigurationError, match='named_pipe is for Windows'):
        gorelstorage.MySQL(db='zodb', named_pipe=True)
    with pytest.raises(gorelstorage.ConfigurationError, match='driver'):
        gorelstorage.MySQL(db='zodb', driver='oursql')


def test_an_object_over_max_allowed_packet_is_refused_at_store(uri):
    """The server would drop the connection on a packet over max_allowed_packet;
    the object is refused when it is stored, before anything is written."""
    conn = mysql_connect(uri)
    with conn.cursor() as cur:
        cur.execute('SELECT @@max_allowed_packet')
        packet = cur.fetchone()[0]
    conn.close()
    db = ZODB.DB(gorelstorage.GoRelStorage(_adapter(uri)))
    try:
        with db.transaction() as c:
            c.root()['small'] = Length(1)
        tm = transaction.TransactionManager()
        c = db.open(tm)
        c.root()['small'].change(1)
        c.root()['big'] = b'x' * (packet + 1)
        with pytest.raises(StorageError) as info:
            tm.commit()
        message = str(info.value)
        assert 'max_allowed_packet' in message and str(packet) in message
        tm.abort()
        c.close()
        # Nothing of it was written, and the storage goes on working.
        with db.transaction() as c:
            assert c.root()['small']() == 1 and 'big' not in c.root()
            c.root()['small'].change(1)
            c.root()['fits'] = b'y' * (packet // 2)
        with db.transaction() as c:
            assert c.root()['small']() == 2 and len(c.root()['fits']) == packet // 2
    finally:
        db.close()


def test_repr_hides_the_password(uri):
    adapter = _adapter(uri)
    assert PASSWORD not in repr(adapter) and 'db=' in repr(adapter)
    storage = gorelstorage.GoRelStorage(adapter)
    try:
        assert PASSWORD not in repr(storage) and PASSWORD not in storage.getName()
        assert PASSWORD not in storage.sortKey()
    finally:
        storage.close()


# Configuration

def test_zconfig_gomysql():
    params = mysql_params(MySQLDatabase('').location(False))
    db = ZODB.config.databaseFromString("""
        %%import gorelstorage
        <zodb>
          <gorelstorage>
            keep-history false
            <gomysql>
              host %(host)s
              port %(port)s
              user %(user)s
              passwd %(passwd)s
              db %(db)s
              connect_timeout 5
              driver PyMySQL
            </gomysql>
          </gorelstorage>
        </zodb>
    """ % params)
    try:
        with db.transaction() as conn:
            conn.root()['x'] = 1
        with db.transaction() as conn:
            assert conn.root()['x'] == 1
        assert not db.storage.supportsUndo()
    finally:
        db.close()


def test_zodburi_gomysql(uri):
    from zodburi import resolve_uri
    factory, dbkw = resolve_uri(uri + '?connect_timeout=5&keep_history=true&connection_cache_size=1234')
    assert dbkw['cache_size'] == 1234
    storage = factory()
    try:
        assert PASSWORD not in repr(storage._db.adapter)
        db = ZODB.DB(storage)
        with db.transaction() as conn:
            conn.root()['uri'] = 'ok'
        db.close()
    finally:
        storage.close()
    with pytest.raises(gorelstorage.ConfigurationError, match='gomysql URIs take no data_dir'):
        resolve_uri(uri + '?data_dir=/tmp')


def test_option_file_supplies_what_the_configuration_leaves_out(uri, tmp_path):
    params = mysql_params(uri)
    cnf = tmp_path / 'my.cnf'
    cnf.write_text('[client]\nuser = nobody\npassword = wrong\n[zodb]\nhost = %(host)s\nport = %(port)s\n'
                   'user = %(user)s\npassword = "%(passwd)s"\ndatabase = %(db)s\n' % params)
    cnf.chmod(0o600)
    storage = gorelstorage.GoRelStorage(gorelstorage.MySQL(read_default_file=str(cnf), read_default_group='zodb'))
    try:
        commit_root(storage, b'from the option file')
        assert storage.load(z64)[0] == b'from the option file'
        assert PASSWORD not in storage.getName()
    finally:
        storage.close()


def test_unix_socket(uri):
    sock = os.environ.get('GORELSTORAGE_MYSQL_SOCKET', '')
    if not os.access(sock, os.R_OK | os.W_OK):
        pytest.skip('GORELSTORAGE_MYSQL_SOCKET is not set or not accessible to this user')
    params = mysql_params(uri)
    del params['host'], params['port']
    storage = gorelstorage.GoRelStorage(gorelstorage.MySQL(unix_socket=sock, **params))
    try:
        commit_root(storage, b'over the socket')
        assert 'unix_socket=' in storage.getName()
    finally:
        storage.close()


# Schema

def _my_schema(uri):
    conn = mysql_connect(uri)
    out = {}
    try:
        with conn.cursor() as cur:
            cur.execute('SHOW FULL TABLES')
            for name, kind in sorted(cur.fetchall()):
                cur.execute('SHOW CREATE TABLE `%s`' % name)
                ddl = cur.fetchone()[1]
                ddl = re.sub(r' AUTO_INCREMENT=\d+', '', ddl)
                ddl = re.sub(r' DEFINER=`[^`]*`@`[^`]*`', '', ddl)
                out[name] = (kind, ddl)
            rows = {}
            cur.execute('SELECT tid, packed, is_empty, username, description, extension FROM transaction'
                        if 'transaction' in out else 'SELECT 1 FROM DUAL WHERE FALSE')
            rows['transaction'] = cur.fetchall()
            cur.execute('SELECT tid FROM commit_row_lock')
            rows['commit_row_lock'] = cur.fetchall()
            out['rows'] = rows
    finally:
        conn.close()
    return out


@pytest.mark.parametrize('keep_history', [True, False], ids=['hp', 'hf'])
def test_schema_is_relstorages(keep_history):
    db = MySQLDatabase('')
    go_uri, rs_uri = db.location(keep_history, 'main'), db.location(keep_history, 'second')
    gorelstorage.GoRelStorage(_adapter(go_uri), keep_history=keep_history).close()
    db.open_relstorage(rs_uri, keep_history).close()
    go, rs = _my_schema(go_uri), _my_schema(rs_uri)
    assert sorted(go) == sorted(rs)
    for part in rs:
        assert go[part] == rs[part], part


def _wait_until_free(uri, lock):
    """The server releases a closed connection's named locks asynchronously."""
    conn = mysql_connect(uri)
    try:
        with conn.cursor() as cur:
            for _ in range(100):
                cur.execute('SELECT IS_FREE_LOCK(%s)' % lock)
                if cur.fetchone()[0] == 1:
                    return
                time.sleep(0.05)
    finally:
        conn.close()
    raise AssertionError('lock %s still held' % lock)


def test_undo_waits_for_no_pack(uri):
    """RelStorage's pack holds GET_LOCK('<db>.pack'); undo is refused meanwhile."""
    db = ZODB.DB(gorelstorage.GoRelStorage(_adapter(uri)))
    try:
        with db.transaction() as conn:
            conn.root()['n'] = 1
        with db.transaction() as conn:
            conn.root()['n'] = 2
        undo_id = db.undoLog(0, 1)[0]['id']
        holder = mysql_connect(uri)
        with holder.cursor() as cur:
            cur.execute("SELECT GET_LOCK(CONCAT(DATABASE(), '.pack'), 0)")
            assert cur.fetchone()[0] == 1
        try:
            tm = transaction.TransactionManager()
            db.undo(undo_id, tm.get())
            with pytest.raises(StorageError, match='a pack or undo operation is in progress'):
                tm.commit()
            tm.abort()
        finally:
            holder.close()
        _wait_until_free(uri, "CONCAT(DATABASE(), '.pack')")
        db.undo(undo_id)
        transaction.commit()
        with db.transaction() as conn:
            assert conn.root()['n'] == 1
    finally:
        db.close()
