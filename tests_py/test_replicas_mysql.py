"""replica-conf and ro-replica-conf on MariaDB, against a real replica of the test server
(``scripts/mariadb-server replica start``: seeded by mariadb-dump --master-data, replicating on
127.0.0.1:13307, read-only)."""
import os
import time

import pymysql
import pytest
import transaction
import ZODB
from BTrees.Length import Length
from persistent.mapping import PersistentMapping
from ZODB.POSException import ReadConflictError

import gorelstorage
from gorelstorage.testing import count_through_failover
from gorelstorage.zodburi import mysql_params
from databases import MySQLDatabase

ROOT = b'\0' * 8


class Servers:
    """The primary and the replica: their addresses, SQL on either, the server script."""

    def __init__(self, uri, replica_port):
        self.params = mysql_params(uri)
        self.primary_port = self.params['port']
        self.replica_port = replica_port
        self.ctl = os.environ[MySQLDatabase.ctl_env]
        self.paused = False

    def run(self, *args):
        import subprocess
        subprocess.run([self.ctl] + list(args), check=True, timeout=120)

    def sql(self, port, *statements):
        """Runs the statements on the server at port, outside any database; returns the last
        one's rows."""
        p = self.params
        conn = pymysql.connect(host='127.0.0.1', port=port, user=p['user'], password=p['passwd'],
                               autocommit=True)
        try:
            with conn.cursor() as cur:
                for statement in statements:
                    cur.execute(statement)
                return cur.fetchall()
        finally:
            conn.close()

    def storage(self, port=None, keep_history=True, **options):
        p = dict(self.params, port=port or self.primary_port, connect_timeout=2)
        if not keep_history:
            p['db'] += '_hf'
        return gorelstorage.GoRelStorage(gorelstorage.MySQL(**p), keep_history=keep_history, **options)

    def wait_for_replica(self, timeout=30):
        """Waits until the replica has applied everything the primary's binary log holds."""
        pos = self.sql(self.primary_port, 'SELECT @@gtid_binlog_pos')[0][0]
        done = self.sql(self.replica_port, "SELECT MASTER_GTID_WAIT('%s', %d)" % (pos, timeout))[0][0]
        if done != 0:
            raise RuntimeError('the replica did not apply %s within %s s' % (pos, timeout))

    def ours(self, port):
        """Our connections to the test database on the server at port."""
        return self.sql(port, "SELECT count(*) FROM information_schema.processlist "
                              "WHERE user = '%s' AND db = '%s'" % (self.params['user'], self.params['db']))[0][0]

    def conf(self, tmp_path, name, *ports):
        path = tmp_path / name
        path.write_text(''.join('127.0.0.1:%d\n' % p for p in ports))
        return str(path)

    def seed(self, keep_history=True, **root):
        """Commits root's items on the primary and waits for the replica to apply them."""
        db = ZODB.DB(self.storage(keep_history=keep_history))
        with db.transaction() as conn:
            conn.root().update(root)
        db.close()
        self.wait_for_replica()


@pytest.fixture
def servers(tmp_path):
    """The primary's test databases (gorelstorage, history-preserving, and gorelstorage_hf),
    emptied, and a replica of the server; afterwards the replica is removed and the primary
    running again without its binary log."""
    reason = MySQLDatabase.skip_reason or MySQLDatabase.restart_skip_reason()
    if reason:
        pytest.skip(reason)
    databases = MySQLDatabase(str(tmp_path))
    databases.location(False)
    uri = databases.location(True)
    s = Servers(uri, int(os.environ.get('GORELSTORAGE_MYSQL_REPLICA_PORT', '13307')))
    try:
        s.run('replica', 'start')
        yield s
    finally:
        s.run('replica', 'stop')
        if s.paused:
            s.run('resume')


def test_ro_replica_conf_sends_loads_to_the_replica(servers, tmp_path):
    servers.seed(x=PersistentMapping(v=1))
    db = ZODB.DB(servers.storage(ro_replica_conf=servers.conf(tmp_path, 'ro', servers.replica_port)))
    try:
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 1
            assert servers.ours(servers.replica_port) >= 1, 'the load connection is on the replica'
            conn.root()['x']['v'] = 2  # commits go to the primary (no replica-conf)
        servers.wait_for_replica()
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 2
    finally:
        db.close()
    assert servers.sql(servers.replica_port, 'SELECT @@read_only')[0][0] == 1


def test_store_connections_pass_over_a_read_only_replica(servers, tmp_path):
    """replica-conf naming the replica first: loads go to it, commits to the primary, the one
    server that takes writes (the test user could write to the read-only replica: it holds
    READ_ONLY ADMIN)."""
    servers.seed(x=PersistentMapping(v=1))
    conf = servers.conf(tmp_path, 'rw', servers.replica_port, servers.primary_port)
    db = ZODB.DB(servers.storage(replica_conf=conf))
    try:
        for v in (2, 3):
            with db.transaction() as conn:
                conn.root()['x']['v'] = v
        servers.wait_for_replica()
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 3
    finally:
        db.close()
    check = ZODB.DB(servers.storage())
    try:
        with check.transaction() as conn:
            assert conn.root()['x']['v'] == 3, 'the commits are on the primary'
    finally:
        check.close()


