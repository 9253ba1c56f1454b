"""``gorelstorage bench``: zodbshootout's workloads, GoRelStorage and RelStorage side by side.

Each round runs every contender (GoRelStorage, RelStorage 4.x) on the same database server and
settings, one after the other, the order rotated between rounds; each contender starts from an
emptied database. Per client (1 or 2, as threads sharing one ZODB.DB or as processes each with its
own), with N objects per transaction of ``--size`` bytes:

  add            commit N new objects into the client's mapping
  store          the storage API alone: tpc_begin, store N new objects, tpc_vote, tpc_finish
  update         change an attribute of the N objects, commit
  warm           read the N objects, the storage's cache holding them, the Connection's empty
  cold           the same with every cache emptied first (checked: the loads reach the database)
  prefetch_cold  cold, with Connection.prefetch of the N objects first
  hot            read them in a new transaction, the Connection's cache holding them
  steamin        read them again in the same transaction
  readCurrent    a transaction calling readCurrent on the N objects and changing one
  ex_commit      N transactions of an explicit transaction manager, each changing one object
  tpc            N empty two-phase commits through the storage API
  new_oid        N new_oid calls
  conflicts      N transactions each adding 1 to one BTrees.Length all clients share (resolved)

Times are microseconds per object (per transaction or call for the last four), the median and
p99 over every recorded sample. Beside them, in the same run:

  floor          GoRelStorage's Go database driver alone: a primary-key read per object, and a
                 batched read
  ZODB alone     the workloads on ZODB's in-memory MappingStorage, one client: pickling, the
                 Connection and transaction machinery that no storage can go below
  round trips    SQL round trips per object (per call for the last four), one client of each
                 contender run once more through a loopback proxy in front of the server that
                 counts them (PostgreSQL and MySQL; SQLite has none)
"""
import json
import math
import multiprocessing
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time

from .testing import zap
from .zodburi import mysql_params

WORKLOADS = ('add', 'store', 'update', 'warm', 'cold', 'prefetch_cold', 'hot', 'steamin',
             'readCurrent', 'ex_commit', 'tpc', 'new_oid', 'conflicts')
# The workloads the issue holds to 0.5x RelStorage's time.
HALF_BAR = ('cold', 'prefetch_cold', 'add', 'update', 'store')
CONTENDERS = ('gorelstorage', 'relstorage')

try:
    from persistent import Persistent
except ImportError:  # pragma: no cover
    Persistent = object


class PObject(Persistent):
    """A benchmark object: an attribute to change and data to make its size."""

    attr = 0

    def __init__(self, data=b''):
        self.data = data


# --- opening the contenders ---------------------------------------------------

def open_storage(spec):
    """Open the storage a spec dict describes (picklable, for processes)."""
    contender, database, location, hp = spec['contender'], spec['database'], spec['location'], spec['hp']
    cache = spec.get('cache_mb', 10)
    if contender == 'gorelstorage':
        from . import GoRelStorage
        from . import PostgreSQL
        from . import SQLite3
        from .zodburi import mysql_adapter
        if database == 'sqlite':
            adapter = SQLite3(location)
        elif database == 'postgresql':
            adapter = PostgreSQL(location)
        else:
            adapter = mysql_adapter(location)[0]
        return GoRelStorage(adapter, keep_history=hp, cache_local_mb=cache)
    from relstorage.options import Options
    from relstorage.storage import RelStorage
    opts = Options(keep_history=hp, cache_local_mb=cache)
    if database == 'sqlite':
        from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
        adapter = Sqlite3Adapter(location, {}, options=opts)
    elif database == 'postgresql':
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        adapter = PostgreSQLAdapter(dsn=location, options=opts)
    else:
        from relstorage.adapters.mysql import MySQLAdapter
        from . import _relstorage_mariadb
        _relstorage_mariadb.apply()
        adapter = MySQLAdapter(options=opts, **mysql_params(location))
    _count_relstorage_fetches(type(adapter.mover))
    return RelStorage(adapter, options=opts)


# Objects RelStorage read from the database (its cache statistics are reset when it is cleared).
_fetched = [0]


def _count_relstorage_fetches(mover_class):
    if getattr(mover_class, '_gorelstorage_counted', False):
        return
    load_current, load_currents = mover_class.load_current, mover_class.load_currents

    def counted_current(self, cursor, oid):
        _fetched[0] += 1
        return load_current(self, cursor, oid)

    def counted_currents(self, cursor, oids):
        for row in load_currents(self, cursor, oids):
            _fetched[0] += 1
            yield row
    mover_class.load_current, mover_class.load_currents = counted_current, counted_currents
    mover_class._gorelstorage_counted = True


