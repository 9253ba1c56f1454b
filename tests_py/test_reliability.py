"""What a site relies on when things go wrong, on real servers.

- Writer processes killed with SIGKILL at random moments: every transaction is
  all-or-nothing, and every transaction whose commit returned is there.
- A PostgreSQL restart, and MariaDB killing every connection, under a counter
  workload with retries: the counter equals the successes the workers reported
  (a transaction applied twice, or reported committed and missing, shows), and no
  worker dies.
- ZODB Connections dropped without close() give their server connections back.
"""
import gc
import os
import random
import select
import signal
import subprocess
import sys
import threading
import time

import pytest
import transaction
import ZODB
import ZODB.utils
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping

from databases import DATABASES
from databases import MYSQL_URI
from databases import PG_DSN
from databases import mysql_connect

WORKER = os.path.join(os.path.dirname(__file__), 'reliability_worker.py')
KILLS = 30
WRITERS = 3


def _spawn(*args, stderr=subprocess.PIPE):
    return subprocess.Popen([sys.executable, WORKER] + [str(a) for a in args],
                            stdout=subprocess.PIPE, stderr=stderr, text=True)


def _with_db(database, location, keep_history, fn):
    db = ZODB.DB(database.open_go(location, keep_history))
    try:
        with db.transaction() as conn:
            return fn(conn.root())
    finally:
        db.close()


def test_writers_killed_at_random_moments_lose_nothing(database, keep_history):
    location = database.location(keep_history)
    mode = 'hp' if keep_history else 'hf'

    def init(root):
        for w in range(WRITERS):
            root['w%d' % w] = PersistentMapping(slots=[PersistentMapping(label=0) for _ in range(4)],
                                                tree=OOBTree())
    _with_db(database, location, keep_history, init)

    committed = {w: 0 for w in range(WRITERS)}  # the newest label whose commit returned

    def collect(w, proc):
        out, err = proc.communicate(timeout=60)
        for line in out.split('\n')[:-1]:  # whole lines: a kill can cut the last one short
            if line.startswith('committed '):
                committed[w] = max(committed[w], int(line.split()[1]))
        return err

    procs = {w: _spawn('slots', database.name, location, mode, w) for w in range(WRITERS)}
    kills = 0
    try:
        while kills < KILLS:
            w = kills % WRITERS
            proc = procs[w]
            ready, _, _ = select.select([proc.stdout], [], [], 120)
            first = proc.stdout.readline() if ready else ''
            if first != 'ready\n':
                proc.kill()
            assert first == 'ready\n', 'writer %d did not start: %s%s' % (w, first, proc.stderr.read())
            time.sleep(random.uniform(0, 0.3))
            proc.send_signal(signal.SIGKILL)
            err = collect(w, proc)
            assert proc.returncode == -signal.SIGKILL, 'writer %d failed before it was killed: %s' % (w, err)
            kills += 1
            procs[w] = _spawn('slots', database.name, location, mode, w)
    finally:
        for w, proc in procs.items():
            proc.kill()
            collect(w, proc)

    def check(root):
        for w in range(WRITERS):
            mine = root['w%d' % w]
            labels = [s['label'] for s in mine['slots']]
            assert len(set(labels)) == 1, 'writer %d: its slots were half-written: %s' % (w, labels)
            label = labels[0]
            assert label >= committed[w], \
                'writer %d: commit %d returned, the database holds %d' % (w, committed[w], label)
            assert list(mine['tree'].keys()) == list(range(1, label + 1)), \
                'writer %d: the objects it added do not match its commits' % w
            if label:
                assert mine['tree'][label]['label'] == label
        return sum(root['w%d' % w]['slots'][0]['label'] for w in range(WRITERS))
    total = _with_db(database, location, keep_history, check)
    assert total > KILLS, 'the writers committed between the kills'
    print('%s %s: %d kills, %d commits, every one whole' % (database.name, mode, kills, total))


# --- disruption under a counter workload ------------------------------------------

def _counter_workload(database, keep_history, disrupt):
    location = database.location(keep_history)
    mode = 'hp' if keep_history else 'hf'

    def init(root):
        root['counter'] = Length()
        root['keys'] = OOBTree()
    _with_db(database, location, keep_history, init)
    stop = os.path.join(database.workdir, 'stop')
    logs = [open(os.path.join(database.workdir, 'worker-%d.err' % w), 'w+') for w in range(WRITERS)]
    procs = [_spawn('counter', database.name, location, mode, w, stop, stderr=log) for w, log in enumerate(logs)]

    def stderr(i):
        logs[i].seek(0)
        return logs[i].read()
    progress = [0] * WRITERS
    lines = [[] for _ in procs]

    def read(i, proc):
        for line in proc.stdout:
            lines[i].append(line)
            if line.startswith('ok '):
                progress[i] = int(line.split()[1])
    readers = [threading.Thread(target=read, args=(i, p), daemon=True) for i, p in enumerate(procs)]
    for r in readers:
        r.start()

    def wait_for_progress(at_least):
        deadline = time.monotonic() + 120
        while min(progress) < at_least:
            assert time.monotonic() < deadline, 'the workers stopped committing: %s' % progress
            assert all(p.poll() is None for p in procs), 'a worker died: %s' % [stderr(i) for i in range(WRITERS)]
            time.sleep(0.05)
    try:
        wait_for_progress(5)
        disrupt()
        before = list(progress)
        wait_for_progress(max(before) + 10)
    finally:
        open(stop, 'w').close()
        for p in procs:
            try:
                p.wait(timeout=120)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        for r in readers:
            r.join(10)
    for i, p in enumerate(procs):
        assert p.returncode == 0, 'a worker died: %s' % stderr(i)
    done = [[int(x) for x in ls[-1].split()[1:]] for ls in lines]
    successes = sum(d[0] for d in done)

    def check(root):
        return root['counter'](), sorted(root['keys'].keys())
    count, keys = _with_db(database, location, keep_history, check)
    expected = sorted('%d-%d' % (w, n) for w in range(WRITERS) for n in range(done[w][0]))
    assert keys == expected, 'a transaction reported committed is missing, or one reported failed landed'
    assert count == successes, 'the counter is %d after %d reported successes' % (count, successes)
    print('%s %s: %d commits, counter %d, %d retries, %d outcomes unknown (resolved by the key)'
          % (database.name, mode, successes, count, sum(d[1] for d in done), sum(d[2] for d in done)))


