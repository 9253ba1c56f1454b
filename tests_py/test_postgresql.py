"""PostgreSQL specifics: configuration, bad input, server restarts and the
schema RelStorage creates. Runs against the server scripts/pg-server starts."""
import os
import re
import subprocess
import time

import pytest
import ZODB
import ZODB.config
from ZODB.POSException import StorageError

import gorelstorage
from databases import PG_DSN
from databases import PostgreSQLDatabase

pytestmark = pytest.mark.skipif(not PG_DSN, reason=PostgreSQLDatabase.skip_reason or '')

PASSWORD = re.search(r'password=(\S+)', PG_DSN).group(1) if PG_DSN else None


def _dsn(**changes):
    dsn = PG_DSN
    for key, value in changes.items():
        if re.search(r'\b%s=\S+' % key, dsn):
            dsn = re.sub(r'\b%s=\S+' % key, '%s=%s' % (key, value), dsn)
        else:
            dsn += ' %s=%s' % (key, value)
    return dsn


@pytest.fixture
def dsn():
    db = PostgreSQLDatabase('')
    return db.location(True)  # empty, history-preserving database "gorelstorage"


def _open_error(dsn, **options):
    with pytest.raises(StorageError) as info:
        gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(dsn), **options)
    message = str(info.value)
    assert PASSWORD not in message
    assert PASSWORD not in repr(info.value)
    return message


def test_wrong_password_is_a_clear_error_without_the_password(dsn):
    message = _open_error(_dsn(password='not-the-password'))
    assert 'authentication failed' in message
    assert 'not-the-password' not in message


def test_unreachable_host_fails_within_the_connect_timeout():
    start = time.monotonic()
    # A TEST-NET-1 address (RFC 5737): routed nowhere, so the connection attempt hangs.
    message = _open_error(_dsn(host='192.0.2.1', connect_timeout=2))
    assert time.monotonic() - start < 10
    assert 'cannot connect' in message and '192.0.2.1' in message


def test_closed_port_fails_at_once():
    message = _open_error(_dsn(port=1))
    assert 'cannot connect' in message


def test_missing_database():
    message = _open_error(_dsn(dbname='no_such_database'))
    assert 'does not exist' in message and 'no_such_database' in message


def test_create_schema_off_on_an_empty_database(dsn):
    message = _open_error(dsn, create_schema=False)
    assert 'has no RelStorage schema and create-schema is off' in message
    # and nothing was created
    gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(dsn)).close()


def test_history_mode_that_does_not_match(dsn):
    gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(dsn), keep_history=True).close()
    message = _open_error(dsn, keep_history=False)
    assert 'history-preserving but keep-history is false' in message


def test_bad_dsn_and_driver():
    with pytest.raises(gorelstorage.ConfigurationError, match='dsn must be a string'):
        gorelstorage.PostgreSQL(None)
    with pytest.raises(gorelstorage.ConfigurationError, match='driver'):
        gorelstorage.PostgreSQL(PG_DSN, driver='libpq-magic')
    message = _open_error('host=127.0.0.1 port=notaport password=%s' % PASSWORD)
    assert 'dsn' in message


def test_repr_hides_the_password(dsn):
    adapter = gorelstorage.PostgreSQL(dsn)
    assert PASSWORD not in repr(adapter) and 'password=***' in repr(adapter)
    assert PASSWORD not in repr(gorelstorage.PostgreSQL('postgresql://u:%s@h/db' % PASSWORD))
    storage = gorelstorage.GoRelStorage(adapter)
    try:
        assert PASSWORD not in repr(storage) and PASSWORD not in storage.getName()
        assert PASSWORD not in storage.sortKey()
    finally:
        storage.close()


def test_zconfig_gopostgresql():
    hf_dsn = PostgreSQLDatabase('').location(False)
    db = ZODB.config.databaseFromString("""
        %%import gorelstorage
        <zodb>
          <gorelstorage>
            keep-history false
            <gopostgresql>
              dsn %s
              driver psycopg2
            </gopostgresql>
          </gorelstorage>
        </zodb>
    """ % hf_dsn)
    try:
        with db.transaction() as conn:
            conn.root()['x'] = 1
        with db.transaction() as conn:
            assert conn.root()['x'] == 1
        assert not db.storage.supportsUndo()
    finally:
        db.close()


def test_zodburi_gopostgres(dsn):
    from zodburi import resolve_uri
    m = re.search(r'host=(\S+) port=(\S+) user=(\S+) password=(\S+) dbname=(\S+)', PG_DSN)
    host, port, user, password, _ = m.groups()
    uri = 'gopostgres://%s:%s@%s:%s/gorelstorage?connect_timeout=5&keep_history=true&connection_cache_size=1234' % (
        user, password, host, port)
    factory, dbkw = resolve_uri(uri)
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


# Restarts

# Schema

def _pg_schema(dsn):
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        cur = conn.cursor()
        out = {}
        cur.execute("""SELECT table_name, column_name, data_type, character_maximum_length, is_nullable,
                              column_default
                       FROM information_schema.columns WHERE table_schema = 'public'
                       ORDER BY table_name, ordinal_position""")
        out['columns'] = cur.fetchall()
        cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = 'public' ORDER BY indexname")
        out['indexes'] = cur.fetchall()
        cur.execute("""SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
                       WHERE connamespace = 'public'::regnamespace ORDER BY 1, 2""")
        out['constraints'] = cur.fetchall()
        cur.execute("""SELECT sequence_name, data_type, start_value, increment FROM information_schema.sequences
                       WHERE sequence_schema = 'public'""")
        out['sequences'] = cur.fetchall()
        cur.execute("SELECT viewname, definition FROM pg_views WHERE schemaname = 'public'")
        out['views'] = cur.fetchall()
        cur.execute("""SELECT tgname, tgrelid::regclass::text FROM pg_trigger
                       WHERE NOT tgisinternal ORDER BY tgname""")
        out['triggers'] = cur.fetchall()
        rows = {}
        for table in ('transaction', 'commit_row_lock'):
            cur.execute("SELECT to_regclass(%s)", (table,))
            if cur.fetchone()[0]:
                cur.execute('SELECT * FROM "%s" WHERE tid = 0' % table)
                rows[table] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in r)
                               for r in cur.fetchall()]
        out['rows'] = rows
        return out
    finally:
        conn.close()


@pytest.mark.parametrize('keep_history', [True, False], ids=['hp', 'hf'])
def test_schema_is_relstorages(keep_history):
    db = PostgreSQLDatabase('')
    go_dsn, rs_dsn = db.location(keep_history, 'main'), db.location(keep_history, 'second')
    gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(go_dsn), keep_history=keep_history).close()
    db.open_relstorage(rs_dsn, keep_history).close()
    go, rs = _pg_schema(go_dsn), _pg_schema(rs_dsn)
    for part in rs:
        assert go[part] == rs[part], part


def test_empty_dsn_uses_the_pg_environment_variables(dsn):
    """As in RelStorage, an empty dsn means libpq's defaults and PG* variables."""
    import sys
    fields = dict(part.split('=', 1) for part in dsn.split())
    env = dict(os.environ, PGHOST=fields['host'], PGPORT=fields['port'], PGUSER=fields['user'],
               PGPASSWORD=fields['password'], PGDATABASE=fields['dbname'])
    script = ('import gorelstorage, ZODB\n'
              'db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.PostgreSQL("")))\n'
              'print(sorted(db.open().root().keys()))\n')
    out = subprocess.run([sys.executable, '-c', script], env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == '[]'
