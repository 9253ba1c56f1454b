"""Under gevent, a call into the engine that waits on the database leaves the event loop
running, and many greenlets share one ZODB.DB correctly. Each case runs in its own process,
monkey-patched before anything else."""
import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
import ZODB
from BTrees.Length import Length
from BTrees.OOBTree import OOBTree

pytest.importorskip('gevent')

WORKER = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'gevent_worker.py')


def _prepare(database):
    db = ZODB.DB(database.make(True))
    with db.transaction() as conn:
        conn.root()['n'] = Length(0)
        conn.root()['tree'] = OOBTree()
    db.close()
    return database.location(True)


def _hold_commit_lock(database, location):
    if database.name == 'sqlite':
        conn = sqlite3.connect(os.path.join(location, 'main.sqlite3'), isolation_level=None)
        conn.execute('BEGIN IMMEDIATE')  # SQLite's one write lock is the commit lock
        return conn
    return database.hold(location, 'commit')


def test_a_call_waiting_for_a_lock_leaves_other_greenlets_running(database):
    location = _prepare(database)
    lock = _hold_commit_lock(database, location)
    proc = subprocess.Popen([sys.executable, WORKER, database.name, location, 'wait'],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'committing'
        time.sleep(1.5)  # the worker's commit waits for the lock meanwhile
    finally:
        lock.rollback() if database.name != 'sqlite' else lock.execute('ROLLBACK')
        lock.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    result = json.loads(out)
    # A blocked event loop would not tick at all while the commit waited (about 150 ticks of
    # 10 ms fit in the 1.5 s); a few dozen is proof enough on a loaded machine.
    assert result['ticks'] >= 20, result


def test_many_greenlets_commit_through_one_db(database):
    location = _prepare(database)
    out = subprocess.run([sys.executable, WORKER, database.name, location, 'many', '200'],
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result['n'] == 200 and result['keys'] == 200, result