@pytest.mark.skipif(not PG_DSN or not os.environ.get('GORELSTORAGE_PG_CTL'),
                    reason='needs the test PostgreSQL server and GORELSTORAGE_PG_CTL (scripts/test sets both)')
@pytest.mark.parametrize('keep_history', [True, False], ids=['hp', 'hf'])
def test_postgresql_restart_under_load_applies_each_commit_once(tmp_path, keep_history):
    database = DATABASES['postgresql'](str(tmp_path))
    _counter_workload(database, keep_history, database.restart)


def kill_mysql_connections(uri, seconds):
    """Kill every other connection to the database for a while, as a failover or a
    watchdog does."""
    admin = mysql_connect(uri)
    db = uri.rsplit('/', 1)[1]
    deadline = time.monotonic() + seconds
    killed = 0
    try:
        with admin.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute('SELECT id FROM information_schema.processlist WHERE db = %s AND id != CONNECTION_ID()',
                            (db,))
                for (conn_id,) in cur.fetchall():
                    try:
                        cur.execute('KILL %d' % conn_id)
                        killed += 1
                    except Exception:  # it ended by itself meanwhile
                        pass
                time.sleep(0.02)
    finally:
        admin.close()
    return killed


@pytest.mark.skipif(not MYSQL_URI, reason='needs the test MariaDB server (scripts/test starts it)')
@pytest.mark.parametrize('keep_history', [True, False], ids=['hp', 'hf'])
def test_mariadb_killing_connections_under_load_applies_each_commit_once(tmp_path, keep_history):
    database = DATABASES['mysql'](str(tmp_path))
    killed = []
    location = database.location(keep_history)
    _counter_workload(database, keep_history, lambda: killed.append(kill_mysql_connections(location, 2)))
    assert killed[0] > 0


# --- connections dropped without close() -----------------------------------------------

def _server_connections(database, location):
    """The connections to the database other than the one asking."""
    if database.name == 'postgresql':
        import psycopg2
        conn = psycopg2.connect(location)
        query = ("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                 "AND application_name = 'gorelstorage'")
    else:
        conn = mysql_connect(location)
        query = 'SELECT count(*) FROM information_schema.processlist WHERE db = DATABASE() AND id != CONNECTION_ID()'
    try:
        with conn.cursor() as cur:
            cur.execute(query)
            return cur.fetchone()[0]
    finally:
        conn.close()


@pytest.mark.parametrize('name', ['postgresql', 'mysql'])
def test_connections_dropped_without_close_are_released(name, tmp_path):
    database = DATABASES[name](str(tmp_path))
    if database.skip_reason:
        pytest.skip(database.skip_reason)
    location = database.location(False)
    db = ZODB.DB(database.open_go(location, False))
    try:
        with db.transaction() as conn:
            conn.root()['x'] = 1
        idle = _server_connections(database, location)
        opened = []
        for _ in range(40):
            tm = transaction.TransactionManager()
            conn = db.open(tm)
            conn.root()['x']  # a snapshot: the connection holds a server connection
            opened.append((tm, conn))
        held = _server_connections(database, location)
        assert held >= 40
        del opened, tm, conn
        gc.collect()
        after = _server_connections(database, location)
        # What is left is the engine's pool of idle connections (16 per kind at most).
        assert after <= idle + 16, (idle, held, after)
        print('%s: %d server connections idle, %d with 40 ZODB connections open, %d after dropping them'
              % (name, idle, held, after))
    finally:
        db.close()
    _assert_no_connections(database, location, 'DB.close() closes every connection')

    storage = database.open_go(location, False)
    storage.load(ZODB.utils.z64)
    assert _server_connections(database, location) > 0
    del storage
    gc.collect()
    _assert_no_connections(database, location, 'a storage collected without close() closes its connections')


def _assert_no_connections(database, location, why):
    deadline = time.monotonic() + 10  # a server notices closed connections a moment later
    while _server_connections(database, location) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _server_connections(database, location) == 0, why
