"""The workloads (zodbshootout's) and their clients, as threads or processes, and the
floors: the Go driver alone, and ZODB alone on MappingStorage."""
import multiprocessing
import os
import statistics
import threading
import time
from ..testing import zap
from .contenders import ZEO
from .contenders import _clear_storage_cache
from .contenders import _fetched_from_database
from .contenders import open_storage
from .contenders import zeo_server
from .inside import TimedStorage
from .inside import reset as _reset_inside
from .inside import seconds as _inside_seconds


WORKLOADS = ('add', 'store', 'update', 'warm', 'cold', 'prefetch_cold', 'hot', 'steamin',
             'readCurrent', 'ex_commit', 'tpc', 'new_oid', 'conflicts')


def inside_key(workload):
    """The key of a workload's samples of time spent inside the storage (us per object)."""
    return workload + '/inside'


def sample_keys():
    """The keys of a client's samples: each workload's time, and its time inside the storage."""
    return [k for w in WORKLOADS for k in (w, inside_key(w))]


try:
    from persistent import Persistent
except ImportError:  # pragma: no cover
    Persistent = object


class PObject(Persistent):
    """A benchmark object: an attribute to change and data to make its size."""

    attr = 0

    def __init__(self, data=b''):
        self.data = data


def _payload(size):
    """Text-like data (compressible as real pickles are), different per call, so that the pickled
    object is about ``size`` bytes."""
    seed = os.urandom(16).hex().encode() + b' '
    return (seed * (size // len(seed) + 1))[:max(1, size - 60)]


def _timed(out, workload, n, fn):
    """Run fn; its time and the time spent inside the storage, us per object, go to out."""
    _reset_inside()
    start = time.perf_counter()
    fn()
    elapsed = time.perf_counter() - start
    out[workload].append(elapsed / n * 1e6)
    out[inside_key(workload)].append(_inside_seconds() / n * 1e6)


def run_client(db, index, n, size, reps, wait, profile=None):
    """Run every workload for client ``index``; return {workload: [us per object, ...]}, and under
    inside_key(workload) the time of the same runs spent inside the storage (when ``db`` is on a
    TimedStorage).
    ``wait(workload)`` is called before each workload's timed runs and ``wait(None)`` after them
    (a barrier between clients; the round-trip count's marks), and around the emptying of the
    storage's cache before each cold read (the same workload again). With ``profile``, the client's
    Python profile is written to ``profile + '.pstats'``."""
    storage = db._mvcc_storage.new_instance()  # the storage API workloads need an instance of their own
    profiler = None
    if profile:
        import cProfile
        profiler = cProfile.Profile()
        profiler.enable()
    try:
        return _run_client(db, storage, index, n, size, reps, wait)
    finally:
        storage.release()
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile + '.pstats')


def _run_client(db, storage, index, n, size, reps, wait):
    import transaction
    from ZODB.Connection import TransactionMetaData
    from ZODB.POSException import ConflictError
    from zodbpickle import pickle

    out = {k: [] for k in sample_keys()}
    tm = transaction.TransactionManager()

    def mapping(conn):
        return conn.root()['speedtest'][index]

    def add():
        conn = db.open(tm)
        m = mapping(conn)
        for i in range(n):
            m[i] = PObject(_payload(size))
        tm.commit()
        conn.close()

    def update():
        conn = db.open(tm)
        for obj in mapping(conn).values():
            obj.attr += 1
        tm.commit()
        conn.close()

    def store():
        t = TransactionMetaData()
        storage.tpc_begin(t)
        for _ in range(n):
            data = pickle.dumps(PObject(_payload(size)), 3)
            storage.store(storage.new_oid(), None, data, '', t)
        storage.tpc_vote(t)
        storage.tpc_finish(t)

    def read(workload=None, clear_conn=False, clear_storage=False, prefetch=False):
        """Read the N objects in a new transaction; the time of the reads goes to out[workload]."""
        conn = db.open(tm)
        if clear_conn:
            conn.cacheMinimize()
        if clear_storage:
            # Threads share the storage's cache: every client empties it before any reads, as
            # zodbshootout does, or one client's clear drops the states another just prefetched.
            wait(workload)
            _clear_storage_cache(db)
            wait(workload)
        before = _fetched_from_database(db)
        _reset_inside()
        start = time.perf_counter()
        objs = list(mapping(conn).values())
        if prefetch:
            conn.prefetch(objs)
        got = 0
        for obj in objs:
            got += obj.attr >= 0
        elapsed = time.perf_counter() - start
        spent = _inside_seconds()
        if got != n:
            raise AssertionError('read %d objects of %d' % (got, n))
        fetched = None if before is None else _fetched_from_database(db) - before
        if clear_storage and fetched is not None and fetched < n:
            raise AssertionError('a cold read of %d objects: only %d states came from the database' % (n, fetched))
        tm.commit()
        conn.close()
        if workload is not None:
            out[workload].append(elapsed / n * 1e6)
            out[inside_key(workload)].append(spent / n * 1e6)

    for w, fn in (('add', add), ('update', update), ('store', store)):
        wait(w)
        for _ in range(reps):
            _timed(out, w, n, fn)
        wait(None)

    read(clear_conn=True)  # the storage cache holds them now
    wait('warm')
    for _ in range(reps):
        read('warm', clear_conn=True)
    wait(None)

    for w, prefetch in (('cold', False), ('prefetch_cold', True)):
        wait(w)
        for _ in range(reps):
            read(w, clear_conn=True, clear_storage=True, prefetch=prefetch)
        wait(None)

    read()
    wait('hot')
    for _ in range(reps):
        read('hot')
    wait(None)

    conn = db.open(tm)
    objs = list(mapping(conn).values())
    wait('steamin')
    for _ in range(reps):
        _timed(out, 'steamin', n, lambda: sum(o.attr for o in objs))
    wait(None)
    tm.abort()
    conn.close()

    def read_current():
        conn = db.open(tm)
        objs = list(mapping(conn).values())
        for obj in objs:
            conn.readCurrent(obj)
        objs[0].attr += 1
        tm.commit()
        conn.close()

    wait('readCurrent')
    for _ in range(reps):
        _timed(out, 'readCurrent', n, read_current)
    wait(None)

    xtm = transaction.TransactionManager(explicit=True)

    def ex_commit():
        conn = db.open(xtm)
        xtm.begin()
        objs = list(mapping(conn).values())
        xtm.abort()
        for obj in objs:
            xtm.begin()
            obj.attr += 1
            xtm.commit()
        conn.close()

    def tpc():
        for _ in range(n):
            t = TransactionMetaData()
            storage.tpc_begin(t)
            storage.tpc_vote(t)
            storage.tpc_finish(t)

    def new_oid():
        for _ in range(n):
            storage.new_oid()

    def conflicts():
        conn = db.open(tm)
        for _ in range(n):
            for attempt in range(100):
                try:
                    conn.root()['speedtest']['counter'].change(1)
                    tm.commit()
                    break
                except ConflictError:
                    tm.abort()
            else:
                raise AssertionError('conflicts: 100 attempts failed')
        conn.close()

    for w, fn in (('ex_commit', ex_commit), ('tpc', tpc), ('new_oid', new_oid), ('conflicts', conflicts)):
        wait(w)
        for _ in range(reps):
            _timed(out, w, n, fn)
        wait(None)
    return out


def populate(spec, clients):
    import ZODB
    if spec['contender'] != ZEO:  # ZEO's server starts on a new FileStorage each run
        zap(spec['database'], spec['location'])
    db = ZODB.DB(open_storage(spec))
    try:
        _populate(db, clients)
    finally:
        db.close()


def _populate(db, clients):
    from BTrees.Length import Length
    from persistent.mapping import PersistentMapping
    with db.transaction() as conn:
        conn.root()['speedtest'] = t = PersistentMapping()
        for i in range(clients):
            t[i] = PersistentMapping()
        t['counter'] = Length()


def _process_client(spec, index, n, size, reps, barrier, queue):
    import ZODB
    profile = spec.get('profile') and '%s-client%d' % (spec['profile'], index)
    try:
        db = ZODB.DB(TimedStorage(open_storage(spec)))
        try:
            with _go_profile(profile):
                queue.put((index, run_client(db, index, n, size, reps, lambda w: barrier.wait(), profile)))
        finally:
            db.close()
    except BaseException as e:  # reported to the parent
        queue.put((index, 'client %d failed: %r' % (index, e)))


def _go_profile(prefix):
    """A Go CPU profile to prefix + '.pprof' while the block runs (none without prefix)."""
    import contextlib
    if not prefix:
        return contextlib.nullcontext()
    from .._native import go_cpu_profile
    return go_cpu_profile(prefix + '.pprof')


def run_config(spec, clients, kind, n, size, reps):
    """Run ``clients`` clients as threads or processes; return {workload: samples}.
    With spec['profile'] (GoRelStorage only), profiles are written under that path prefix."""
    if spec['contender'] == ZEO and 'zeo_port' not in spec:
        with zeo_server(spec) as spec:
            return run_config(spec, clients, kind, n, size, reps)
    import ZODB
    populate(spec, clients)
    results = {}
    profile = spec.get('profile')
    if kind == 'threads':
        db = ZODB.DB(TimedStorage(open_storage(spec)), pool_size=clients + 2)
        barrier = threading.Barrier(clients)
        errors = []

        def client(i):
            try:
                results[i] = run_client(db, i, n, size, reps, lambda w: barrier.wait(),
                                        profile and '%s-client%d' % (profile, i))
            except BaseException as e:
                errors.append(e)
                barrier.abort()
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        with _go_profile(profile):
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        db.close()
        if errors:
            raise errors[0]
    else:
        ctx = multiprocessing.get_context('spawn')  # Go cannot run in a forked child
        barrier, queue = ctx.Barrier(clients), ctx.Queue()
        procs = [ctx.Process(target=_process_client, args=(spec, i, n, size, reps, barrier, queue))
                 for i in range(clients)]
        for p in procs:
            p.start()
        for _ in procs:
            i, r = queue.get(timeout=1800)
            if isinstance(r, str):
                for p in procs:
                    p.kill()
                raise RuntimeError(r)
            results[i] = r
        for p in procs:
            p.join()
    merged = {k: [] for k in sample_keys()}
    for r in results.values():
        for w, samples in r.items():
            merged[w].extend(samples)
    return merged


def floor(spec, n, size):
    """The Go driver alone on n objects of the benchmark's size: (single, batched) us per object."""
    from ZODB.Connection import TransactionMetaData
    zap(spec['database'], spec['location'])
    storage = open_storage(dict(spec, contender='gorelstorage'))
    try:
        oids = [storage.new_oid() for _ in range(n)]
        t = TransactionMetaData()
        storage.tpc_begin(t)
        for oid in oids:
            storage.store(oid, None, _payload(size), '', t)
        storage.tpc_vote(t)
        storage.tpc_finish(t)
        single, batched = storage._driver_floor(oids)
        return single / 1000.0, batched / 1000.0
    finally:
        storage.close()


def zodb_floor(n, size, reps):
    """ZODB alone: the workloads on ZODB's in-memory MappingStorage, one client; {workload: median us}
    (and MappingStorage's own time under inside_key(workload)). What no storage can go below: pickling,
    the Connection and the transaction machinery."""
    import ZODB
    from ZODB.MappingStorage import MappingStorage
    db = ZODB.DB(TimedStorage(MappingStorage()))
    try:
        _populate(db, 1)
        got = run_client(db, 0, n, size, reps, lambda w: None)
    finally:
        db.close()
    return {w: statistics.median(v) for w, v in got.items()}
