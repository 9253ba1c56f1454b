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
p99 over every recorded sample. Every sample also records the time spent inside the storage:
each call on the storage and its instances goes through a proxy that times it (the same for every
contender), and the storage ratio is GoRelStorage's time inside over RelStorage's, held to 0.7 on
SQLite and 0.5 on the servers. Beside them, in the same run:

  ZEO            ZEO 6 on a FileStorage (a server on loopback, started for each run, the
                 client cache as big as the others'), the storage most sites would otherwise keep
  floor          GoRelStorage's Go database driver alone: a primary-key read per object, and a
                 batched read
  ZODB alone     the workloads on ZODB's in-memory MappingStorage, one client: pickling, the
                 Connection and transaction machinery that no storage can go below
  round trips    SQL round trips per object (per call for the last four), one client of each
                 contender run once more through a loopback proxy in front of the server that
                 counts them (PostgreSQL and MySQL; SQLite has none)
"""
import json
import os
import shutil
import sys
import tempfile
import time
from .contenders import CONTENDERS
from .contenders import ZEO
from .report import _geomeans
from .report import _progress
from .report import _stats
from .report import chart
from .report import machine
from .report import markdown
from .report import overview
from .report import summary
from .roundtrips import count_round_trips
from .workloads import WORKLOADS
from .workloads import floor
from .workloads import inside_key
from .workloads import run_config
from .workloads import sample_keys
from .workloads import zodb_floor


def _databases(args):
    databases = [('sqlite', None)]
    if args.postgresql:
        databases.append(('postgresql', args.postgresql))
    if args.mysql:
        databases.append(('mysql', args.mysql))
    if args.quick:
        databases = [('sqlite', None)]
    return databases


def run_other(args, name):
    """One of the other benchmarks (--pack, --blobs, --replicas, --convert, --scaling, --zodbshootout):
    its module's run, its table printed, its results saved (to bench-<name>.json unless --json
    says where)."""
    import importlib
    module = importlib.import_module('.' + name, __name__)
    if name in ('pack', 'blobs', 'shootout', 'scaling'):
        results = module.run(args, _databases(args))
    else:
        results = module.run(args)
    print(module.markdown(results, args) if name == 'blobs' else module.markdown(results))
    if args.json == 'bench-results.json':
        args.json = 'bench-%s.json' % name
    with open(args.json, 'w') as f:
        json.dump({'machine': machine(), name: results}, f, indent=1)
    return 0


def run(args):
    databases = _databases(args)
    workdir = tempfile.mkdtemp(prefix='gorelstorage-bench-')
    report = {'machine': machine(), 'settings': {
        'quick': args.quick, 'size': args.size, 'counts': args.counts, 'clients': args.clients,
        'kinds': args.kinds, 'modes': args.modes, 'rounds': args.rounds, 'reps': args.reps,
        'cache_local_mb': 10}, 'floor': {}, 'zodb': {}, 'results': [], 'failures': []}
    started = time.perf_counter()
    zeo_runs = {}
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
                            samples = {c: {k: [] for k in sample_keys()} for c in CONTENDERS}
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
                                    for k, got_samples in got.items():
                                        samples[contender][k].extend(got_samples)
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
                            zeo = args.zeo and _zeo_samples(zeo_runs, args, n, clients, kind)
                            for w in WORKLOADS:
                                row = {'database': database, 'mode': mode, 'objects': n, 'clients': clients,
                                       'kind': kind, 'workload': w}
                                for c in CONTENDERS:
                                    row[c] = _stats(samples[c][w])
                                row['ratio'] = row['gorelstorage']['median'] / row['relstorage']['median']
                                # the time inside the storage's API, us per object (medians)
                                row['inside'] = {c: _stats(samples[c][inside_key(w)])['median'] for c in CONTENDERS}
                                row['storage_ratio'] = _ratio(row['inside']['gorelstorage'],
                                                              row['inside']['relstorage'])
                                if zeo:
                                    row[ZEO] = _stats(zeo[w])
                                    row['inside'][ZEO] = _stats(zeo[inside_key(w)])['median']
                                row['round_trips'] = {c: trips[c] and trips[c][w] for c in CONTENDERS}
                                row['zodb'] = report['zodb'][str(n)][w]
                                row['inside']['zodb'] = report['zodb'][str(n)][inside_key(w)]
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


def _ratio(go, rs):
    """go / rs, None when RelStorage spent no measurable time (steamin, hot: the storage is not called)."""
    return go / rs if rs > 0 else None


def _zeo_samples(runs, args, n, clients, kind):
    """ZEO on a FileStorage for one configuration, run once for every database and mode (it
    uses neither): {workload: samples} over --rounds runs, each on a new server and file."""
    key = (n, clients, kind)
    if key not in runs:
        got = {k: [] for k in sample_keys()}
        for _ in range(args.rounds):
            spec = {'contender': ZEO, 'database': 'zeo', 'hp': True, 'location': None}
            for w, samples in run_config(spec, clients, kind, n, args.size, args.reps).items():
                got[w].extend(samples)
        runs[key] = got
    return runs[key]


def add_arguments(p):
    p.add_argument('--quick', action='store_true',
                   help='SQLite only, 100 objects, 1 and 2 threads, history-free and -preserving (< 2 min)')
    p.add_argument('--postgresql', metavar='DSN', help='also run on this PostgreSQL database (it is emptied)')
    p.add_argument('--mysql', metavar='URI',
                   help='also run on this MySQL/MariaDB database, gomysql://user:password@host:port/db '
                        '(it is emptied)')
    p.add_argument('--no-zeo', dest='zeo', action='store_false',
                   help='leave out ZEO 6 on a FileStorage, measured beside the two contenders (a ZEO server '
                        'started on loopback for each run)')
    p.add_argument('--size', type=int, default=300, help='object size in bytes (300)')
    p.add_argument('--counts', type=int, nargs='+', default=None, help='objects per transaction (1 10 100 1000)')
    p.add_argument('--clients', type=int, nargs='+', default=None, help='concurrent clients (1 2)')
    p.add_argument('--kinds', nargs='+', choices=('threads', 'processes'), default=None,
                   help='clients as threads, processes or both (both)')
    p.add_argument('--modes', nargs='+', choices=('hf', 'hp'), default=['hf', 'hp'],
                   help='history-free (hf), history-preserving (hp) or both (both)')
    p.add_argument('--rounds', type=int, default=None, help='rounds, contenders rotated between them (3)')
    p.add_argument('--reps', type=int, default=None, help='samples per workload per client per round (5; quick 10)')
    p.add_argument('--profile', metavar='DIR',
                   help='after each configuration, run GoRelStorage once more under profilers: '
                        'DIR/<configuration>.pprof (Go, go tool pprof) and -client<i>.pstats (cProfile)')
    p.add_argument('--blobs', action='store_true',
                   help='instead, the blob benchmark: one big blob and many small ones written and read cold '
                        '(MB/s and peak memory)')
    p.add_argument('--blob-mb', type=int, default=100, help='the big blob, MB (100)')
    p.add_argument('--blob-count', type=int, default=1000, help='how many small blobs (1000)')
    p.add_argument('--blob-kb', type=int, default=50, help='the small blobs, kB (50)')
    p.add_argument('--pack', action='store_true',
                   help='instead, the pack benchmark: pack with garbage collection of a history-preserving '
                        'database with a tenth of garbage (time and peak memory)')
    p.add_argument('--pack-objects', default='100000',
                   help='database sizes for --pack, objects, comma-separated (100000)')
    p.add_argument('--convert', nargs=2, metavar=('SOURCE_DSN', 'DESTINATION_DSN'),
                   help='instead, the conversion benchmark: a history-preserving PostgreSQL database copied '
                        'by zodbconvert and by gorelstorage convert (both databases are emptied)')
    p.add_argument('--convert-changes', type=int, default=46500,
                   help='object changes in the source database for --convert (46500)')
    p.add_argument('--replicas', nargs=2, metavar=('PRIMARY_DSN', 'STANDBY_PORT'),
                   help='instead, writers against a PostgreSQL primary and readers against its hot standby '
                        '(on 127.0.0.1:STANDBY_PORT), 1 to 8 processes (the database is emptied)')
    p.add_argument('--scaling', action='store_true',
                   help='instead, 1, 2, 4 and 8 writer and reader processes against one server, on --postgresql '
                        'and --mysql (the databases are emptied): commits/s and loads/s')
    p.add_argument('--replica-objects', type=int, default=20000,
                   help='objects in the database for --replicas and --scaling (20000; at least 8000)')
    p.add_argument('--replica-seconds', type=float, default=5.0,
                   help='how long each process of --replicas and --scaling runs (5)')
    p.add_argument('--zodbshootout', action='store_true',
                   help='instead, zodbshootout 0.8 itself as the harness (installed by scripts/bench '
                        '--zodbshootout): GoRelStorage, RelStorage and ZEO on a FileStorage, --counts objects '
                        '(500), --clients, --kinds, --reps values per workload (9), --rounds runs of each '
                        '(1; their medians\' median), history-free unless --modes hp; '
                        'RelStorage uses the database named like --postgresql\'s or --mysql\'s with 2 appended')
    p.add_argument('--json', default='bench-results.json',
                   help='where to save the results (bench-results.json; bench-blobs.json, bench-pack.json, '
                        'bench-convert.json, bench-shootout.json)')
    p.add_argument('--chart', default='bench-results.png', help='where to draw the chart ("" for none)')


def main(args):
    quick = args.quick
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    if args.zodbshootout:
        args.counts = args.counts or [500]
        args.clients = args.clients or [1]
        args.kinds = args.kinds or ['threads']
        args.reps = args.reps or 9
        args.rounds = args.rounds or 1
        return run_other(args, 'shootout')
    args.counts = args.counts or ([100] if quick else [1, 10, 100, 1000])
    args.clients = args.clients or [1, 2]
    args.kinds = args.kinds or (['threads'] if quick else ['threads', 'processes'])
    args.rounds = args.rounds or 3
    args.reps = args.reps or (10 if quick else 5)
    for name in ('pack', 'replicas', 'convert', 'blobs', 'scaling'):
        if getattr(args, name):
            return run_other(args, name)
    return run(args)