def _clear_storage_cache(db):
    """Empty the storage's cache, shared by every Connection of the process."""
    storage = db.storage
    if hasattr(storage, 'clear_cache'):
        storage.clear_cache()
    elif hasattr(storage, '_cache'):
        storage._cache.clear(load_persistent=False)


def _fetched_from_database(db):
    """How many object states the process has read from the database so far."""
    storage = db.storage
    if hasattr(storage, 'cache_stats'):
        return storage.cache_stats()['stores']  # every state read from the database is put in the cache
    if hasattr(storage, '_cache'):
        return _fetched[0]
    return None  # a storage without a cache (ZODB's MappingStorage): every load reaches it


# --- one client ---------------------------------------------------------------

def _payload(size):
    """Text-like data (compressible as real pickles are), different per call, so that the pickled
    object is about ``size`` bytes."""
    seed = os.urandom(16).hex().encode() + b' '
    return (seed * (size // len(seed) + 1))[:max(1, size - 60)]


def _timed(samples, n, fn):
    start = time.perf_counter()
    fn()
    samples.append((time.perf_counter() - start) / n * 1e6)


def run_client(db, index, n, size, reps, wait, profile=None):
    """Run every workload for client ``index``; return {workload: [us per object, ...]}.
    ``wait(workload)`` is called before each workload's timed runs and ``wait(None)`` after them
    (a barrier between clients; the round-trip count's marks). With ``profile``, the client's
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

    out = {w: [] for w in WORKLOADS}
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

    def read(samples=None, clear_conn=False, clear_storage=False, prefetch=False):
        """Read the N objects in a new transaction; the time of the reads goes to samples."""
        conn = db.open(tm)
        if clear_conn:
            conn.cacheMinimize()
        if clear_storage:
            _clear_storage_cache(db)
        before = _fetched_from_database(db)
        start = time.perf_counter()
        objs = list(mapping(conn).values())
        if prefetch:
            conn.prefetch(objs)
        got = 0
        for obj in objs:
            got += obj.attr >= 0
        elapsed = time.perf_counter() - start
        if got != n:
            raise AssertionError('read %d objects of %d' % (got, n))
        fetched = None if before is None else _fetched_from_database(db) - before
        if clear_storage and fetched is not None and fetched < n:
            raise AssertionError('a cold read of %d objects: only %d states came from the database' % (n, fetched))
        tm.commit()
        conn.close()
        if samples is not None:
            samples.append(elapsed / n * 1e6)

    for w, fn in (('add', add), ('update', update), ('store', store)):
        wait(w)
        for _ in range(reps):
            _timed(out[w], n, fn)
        wait(None)

    read(clear_conn=True)  # the storage cache holds them now
    wait('warm')
    for _ in range(reps):
        read(out['warm'], clear_conn=True)
    wait(None)

    for w, prefetch in (('cold', False), ('prefetch_cold', True)):
        wait(w)
        for _ in range(reps):
            read(out[w], clear_conn=True, clear_storage=True, prefetch=prefetch)
        wait(None)

    read()
    wait('hot')
    for _ in range(reps):
        read(out['hot'])
    wait(None)

    conn = db.open(tm)
    objs = list(mapping(conn).values())
    wait('steamin')
    for _ in range(reps):
        _timed(out['steamin'], n, lambda: sum(o.attr for o in objs))
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
        _timed(out['readCurrent'], n, read_current)
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
            _timed(out[w], n, fn)
        wait(None)
    return out


def populate(spec, clients):
    import ZODB
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
        db = ZODB.DB(open_storage(spec))
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
    from ._native import go_cpu_profile
    return go_cpu_profile(prefix + '.pprof')


def run_config(spec, clients, kind, n, size, reps):
    """Run ``clients`` clients as threads or processes; return {workload: samples}.
    With spec['profile'] (GoRelStorage only), profiles are written under that path prefix."""
    import ZODB
    populate(spec, clients)
    results = {}
    profile = spec.get('profile')
    if kind == 'threads':
        db = ZODB.DB(open_storage(spec), pool_size=clients + 2)
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
    merged = {w: [] for w in WORKLOADS}
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
    """ZODB alone: the workloads on ZODB's in-memory MappingStorage, one client; {workload: median us}.
    What no storage can go below: pickling, the Connection and the transaction machinery."""
    import ZODB
    from ZODB.MappingStorage import MappingStorage
    db = ZODB.DB(MappingStorage())
    try:
        _populate(db, 1)
        got = run_client(db, 0, n, size, reps, lambda w: None)
    finally:
        db.close()
    return {w: statistics.median(v) for w, v in got.items()}


class RoundTripProxy:
    """A loopback TCP proxy to a database server that counts round trips: on each connection,
    a message from the client after a reply from the server (or the first) is one."""

    def __init__(self, host, port):
        import socket
        self._target = (host, port)
        self._server = socket.create_server(('127.0.0.1', 0))
        self.port = self._server.getsockname()[1]
        self.count = 0
        self._lock = threading.Lock()
        self._sockets = [self._server]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self._target)
            for c in (client, upstream):
                c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sockets += [client, upstream]
            state = {'replied': True}
            threading.Thread(target=self._pipe, args=(client, upstream, state, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(upstream, client, state, False), daemon=True).start()

    def _pipe(self, src, dst, state, from_client):
        import socket
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self._lock:
                    if from_client and state['replied']:
                        self.count += 1
                    state['replied'] = not from_client
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for c in (src, dst):
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self):
        for c in self._sockets:
            c.close()


def _server_address(database, location):
    """(host, port) of a database server given as the bench takes it, or None (SQLite, Unix sockets)."""
    if database == 'sqlite':
        return None
    if database == 'postgresql':
        if '://' in location:
            from urllib.parse import urlsplit
            parts = urlsplit(location)
            host, port = parts.hostname or '', parts.port or 5432
        else:
            words = dict(w.split('=', 1) for w in location.split() if '=' in w)
            host, port = words.get('host', ''), int(words.get('port', 5432))
    else:
        p = mysql_params(location)
        host, port = p['host'] or '', p['port']
    if not host or host.startswith('/'):
        return None
    return host, port


def _through_proxy(database, location, port):
    """The location with the server's address replaced by the proxy's."""
    if database == 'postgresql' and '://' not in location:
        return location + ' host=127.0.0.1 port=%d' % port  # libpq and pgx: the last value wins
    from urllib.parse import urlsplit
    parts = urlsplit(location)
    netloc = parts.netloc.rsplit('@', 1)
    netloc = (netloc[0] + '@' if len(netloc) == 2 else '') + '127.0.0.1:%d' % port
    return parts._replace(netloc=netloc).geturl()


def count_round_trips(spec, n, size, reps=2):
    """{workload: round trips per object (per call for the last four)} for one client of the
    contender in spec, counted by a proxy in front of the server; None without a network server."""
    import ZODB
    target = _server_address(spec['database'], spec['location'])
    if target is None:
        return None
    proxy = RoundTripProxy(*target)
    try:
        spec = dict(spec, location=_through_proxy(spec['database'], spec['location'], proxy.port))
        populate(spec, 1)
        db = ZODB.DB(open_storage(spec))
        marks = []
        try:
            run_client(db, 0, n, size, reps, lambda w: marks.append((w, proxy.count)))
        finally:
            db.close()
    finally:
        proxy.close()
    return {w: (end - start) / float(reps * n) for (w, start), (_, end) in zip(marks[::2], marks[1::2])}


# --- the run and its report -----------------------------------------------------

def _stats(samples):
    s = sorted(samples)
    p99 = s[min(len(s) - 1, max(0, math.ceil(0.99 * len(s)) - 1))]
    return {'median': statistics.median(s), 'p99': p99, 'samples': len(s)}


def machine():
    cores = os.cpu_count()
    model = ''
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    model = line.split(':', 1)[1].strip()
                    break
    except OSError:
        pass
    return {'cpu': model, 'cores': cores, 'python': platform.python_version(), 'system': platform.platform(),
            'zodb': _version('ZODB'), 'relstorage': _version('relstorage'), 'gorelstorage': _version('gorelstorage')}


def _version(dist):
    from importlib.metadata import version
    try:
        return version(dist)
    except Exception:
        return ''


def run(args):
    databases = [('sqlite', None)]
    if args.postgresql:
        databases.append(('postgresql', args.postgresql))
    if args.mysql:
        databases.append(('mysql', args.mysql))
    if args.quick:
        databases = [('sqlite', None)]
    workdir = tempfile.mkdtemp(prefix='gorelstorage-bench-')
    report = {'machine': machine(), 'settings': {
        'quick': args.quick, 'size': args.size, 'counts': args.counts, 'clients': args.clients,
        'kinds': args.kinds, 'modes': args.modes, 'rounds': args.rounds, 'reps': args.reps,
        'cache_local_mb': 10}, 'floor': {}, 'zodb': {}, 'results': [], 'failures': []}
    started = time.perf_counter()
    try:
        for n in args.counts:
            report['zodb'][str(n)] = zodb_floor(n, args.size, args.reps)
        for database, location in databases:
            for mode in args.modes:
                hp = mode == 'hp'
                for n in args.counts:
                    loc = location or os.path.join(workdir, 'floor')
                    single, batched = floor({'contender': 'gorelstorage', 'database': database, 'location': loc,
                                             'hp': hp}, max(n, 100), args.size)
                    report['floor']['%s/%s/%d' % (database, mode, n)] = {'single': single, 'batched': batched}
                    trips = {}
                    for contender in CONTENDERS:
                        try:
                            trips[contender] = count_round_trips({'contender': contender, 'database': database,
                                                                  'hp': hp, 'location': loc}, n, args.size)
                        except Exception as e:
                            if contender == 'gorelstorage':
                                raise
                            trips[contender] = None
                            print('round trips of %s on %s %s: %s' % (contender, database, mode,
                                                                       str(e).splitlines()[0][:200]), file=sys.stderr)
                    for clients in args.clients:
                        for kind in args.kinds:
                            samples = {c: {w: [] for w in WORKLOADS} for c in CONTENDERS}
                            failed = None
                            for rnd in range(args.rounds):
                                order = CONTENDERS[rnd % 2:] + CONTENDERS[:rnd % 2]
                                for contender in order:
                                    spec = {'contender': contender, 'database': database, 'hp': hp,
                                            'location': location or os.path.join(workdir, contender)}
                                    try:
                                        got = run_config(spec, clients, kind, n, args.size, args.reps)
                                    except Exception as e:
                                        if contender == 'gorelstorage':
                                            raise
                                        failed = '%s failed: %s' % (contender, str(e).splitlines()[0][:200])
                                        break
                                    for w in WORKLOADS:
                                        samples[contender][w].extend(got[w])
                                if failed:
                                    break
                            config = {'database': database, 'mode': mode, 'objects': n, 'clients': clients,
                                      'kind': kind}
                            if args.profile:  # a pass of its own: profilers slow what they watch
                                prefix = os.path.join(args.profile, '%s-%s-%d-%d%s' % (
                                    database, mode, n, clients, kind))
                                run_config({'contender': 'gorelstorage', 'database': database, 'hp': hp,
                                            'location': location or os.path.join(workdir, 'gorelstorage'),
                                            'profile': prefix}, clients, kind, n, args.size, args.reps)
                            if failed:
                                report['failures'].append(dict(config, error=failed))
                                print('%s %s, %d objects, %d client(s) as %s: %s'
                                      % (database, mode, n, clients, kind, failed), file=sys.stderr)
                                continue
                            for w in WORKLOADS:
                                row = {'database': database, 'mode': mode, 'objects': n, 'clients': clients,
                                       'kind': kind, 'workload': w}
                                for c in CONTENDERS:
                                    row[c] = _stats(samples[c][w])
                                row['ratio'] = row['gorelstorage']['median'] / row['relstorage']['median']
                                row['round_trips'] = {c: trips[c] and trips[c][w] for c in CONTENDERS}
                                row['zodb'] = report['zodb'][str(n)][w]
                                report['results'].append(row)
                            print(_progress(report['results'][-len(WORKLOADS):]), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    report['elapsed_s'] = time.perf_counter() - started
    report['geomean'] = _geomeans(report['results'])
    with open(args.json, 'w') as f:
        json.dump(report, f, indent=1)
    print(markdown(report))
    print()
    print(summary(report))
    print(overview(report))
    if args.chart:
        chart(report, args.chart)
    print('\n%s written%s; %.0f s' % (args.json, ', ' + args.chart if args.chart else '', report['elapsed_s']))
    return 0


def _progress(rows):
    r = rows[0]
    head = '%s %s, %d objects, %d client(s) as %s:' % (r['database'], r['mode'], r['objects'], r['clients'],
                                                         r['kind'])
    return head + ' ' + ', '.join('%s %.2fx' % (x['workload'], x['ratio']) for x in rows)


def _geomeans(rows):
    by = {}
    for r in rows:
        by.setdefault(r['database'], []).append(r['ratio'])
    out = {db: math.exp(sum(math.log(x) for x in v) / len(v)) for db, v in by.items()}
    allr = [r['ratio'] for r in rows]
    out['all'] = math.exp(sum(math.log(x) for x in allr) / len(allr))
    return out


def markdown(report):
    """The results as a Markdown table: one row per workload x configuration."""
    lines = ['| database | mode | objects | clients | workload | GoRelStorage us (median / p99) '
             '| RelStorage us (median / p99) | ratio | ZODB alone us | round trips Go / RS |',
             '|---|---|---|---|---|---|---|---|---|---|']
    for r in report['results']:
        g, s = r['gorelstorage'], r['relstorage']
        bar = ' **(bar 0.5)**' if r['workload'] in HALF_BAR and r['ratio'] > 0.5 else ''
        lines.append('| %s | %s | %d | %d %s | %s | %.1f / %.1f | %.1f / %.1f | %.2f%s | %.1f | %s |' % (
            r['database'], r['mode'], r['objects'], r['clients'], r['kind'], r['workload'],
            g['median'], g['p99'], s['median'], s['p99'], r['ratio'], bar, r['zodb'], _trips(r)))
    lines.append('')
    lines.append('Geometric mean of the ratios: ' + ', '.join(
        '%s %.2f' % (k, v) for k, v in sorted(report['geomean'].items())))
    for f in report['failures']:
        lines.append('Not measured: %(database)s %(mode)s, %(objects)d objects, %(clients)d %(kind)s: %(error)s' % f)
    for key, f in sorted(report['floor'].items()):
        lines.append('Floor (%s, Go driver alone): %.1f us per primary-key read, %.2f us per object batched.'
                     % (key, f['single'], f['batched']))
    return '\n'.join(lines)


def _spread(report):
    """Per database, sorted: its number of configurations, and per workload the ratios
    GoRelStorage / RelStorage over them, sorted."""
    out = []
    for d in sorted({r['database'] for r in report['results']}):
        rows = [r for r in report['results'] if r['database'] == d]
        configs = len({(r['mode'], r['objects'], r['clients'], r['kind']) for r in rows})
        out.append((d, configs, {w: sorted(r['ratio'] for r in rows if r['workload'] == w) for w in WORKLOADS}))
    return out


def overview(report):
    """One Markdown table for the whole run: per workload and database, the median of the ratios
    over its configurations and their range."""
    spread = _spread(report)
    out = ['| workload | ' + ' | '.join('%s: median ratio (range)' % d for d, _, _ in spread) + ' |',
           '|---|' + '---|' * len(spread)]
    for w in WORKLOADS:
        cells = ['%.2f (%.2f-%.2f)' % (statistics.median(ratios[w]), ratios[w][0], ratios[w][-1])
                 for _, _, ratios in spread]
        out.append('| %s | %s |' % (w, ' | '.join(cells)))
    out.append('')
    out.append('Configurations per database: ' + ', '.join('%s %d' % (d, configs) for d, configs, _ in spread)
               + '; geometric mean of all ratios %.2f.' % report['geomean']['all'])
    return '\n'.join(out)


def _trips(row):
    t = row['round_trips']
    if t['gorelstorage'] is None:
        return 'n/a' if row['database'] == 'sqlite' else '?'
    return '%s / %s' % tuple('%.2g' % t[c] if t[c] is not None else '?' for c in CONTENDERS)


def summary(report):
    """A compact Markdown table per database: one row per workload, the ratio GoRelStorage /
    RelStorage (medians) per configuration, and the microseconds of the first configuration."""
    out = []
    for database in sorted({r['database'] for r in report['results']}):
        rows = [r for r in report['results'] if r['database'] == database]
        configs = []
        for r in rows:
            c = (r['mode'], r['objects'], r['clients'], r['kind'])
            if c not in configs:
                configs.append(c)
        label = lambda c: '%s %d×%d%s' % (c[0], c[1], c[2], c[3][0])  # noqa: E731
        first = configs[0]
        out.append('**%s** (ratio GoRelStorage / RelStorage, median time; columns: mode, objects x clients, '
                   't = threads, p = processes; us per object in %s)' % (database, label(first)))
        out.append('')
        out.append('| workload | Go us | RS us | ZODB alone us | round trips Go / RS | '
                   + ' | '.join(label(c) for c in configs) + ' |')
        out.append('|---|---|---|---|---|' + '---|' * len(configs))
        for w in WORKLOADS:
            by = {(r['mode'], r['objects'], r['clients'], r['kind']): r for r in rows if r['workload'] == w}
            f = by[first]
            cells = ['%.2f%s' % (by[c]['ratio'], '!' if w in HALF_BAR and by[c]['ratio'] > 0.5 else '')
                     for c in configs]
            out.append('| %s | %.1f | %.1f | %.1f | %s | %s |' % (
                w, f['gorelstorage']['median'], f['relstorage']['median'], f['zodb'], _trips(f), ' | '.join(cells)))
        out.append('')
        out.append('Geometric mean of the ratios: %.2f.' % report['geomean'][database])
        out.append('')
    return '\n'.join(out)


def chart(report, path):
    """One panel per database: per workload, the median of the ratios over its configurations
    (bar) and their range (line), on a log scale; 1 (parity) and 0.5 (the bar) marked."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    spread = _spread(report)
    fig, axes = plt.subplots(len(spread), 1, figsize=(11, 3.2 * len(spread)), squeeze=False)
    for ax, (database, configs, ratios) in zip(axes[:, 0], spread):
        mids, lows, highs = [], [], []
        for w in WORKLOADS:
            mid = statistics.median(ratios[w])
            mids.append(mid)
            lows.append(mid - ratios[w][0])
            highs.append(ratios[w][-1] - mid)
        colors = ['tab:red' if m > 1 else ('tab:orange' if w in HALF_BAR and m > 0.5 else 'tab:green')
                  for w, m in zip(WORKLOADS, mids)]
        ax.bar(range(len(WORKLOADS)), mids, color=colors, yerr=[lows, highs], capsize=3)
        ax.axhline(1.0, color='black', linewidth=0.8)
        ax.axhline(0.5, color='red', linewidth=0.8, linestyle='--')
        ax.set_yscale('log')
        ax.set_xticks(range(len(WORKLOADS)))
        ax.set_xticklabels(WORKLOADS, rotation=30, ha='right')
        ax.set_title('%s: GoRelStorage / RelStorage time, median and range over %d configurations '
                     '(lower is better)' % (database, configs), fontsize=10)
    fig.suptitle('GoRelStorage %s vs RelStorage %s, %d-byte objects; dashed: 0.5' % (
        report['machine'].get('gorelstorage'), report['machine'].get('relstorage'), report['settings']['size']),
        fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def add_arguments(p):
    p.add_argument('--quick', action='store_true',
                   help='SQLite only, 100 objects, 1 and 2 threads, history-free and -preserving (< 2 min)')
    p.add_argument('--postgresql', metavar='DSN', help='also run on this PostgreSQL database (it is emptied)')
    p.add_argument('--mysql', metavar='URI',
                   help='also run on this MySQL/MariaDB database, gomysql://user:password@host:port/db '
                        '(it is emptied)')
    p.add_argument('--size', type=int, default=300, help='object size in bytes (300)')
    p.add_argument('--counts', type=int, nargs='+', default=None, help='objects per transaction (1 10 100 1000)')
    p.add_argument('--clients', type=int, nargs='+', default=None, help='concurrent clients (1 2)')
    p.add_argument('--kinds', nargs='+', choices=('threads', 'processes'), default=None,
                   help='clients as threads, processes or both (both)')
    p.add_argument('--modes', nargs='+', choices=('hf', 'hp'), default=['hf', 'hp'])
    p.add_argument('--rounds', type=int, default=None, help='rounds, contenders rotated between them (3)')
    p.add_argument('--reps', type=int, default=None, help='samples per workload per client per round (5; quick 10)')
    p.add_argument('--profile', metavar='DIR',
                   help='after each configuration, run GoRelStorage once more under profilers: '
                        'DIR/<configuration>.pprof (Go, go tool pprof) and -client<i>.pstats (cProfile)')
    p.add_argument('--json', default='bench-results.json', help='where to save the results')
    p.add_argument('--chart', default='bench-results.png', help='where to draw the chart ("" for none)')


def main(args):
    quick = args.quick
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    args.counts = args.counts or ([100] if quick else [1, 10, 100, 1000])
    args.clients = args.clients or [1, 2]
    args.kinds = args.kinds or (['threads'] if quick else ['threads', 'processes'])
    args.rounds = args.rounds or 3
    args.reps = args.reps or (10 if quick else 5)
    return run(args)
