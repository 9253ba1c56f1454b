"""replica-conf and ro-replica-conf on PostgreSQL, against a real hot standby of the test server
(``scripts/pg-server standby start``: pg_basebackup -R on 127.0.0.1:15433)."""
import os
import re
import subprocess
import time

import psycopg2
import pytest
import transaction
import ZODB
from BTrees.Length import Length
from persistent.mapping import PersistentMapping
from ZODB.POSException import ReadConflictError

import gorelstorage
from gorelstorage.testing import count_through_failover
from gorelstorage.testing import wait_for_replay
from databases import PostgreSQLDatabase

PRIMARY_PORT = 15432
ROOT = b'\0' * 8


@pytest.fixture
def servers(tmp_path):
    """(primary DSN, standby DSN, standby port); the standby is removed and the primary running
    again afterwards."""
    reason = PostgreSQLDatabase.skip_reason or PostgreSQLDatabase.restart_skip_reason()
    if reason:
        pytest.skip(reason)
    db = PostgreSQLDatabase(str(tmp_path))
    primary = db.location(True)
    ctl = os.environ['GORELSTORAGE_PG_CTL']
    port = int(os.environ.get('GORELSTORAGE_PG_STANDBY_PORT', '15433'))
    subprocess.run([ctl, 'standby', 'start'], check=True, timeout=120)
    paused = []
    try:
        yield primary, re.sub(r'port=\d+', 'port=%d' % port, primary), port, paused
    finally:
        subprocess.run([ctl, 'standby', 'stop'], check=True, timeout=120)
        if paused:
            subprocess.run([ctl, 'resume'], check=True, timeout=120)
        _sql(primary, 'ALTER SYSTEM RESET synchronous_standby_names', 'ALTER SYSTEM RESET synchronous_commit',
             'SELECT pg_reload_conf()')


def _sql(dsn, *statements):
    """Runs each statement on its own (ALTER SYSTEM refuses a transaction block); returns the
    last one's rows."""
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def _seed(primary, standby, **root):
    """Commits root's items on the primary and waits for the standby to replay them."""
    db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(primary)))
    with db.transaction() as conn:
        conn.root().update(root)
    db.close()
    wait_for_replay(primary, standby, 30)


def _conf(tmp_path, name, *ports):
    path = tmp_path / name
    path.write_text(''.join('127.0.0.1:%d\n' % p for p in ports))
    return str(path)


def _ours(dsn):
    """Our connections to dsn's server and database (application_name gorelstorage)."""
    name = re.search(r'dbname=(\S+)', dsn).group(1)
    return _sql(dsn, "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'gorelstorage' "
                     "AND datname = '%s'" % name)[0][0]


def test_ro_replica_conf_sends_loads_to_the_standby(servers, tmp_path):
    primary, standby, port, _ = servers
    _seed(primary, standby, x=PersistentMapping(v=1))

    storage = gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(primary),
                                        ro_replica_conf=_conf(tmp_path, 'ro', port))
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 1
            assert _ours(standby) >= 1, 'the load connection is on the standby'
            conn.root()['x']['v'] = 2  # commits go to the primary (no replica-conf)
        wait_for_replay(primary, standby, 30)
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 2
    finally:
        db.close()


def test_a_failed_first_entry_sends_connections_to_the_next_and_back_after_replica_timeout(
        servers, tmp_path):
    """ro-replica-conf primary, standby: with the primary down, loads go to the standby; once
    it is back and replica-timeout has passed, new connections go to the primary again."""
    primary, standby, port, paused = servers
    _seed(primary, standby, x=PersistentMapping(v=1))
    ctl = os.environ['GORELSTORAGE_PG_CTL']

    conf = _conf(tmp_path, 'ro', PRIMARY_PORT, port)
    storage = gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(primary + ' connect_timeout=2'),
                                        ro_replica_conf=conf, replica_timeout=1)
    try:
        assert storage.load(ROOT)  # from the primary, the first entry
        storage.release()
        subprocess.run([ctl, 'pause'], check=True, timeout=120)
        paused.append(True)
        inst = storage.new_instance()
        try:
            inst.load(ROOT)
        except gorelstorage.DisconnectedError:
            pass  # the pooled connection to the primary is found broken: retryable
        assert inst.load(ROOT), 'the next connection went to the standby'
        assert _ours(standby) >= 1
        inst.release()
        subprocess.run([ctl, 'resume'], check=True, timeout=120)
        paused.clear()
        time.sleep(1.2)  # replica-timeout
        fresh = storage.new_instance()
        assert fresh.load(ROOT)
        assert _ours(primary) >= 1, 'back on the first entry'
        fresh.release()
    finally:
        storage.close()


