"""StatsD metrics under RelStorage's names, and slow lock waits and commits logged.

When perfmetrics has a StatsD client (``perfmetrics.set_statsd_client(uri)`` or the
``STATSD_URI`` environment variable) as a storage connection opens, that connection's storage
methods send what RelStorage's send, under the same names: a count and a timing (``.t``, in
milliseconds) per call of load, loadSerial, loadBefore, prefetch, store,
checkCurrentSerialInTransaction (sampled at ``RS_PERF_STATSD_SAMPLE_RATE``, 0.1 by default, as
RelStorage samples them), loadBlob, openCommittedBlobFile, storeBlob, tpc_begin, tpc_vote,
tpc_finish, tpc_abort and pack (every call); the lock waits as RelStorage's locker's
``lock_current_objects`` and ``hold_commit_lock``; the ``relstorage.storage.tpc_vote.*``
conflict counters. Polls and the pickle cache, which RelStorage does not report, go under
``gorelstorage.*``. Without a client, nothing is wrapped and nothing is sent.

Whatever the metrics, a lock wait or a commit phase taking long is logged on
``gorelstorage.timing`` with its duration, at RelStorage's thresholds (INFO from 3.03 s,
WARNING from 9.24 s, ERROR from 20.1 s; ``RS_PERF_LOG_INFO_MIN`` and its siblings change them).
"""
import logging
import os
import random
import threading
import time
import weakref

try:
    from perfmetrics import statsd_client
except ImportError:  # perfmetrics is optional
    def statsd_client():
        return None

timing_log = logging.getLogger('gorelstorage.timing')
_cache_lock = threading.Lock()
_cache_sent = weakref.WeakKeyDictionary()  # database -> (hits, misses) reported


def _env_float(name, default):
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        timing_log.warning('%s=%r is not a number; using %s', name, os.environ.get(name), default)
        return default


SAMPLE_RATE = _env_float('RS_PERF_STATSD_SAMPLE_RATE', 0.1)
_LOG_LEVELS = sorted(
    (_env_float('RS_PERF_LOG_%s_MIN' % logging.getLevelName(level), default), level)
    for level, default in ((logging.INFO, 3.03), (logging.WARNING, 9.24), (logging.ERROR, 20.10)))

# method: (RelStorage's metric name, sampled)
_METHODS = {
    'load': ('relstorage.storage.load.Loader.load', True),
    'prefetch': ('relstorage.storage.load.Loader.prefetch', True),
    'loadSerial': ('relstorage.storage.load.Loader.loadSerial', True),
    'loadBefore': ('relstorage.storage.load.Loader.loadBefore', True),
    'loadBlob': ('relstorage.storage.load.BlobLoader.loadBlob', False),
    'openCommittedBlobFile': ('relstorage.storage.load.BlobLoader.openCommittedBlobFile', False),
    'store': ('relstorage.storage.store.Storer.store', True),
    'storeBlob': ('relstorage.storage.store.BlobStorer.storeBlob', False),
    'tpc_begin': ('relstorage.storage.RelStorage.tpc_begin', False),
    'tpc_vote': ('relstorage.storage.RelStorage.tpc_vote', False),
    'tpc_finish': ('relstorage.storage.RelStorage.tpc_finish', False),
    'tpc_abort': ('relstorage.storage.RelStorage.tpc_abort', False),
    'pack': ('relstorage.storage.pack.Pack.pack', False),
    'poll_invalidations': ('gorelstorage.storage.poll_invalidations', True),
}

_LOCKERS = {'postgresql': 'relstorage.adapters.postgresql.locker.PostgreSQLLocker',
            'mysql': 'relstorage.adapters.mysql.locker.MySQLLocker',
            'sqlite3': 'relstorage.adapters.sqlite.locker.Sqlite3Locker',
            'oracle': 'relstorage.adapters.oracle.locker.OracleLocker'}