def test_a_failed_first_entry_sends_connections_to_the_next_and_back_after_replica_timeout(
        servers, tmp_path):
    servers.seed(x=PersistentMapping(v=1))
    conf = servers.conf(tmp_path, 'ro', servers.primary_port, servers.replica_port)
    storage = servers.storage(ro_replica_conf=conf, replica_timeout=1)
    try:
        assert storage.load(ROOT)  # from the primary, the first entry
        storage.release()
        servers.run('pause')
        servers.paused = True
        inst = storage.new_instance()
        try:
            inst.load(ROOT)
        except gorelstorage.DisconnectedError:
            pass  # the pooled connection to the primary is found broken: retryable
        assert inst.load(ROOT), 'the next connection went to the replica'
        assert servers.ours(servers.replica_port) >= 1
        inst.release()
        servers.run('resume')
        servers.paused = False
        time.sleep(1.2)  # replica-timeout
        fresh = storage.new_instance()
        assert fresh.load(ROOT)
        assert servers.ours(servers.primary_port) >= 1, 'back on the first entry'
        fresh.release()
    finally:
        storage.close()


def test_failover_to_the_promoted_replica_loses_no_commit(servers, tmp_path):
    """replica-conf primary, replica, semi-synchronous replication (a commit is answered once
    the replica has it): a counter incremented with retries while the primary stops and the
    replica is promoted in the middle. Every commit reported is in the new primary; a commit
    whose outcome could not be known is counted apart, and the counter lies between the two."""
    servers.sql(servers.primary_port, 'SET GLOBAL rpl_semi_sync_master_enabled = 1',
                'SET GLOBAL rpl_semi_sync_master_timeout = 60000',
                "SET GLOBAL rpl_semi_sync_master_wait_point = 'AFTER_SYNC'")
    servers.sql(servers.replica_port, 'SET GLOBAL rpl_semi_sync_slave_enabled = 1',
                'STOP SLAVE IO_THREAD', 'START SLAVE IO_THREAD')
    servers.seed(n=Length(0))
    assert servers.sql(servers.primary_port, "SHOW STATUS LIKE 'Rpl_semi_sync_master_status'")[0][1] == 'ON'

    conf = servers.conf(tmp_path, 'rw', servers.primary_port, servers.replica_port)
    db = ZODB.DB(servers.storage(replica_conf=conf, commit_lock_timeout=10))

    def fail_over():
        time.sleep(0.5)
        servers.run('pause')
        servers.paused = True
        servers.run('replica', 'promote')

    counts = count_through_failover(db, fail_over)
    assert counts['ok'] >= 200, counts
    check = ZODB.DB(servers.storage(port=servers.replica_port))
    try:
        with check.transaction() as c:
            n = c.root()['n']()
    finally:
        check.close()
    print('failover: counter %d, %s' % (n, counts))  # pytest -s shows it
    assert counts['ok'] <= n <= counts['ok'] + counts['unknown'], (n, counts)
    assert counts['retried'] + counts['unknown'] >= 1, 'the failover cut at least one transaction'


@pytest.mark.parametrize('keep_history', [True, False], ids=['hp', 'hf'])
@pytest.mark.parametrize('revert', [False, True], ids=['raise', 'revert'])
def test_a_replica_behind_raises_or_with_revert_when_stale_goes_on(servers, tmp_path, revert, keep_history):
    """Loads from a replica whose SQL thread is stopped, commits on the primary: the snapshot
    after the connection's own commit is older than what it saw. Without revert-when-stale that
    is a ReadConflictError; with it, the connection goes on from the older state, and sees the
    new one once the replica catches up. History-free too: with replicas, a newest tid that went
    down is taken for a stale replica, as RelStorage does."""
    servers.seed(keep_history=keep_history, x=PersistentMapping(v=1))
    db = ZODB.DB(servers.storage(ro_replica_conf=servers.conf(tmp_path, 'ro', servers.replica_port),
                                 revert_when_stale=revert, keep_history=keep_history))
    try:
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 1
        servers.sql(servers.replica_port, 'STOP SLAVE SQL_THREAD')
        with db.transaction() as conn:
            conn.root()['x']['v'] = 2  # on the primary; the replica does not apply it
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
                assert conn.root()['x']['v'] == 1, 'the replica\'s state, older than the commit'
                tm.abort()
                conn.close()
        servers.sql(servers.replica_port, 'START SLAVE SQL_THREAD')
        servers.wait_for_replica()
        with db.transaction() as conn:
            assert conn.root()['x']['v'] == 2
    finally:
        db.close()


def test_a_pack_reads_the_primary_not_a_lagging_replica(servers, tmp_path):
    """With ro-replica-conf on a replica that lags, an object garbage in the replica's older
    state but referenced again in the primary's newer one survives a pack with GC (the pack
    reads on the servers store connections use; its handling of commits made after it began
    would keep the object too)."""
    servers.seed(a=PersistentMapping(v='x'))
    db = ZODB.DB(servers.storage(ro_replica_conf=servers.conf(tmp_path, 'ro', servers.replica_port)))
    try:
        with db.transaction() as conn:
            oid = conn.root()['a']._p_oid
            del conn.root()['a']  # garbage now, and so in the replica
        servers.wait_for_replica()
        servers.sql(servers.replica_port, 'STOP SLAVE SQL_THREAD')
        with db.transaction() as conn:
            conn.root()['b'] = conn.get(oid)  # referenced again, on the primary only
        db.pack()
        servers.sql(servers.replica_port, 'START SLAVE SQL_THREAD')
        servers.wait_for_replica()
        db.cacheMinimize()
        with db.transaction() as conn:
            assert conn.root()['b']['v'] == 'x', 'the object referenced again survived the pack'
    finally:
        db.close()
