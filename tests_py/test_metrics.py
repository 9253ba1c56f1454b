"""StatsD metrics under RelStorage's names, received by a real UDP listener; slow lock waits
and commits logged."""
import logging
import socket

import perfmetrics
import pytest
import transaction
import ZODB
from BTrees.Length import Length
from persistent.mapping import PersistentMapping

from gorelstorage import metrics

LOCKERS = {'sqlite': 'Sqlite3Locker', 'postgresql': 'PostgreSQLLocker', 'mysql': 'MySQLLocker',
           'oracle': 'OracleLocker'}


@pytest.fixture
def listener():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(('127.0.0.1', 0))
    sock.settimeout(0.2)
    yield sock
    sock.close()


def _received(sock):
    """{name: [(value, type)]} of every statsd line received."""
    out = {}
    while True:
        try:
            packet = sock.recv(65536)
        except socket.timeout:
            return out
        for line in packet.decode().splitlines():
            name, rest = line.split(':', 1)
            value, kind = rest.split('|')[:2]
            out.setdefault(name, []).append((int(value), kind))


def _work(storage):
    """Commits, loads, and a conflict that resolves (two connections increment a Length)."""
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['n'] = Length(0)
            conn.root()['m'] = PersistentMapping(a=1)
        tm1, tm2 = transaction.TransactionManager(), transaction.TransactionManager()
        c1, c2 = db.open(tm1), db.open(tm2)
        c1.root()['n'].change(1)
        c2.root()['n'].change(2)
        tm1.commit()
        tm2.commit()  # resolved by Length's _p_resolveConflict
        c1.close()
        c2.close()
        for _ in range(20):
            with db.transaction() as conn:
                conn.cacheMinimize()
                assert conn.root()['m']['a'] == 1
        with db.transaction() as conn:
            assert conn.root()['n']() == 3
    finally:
        db.close()


def test_metrics_arrive_under_relstorages_names(database, listener, monkeypatch):
    monkeypatch.setattr(metrics, 'SAMPLE_RATE', 1.0)  # no sampling: every call is sent
    perfmetrics.set_statsd_client('statsd://127.0.0.1:%d' % listener.getsockname()[1])
    try:
        _work(database.make(True))
    finally:
        perfmetrics.set_statsd_client(None)
    got = _received(listener)
    locker = 'relstorage.adapters.%s.locker.%s' % (
        {'sqlite': 'sqlite'}.get(database.name, database.name), LOCKERS[database.name])
    for name in ['relstorage.storage.load.Loader.load', 'relstorage.storage.store.Storer.store',
                 'relstorage.storage.RelStorage.tpc_begin', 'relstorage.storage.RelStorage.tpc_vote',
                 'relstorage.storage.RelStorage.tpc_finish', locker + '.lock_current_objects',
                 locker + '.hold_commit_lock', 'gorelstorage.storage.poll_invalidations']:
        assert name in got and all(kind == 'c' for _, kind in got[name]), name
        assert name + '.t' in got and all(kind == 'ms' and v >= 0 for v, kind in got[name + '.t']), name
    assert 'relstorage.storage.tpc_vote.between_vote_and_finish.t' in got
    # The 20 reads after cacheMinimize, on connections that committed before: a commit keeps
    # the instance's load counted.
    assert sum(v for v, _ in got['relstorage.storage.load.Loader.load']) >= 20
    assert sum(v for v, _ in got['relstorage.storage.tpc_vote.total_conflicts']) == 1
    assert sum(v for v, _ in got['relstorage.storage.tpc_vote.resolved_conflicts']) == 1
    assert 'relstorage.storage.tpc_vote.committed_conflicts' not in got  # none failed
    assert sum(v for v, _ in got.get('gorelstorage.cache.hits', [])) > 0


def test_without_a_client_nothing_is_wrapped_or_sent(database, listener):
    assert perfmetrics.statsd_client() is None
    storage = database.make(True)
    assert storage._metrics is None
    # Only load is the instance's own (its bound loader), and not the metrics' wrapper.
    assert set(vars(storage)) & set(metrics._METHODS) == {'load'}
    assert getattr(storage.load, '__name__', None) != 'load'
    _work(storage)
    assert _received(listener) == {}


def test_slow_lock_waits_and_commits_are_logged(database, monkeypatch, caplog):
    monkeypatch.setattr(metrics, '_LOG_LEVELS', [(0.0, logging.INFO)])  # everything counts as slow
    with caplog.at_level(logging.INFO, logger='gorelstorage.timing'):
        _work(database.make(True))
    messages = [r.getMessage() for r in caplog.records if r.name == 'gorelstorage.timing']
    assert any(m.startswith('tpc_vote: locking the objects took ') for m in messages), messages
    assert any(m.startswith('tpc_finish: waiting for the commit lock took ') for m in messages), messages
