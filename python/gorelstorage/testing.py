"""Reaching and emptying the databases that the tests and ``gorelstorage bench`` run on.
Everything in them goes: a database given to zap must be one made for that."""
import os
import shutil

from .zodburi import mysql_params


def zap(database, location):
    """Empty a database wholly: ``sqlite`` (a data-dir), ``postgresql`` (a DSN: the public
    schema and every large object) or ``mysql`` (a ``gomysql://`` URI: every table, view,
    procedure and function, RelStorage's among them)."""
    if database == 'sqlite':
        shutil.rmtree(location, ignore_errors=True)
        os.makedirs(location)
    elif database == 'postgresql':
        import psycopg2
        conn = psycopg2.connect(location)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute('SELECT lo_unlink(oid) FROM pg_largeobject_metadata')
                cur.execute('DROP SCHEMA public CASCADE')
                cur.execute('CREATE SCHEMA public')
        finally:
            conn.close()
    elif database == 'mysql':
        conn = mysql_connect(location)
        try:
            with conn.cursor() as cur:
                cur.execute('SET FOREIGN_KEY_CHECKS = 0')
                cur.execute('SELECT table_name, table_type FROM information_schema.tables '
                            'WHERE table_schema = DATABASE()')
                for name, kind in cur.fetchall():
                    cur.execute('DROP %s `%s`' % ('VIEW' if kind == 'VIEW' else 'TABLE', name))
                cur.execute('SELECT routine_name, routine_type FROM information_schema.routines '
                            'WHERE routine_schema = DATABASE()')
                for name, kind in cur.fetchall():
                    cur.execute('DROP %s `%s`' % (kind, name))
                cur.execute('SET FOREIGN_KEY_CHECKS = 1')
        finally:
            conn.close()
    else:
        raise ValueError('no such test database kind: %r' % (database,))


def count_objects(database, location):
    """The objects in a history-preserving database (its current_object rows), counted:
    ``len(storage)`` is an estimate on PostgreSQL and on large MySQL tables."""
    query = 'SELECT COUNT(*) FROM current_object'
    if database == 'sqlite':
        import sqlite3
        conn = sqlite3.connect(os.path.join(location, 'main.sqlite3'))
    elif database == 'postgresql':
        import psycopg2
        conn = psycopg2.connect(location)
    else:
        conn = mysql_connect(location)
    try:
        cur = conn.cursor()
        cur.execute(query)
        return cur.fetchone()[0]
    finally:
        conn.close()


def mysql_connect(uri, **kw):
    """A PyMySQL connection, autocommitting, to the database a ``gomysql://`` URI names."""
    import pymysql
    p = mysql_params(uri)
    return pymysql.connect(host=p['host'], port=p['port'], user=p['user'], password=p['passwd'],
                           database=p['db'], autocommit=True, **kw)


def wait_for_replay(primary, standby, timeout):
    """Wait until the PostgreSQL hot standby (a DSN) has replayed everything the primary had
    written when called; RuntimeError after timeout seconds."""
    import time

    import psycopg2

    def value(dsn, query):
        conn = psycopg2.connect(dsn)
        try:
            with conn.cursor() as cur:
                cur.execute(query)
                return cur.fetchone()[0]
        finally:
            conn.close()
    # The insert position: with synchronous_commit off, a commit's record may not be written yet.
    lsn = value(primary, 'SELECT pg_current_wal_insert_lsn()::text')
    deadline = time.monotonic() + timeout
    while not value(standby, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn" % lsn):
        if time.monotonic() > deadline:
            raise RuntimeError('the standby did not replay %s within %s s' % (lsn, timeout))
        time.sleep(0.05)


def count_through_failover(db, fail_over, least=200, timeout=60):
    """Increment ``db``'s root ``n`` (a BTrees Length) one commit at a time, retrying, while
    ``fail_over()`` runs in a thread, and at least ``least`` times; close ``db``. Returns the
    counts: ``ok`` (reported commits), ``unknown`` (CommitOutcomeUnknownError), ``retried``
    (retryable failures)."""
    import threading
    import time

    import transaction
    from transaction.interfaces import TransientError
    from ZODB.POSException import ConflictError

    from . import CommitOutcomeUnknownError
    from . import DisconnectedError
    counts = {'ok': 0, 'retried': 0, 'unknown': 0}
    switch = threading.Thread(target=fail_over)
    switch.start()
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    deadline = time.monotonic() + timeout
    try:
        while (switch.is_alive() or counts['ok'] < least) and time.monotonic() < deadline:
            try:
                tm.begin()
                conn.root()['n'].change(1)
                tm.commit()
                counts['ok'] += 1
            except CommitOutcomeUnknownError:
                tm.abort()
                counts['unknown'] += 1
            except (TransientError, ConflictError, DisconnectedError):
                tm.abort()
                counts['retried'] += 1
                time.sleep(0.05)
        switch.join()
    finally:
        conn.close()
        db.close()
    return counts