def test_failover_to_the_promoted_standby_loses_no_commit(servers, tmp_path):
    """replica-conf primary, standby, synchronous replication: a counter incremented with
    retries while the primary stops and the standby is promoted in the middle. Every commit
    reported is in the new primary; a commit whose outcome could not be known (its server went
    away before answering) is counted apart, and the counter lies between the two."""
    primary, standby, port, paused = servers
    _sql(primary, "ALTER SYSTEM SET synchronous_standby_names = '*'",
         "ALTER SYSTEM SET synchronous_commit = 'remote_apply'", 'SELECT pg_reload_conf()')
    _seed(primary, standby, n=Length(0))

    conf = _conf(tmp_path, 'rw', PRIMARY_PORT, port)
    storage = gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(primary + ' connect_timeout=2'),
                                        replica_conf=conf, commit_lock_timeout=10)
    db = ZODB.DB(storage)
    ctl = os.environ['GORELSTORAGE_PG_CTL']

    def fail_over():
        time.sleep(0.5)
        subprocess.run([ctl, 'pause'], check=True, timeout=120)
        paused.append(True)
        subprocess.run([ctl, 'standby', 'promote'], check=True, timeout=120)

    counts = count_through_failover(db, fail_over)
    assert counts['ok'] >= 200, counts
    # The new primary (the promoted standby) holds every reported commit.
    check = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(standby)))
    try:
        with check.transaction() as c:
            n = c.root()['n']()
    finally:
        check.close()
    print('failover: counter %d, %s' % (n, counts))  # pytest -s shows it
    assert counts['ok'] <= n <= counts['ok'] + counts['unknown'], (n, counts)
    # The transaction in flight when the primary stopped failed retryably or, when the primary
    # went away with its COMMIT unanswered, as of unknown outcome (the old primary cannot be
    # asked); either way it is counted.
    assert counts['retried'] + counts['unknown'] >= 1, 'the failover cut at least one transaction'


@pytest.mark.parametrize('revert', [False, True], ids=['raise', 'revert'])
def test_a_replica_behind_raises_or_with_revert_when_stale_goes_on(servers, tmp_path, revert):
    """Loads from a standby whose replay is paused, commits on the primary: the snapshot after
    the connection's own commit is older than what it saw. Without revert-when-stale that is a
    ReadConflictError; with it, the connection goes on from the older state, and sees the new
    one once the standby catches up."""
    primary, standby, port, _ = servers
    _seed(primary, standby, x=PersistentMapping(v=1))

    storage = gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(primary),
                                        ro_replica_conf=_conf(tmp_path, 'ro', port), revert_when_stale=revert)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 1
        _sql(standby, 'SELECT pg_wal_replay_pause()')
        with db.transaction() as conn:
            conn.root()['x']['v'] = 2  # on the primary; the standby does not replay it
        tm = transaction.TransactionManager()
        if not revert:
            with pytest.raises(ReadConflictError, match='went back in time'):
                for _ in range(2):  # the poll after the commit's own still sees it
                    conn = db.open(tm)
                    tm.begin()
                    conn.root()['x']['v']
                    tm.abort()
                    conn.close()
            conn.close()
        else:
            for _ in range(2):
                conn = db.open(tm)
                tm.begin()
                assert conn.root()['x']['v'] == 1, 'the standby\'s state, older than the commit'
                tm.abort()
                conn.close()
        _sql(standby, 'SELECT pg_wal_replay_resume()')
        wait_for_replay(primary, standby, 30)
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 2
    finally:
        db.close()