class Metrics:
    """What one storage connection reports; made only when a StatsD client is set."""

    def __init__(self, storage, adapter_name, hp):
        self.locker = _LOCKERS.get(adapter_name, 'gorelstorage.locker')
        self.checkCurrent = 'relstorage.storage.tpc.begin.%s.checkCurrentSerialInTransaction' % (
            'HistoryPreserving' if hp else 'HistoryFree')
        methods = dict(_METHODS, checkCurrentSerialInTransaction=(self.checkCurrent, True))
        for name, (stat, sampled) in methods.items():
            setattr(storage, name, _counted(getattr(storage, name), name, stat, SAMPLE_RATE if sampled else 1.0))

    def vote(self, lock_seconds, conflicts, resolved):
        self._send(timings={self.locker + '.lock_current_objects.t': lock_seconds},
                   counts={self.locker + '.lock_current_objects': 1,
                           'relstorage.storage.tpc_vote.total_conflicts': conflicts,
                           'relstorage.storage.tpc_vote.resolved_conflicts': resolved,
                           'relstorage.storage.tpc_vote.committed_conflicts': conflicts - resolved})

    def lock_failed(self):
        self._send(counts={'relstorage.storage.tpc_vote.unable_to_acquire_lock': 1})

    def read_conflict(self):
        self._send(counts={'relstorage.storage.tpc_vote.readCurrent_conflicts': 1})

    def commit_lock(self, seconds):
        self._send(timings={self.locker + '.hold_commit_lock.t': seconds},
                   counts={self.locker + '.hold_commit_lock': 1})

    def between_vote_and_finish(self, seconds):
        self._send(timings={'relstorage.storage.tpc_vote.between_vote_and_finish.t': seconds})

    def cache(self, database, stats):
        """The process-wide pickle cache's hits and misses since the last report (any
        connection's), at each poll."""
        with _cache_lock:
            last = _cache_sent.get(database, (0, 0))
            now = stats.get('hits', 0), stats.get('misses', 0)
            _cache_sent[database] = now
        self._send(counts={'gorelstorage.cache.hits': max(0, now[0] - last[0]),
                           'gorelstorage.cache.misses': max(0, now[1] - last[1])})

    @staticmethod
    def _send(timings=(), counts=()):
        client = statsd_client()
        if client is None:
            return
        buf = []
        for stat, seconds in dict(timings).items():
            client.timing(stat, int(seconds * 1000), 1, buf=buf, rate_applied=True)
        for stat, n in dict(counts).items():
            if n:
                client.incr(stat, n, 1, buf=buf, rate_applied=True)
        client.sendbuf(buf)


def _counted(method, name, stat, rate):
    timing = stat + '.t'

    def counted(*args, **kwargs):
        client = statsd_client()
        if client is None or (rate < 1 and random.random() >= rate):
            return method(*args, **kwargs)
        start = time.perf_counter()
        try:
            return method(*args, **kwargs)
        finally:
            elapsed = int((time.perf_counter() - start) * 1000)
            buf = []
            client.incr(stat, 1, rate, buf=buf, rate_applied=True)
            client.timing(timing, elapsed, rate, buf=buf, rate_applied=True)
            client.sendbuf(buf)
    counted.__name__ = counted.__qualname__ = name  # load is a functools.partial, without a name
    counted.__doc__ = getattr(method, '__doc__', None)
    return counted


def for_storage(storage, adapter_name, hp):
    """The connection's Metrics when a StatsD client is set, else None."""
    if statsd_client() is None:
        return None
    return Metrics(storage, adapter_name, hp)


def log_slow(what, seconds, storage):
    """Logs a lock wait or commit phase that took long, at RelStorage's thresholds."""
    level = 0
    for threshold, lvl in _LOG_LEVELS:
        if seconds >= threshold:
            level = lvl
    if level and timing_log.isEnabledFor(level):
        timing_log.log(level, '%s took %.3f s (%s)', what, seconds, storage)
