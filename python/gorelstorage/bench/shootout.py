"""``gorelstorage bench --zodbshootout``: zodbshootout itself as the harness.

zodbshootout (0.8.0, on pyperf 2.3.1) runs its workloads on every database of a ZConfig file, each
in its own pyperf worker processes. This writes that file with GoRelStorage and RelStorage on each
chosen database and ZEO (a ZEO server on a FileStorage, started here on loopback), runs it, and
reads the pyperf results back: per workload, each contender's median time per operation (one
transaction of ``--counts`` objects, or one call), MappingStorage's (zodbshootout's own floor:
ZODB's work without a storage), and the storage's share of GoRelStorage's time against
RelStorage's: (GoRelStorage - MappingStorage) / (RelStorage - MappingStorage). With --rounds N, each
configuration runs N times and the median of the N medians is reported, with the storage ratio's
range over the runs.

GoRelStorage uses the database the DSN names; RelStorage the database of the same name with 2
appended, on the same server (scripts/bench's test servers have both). Both are emptied.
zodbshootout empties the storages' caches before its cold reads through ``storage._cache.clear()``,
which GoRelStorage honours.
"""
import glob
import math
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

from ..zodburi import mysql_params

# zodbshootout's workloads, in its order, and those the speed goal covers.
WORKLOADS = ('add', 'store', 'update', 'cold', 'prefetch_cold', 'readCurrent', 'warm', 'hot', 'steamin',
             'ex_commit', 'im_commit', 'tpc', 'new_oid', 'conflicts')
GOALED = ('add', 'store', 'update', 'cold', 'prefetch_cold', 'readCurrent', 'ex_commit', 'tpc', 'new_oid',
          'conflicts')
# The storage's share of GoRelStorage's time, at most this much of RelStorage's.
GOAL = {'sqlite': 0.7, 'postgresql': 0.5, 'mysql': 0.5}


def relstorage_location(database, location):
    """The database RelStorage uses beside GoRelStorage's: the same name with 2 appended."""
    if database == 'postgresql':
        if not re.search(r'\bdbname=\S+', location):
            raise ValueError('--zodbshootout needs a PostgreSQL DSN naming its dbname')
        return re.sub(r'\bdbname=(\S+)', r'dbname=\g<1>2', location)
    head, db = location.rsplit('/', 1)
    return '%s/%s2' % (head, db)


def _adapter_section(contender, database, location, workdir):
    if database == 'sqlite':
        path = os.path.join(workdir, contender)
        os.makedirs(path, exist_ok=True)
        keys = {'data-dir': path}
    elif database == 'postgresql':
        keys = {'dsn': location}
    else:
        p = mysql_params(location)
        keys = {'host': p['host'], 'port': p['port'], 'user': p['user'], 'passwd': p['passwd'], 'db': p['db']}
    name = {'gorelstorage': 'go', 'relstorage': ''}[contender] + {'sqlite': 'sqlite3'}.get(database, database)
    body = ''.join('      %s %s\n' % kv for kv in keys.items())
    return '    <%s>\n%s    </%s>\n' % (name, body, name)


def write_config(path, databases, workdir, hp, zeo_port, cache_mb=10):
    """The ZConfig file zodbshootout reads: GoRelStorage and RelStorage per database, and ZEO."""
    out = ['%import relstorage', '%import gorelstorage', '']
    for database, location in databases:
        for contender, tag in (('gorelstorage', 'gorelstorage'), ('relstorage', 'relstorage')):
            loc = location if contender == 'gorelstorage' or location is None else \
                relstorage_location(database, location)
            out.append('<zodb %s_%s>' % (contender, database))
            out.append('  <%s>' % tag)
            out.append('    keep-history %s' % ('true' if hp else 'false'))
            out.append('    cache-local-mb %d' % cache_mb)
            out.append(_adapter_section(contender, database, loc, workdir).rstrip('\n'))
            out.append('  </%s>' % tag)
            out.append('</zodb>')
    out += ['<zodb zeo_filestorage>', '  <zeoclient>', '    server 127.0.0.1:%d' % zeo_port,
            '  </zeoclient>', '</zodb>', '']
    with open(path, 'w') as f:
        f.write('\n'.join(out))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def start_zeo(workdir):
    """A ZEO server on a FileStorage in workdir, on a free loopback port: (process, port)."""
    port = _free_port()
    data = os.path.join(workdir, 'zeo')
    os.makedirs(data, exist_ok=True)
    log = open(os.path.join(workdir, 'zeo.log'), 'w')
    proc = subprocess.Popen([sys.executable, '-m', 'ZEO.runzeo', '-a', '127.0.0.1:%d' % port,
                             '-f', os.path.join(data, 'Data.fs')], stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(('127.0.0.1', port), timeout=1).close()
            return proc, port
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                with open(os.path.join(workdir, 'zeo.log')) as f:
                    raise RuntimeError('the ZEO server did not start: %s' % f.read()[-2000:])
            time.sleep(0.1)


def _site_dir(workdir, mariadb, spawn):
    """A directory for PYTHONPATH whose sitecustomize runs in every zodbshootout process: with
    ``mariadb``, the corrections RelStorage needs on MariaDB (gorelstorage._relstorage_mariadb
    says what and why); with ``spawn``, multiprocessing's spawn start method for its client
    processes (a process forked from one running Go cannot run Go, and GoRelStorage says so)."""
    site = os.path.join(workdir, 'site')
    os.makedirs(site, exist_ok=True)
    with open(os.path.join(site, 'sitecustomize.py'), 'w') as f:
        if mariadb:
            f.write('from gorelstorage import _relstorage_mariadb\n_relstorage_mariadb.apply()\n')
        if spawn:
            f.write('import multiprocessing\nmultiprocessing.set_start_method("spawn", force=True)\n')
    return site


def _magic(v):
    """Whether v is what zodbshootout records for a workload that failed (the exception is
    printed) or that it disables (ZEO's conflicts with several clients): 666 s over the loops,
    6.66 times a power of ten per operation."""
    if not v or v <= 0:
        return True
    k = math.log10(v / 6.66)
    return abs(k - round(k)) < 1e-9


def read_results(output):
    """({contender: {workload: median seconds}}, [(contender, workload)] that failed or were
    disabled) from zodbshootout's pyperf files."""
    import pyperf
    out, failed = {}, []
    for path in sorted(glob.glob(os.path.join(os.path.splitext(output)[0] + '.d', '*.json'))):
        contender = os.path.basename(path).rsplit('_', 1)[0]
        suite = pyperf.BenchmarkSuite.load(path)
        out[contender] = {}
        for bench in suite.get_benchmarks():
            try:
                median = bench.median()
            except Exception:  # no values
                median = None
            if median is None or _magic(median):
                failed.append((contender, bench.get_name()))
                continue
            out[contender][bench.get_name()] = median
    return out, failed


def _errors(text):
    """The distinct exception lines of zodbshootout's output."""
    seen = []
    for line in text.splitlines():
        if re.match(r'^[A-Za-z_][\w.]*(Error|Exception)\b.*:', line) and line not in seen:
            seen.append(line[:300])
    return seen[:10]


def _empty(databases):
    """Empty the server databases both contenders use, schema included (zodbshootout's --zap
    keeps the schema, and with it a history mode another run left)."""
    from ..testing import zap
    for database, location in databases:
        if location is not None:
            zap(database, location)
            zap(database, relstorage_location(database, location))


def storage_ratio(go, rs, floor):
    """GoRelStorage's storage time over RelStorage's, each less MappingStorage's."""
    if go is None or rs is None or floor is None or rs - floor <= 0:
        return None
    return max(go - floor, 0.0) / (rs - floor)


def run_config(args, databases, workdir, clients, kind):
    """One zodbshootout run: every database at one concurrency; its results."""
    hp = args.modes == ['hp']
    zeo, port = start_zeo(workdir)
    try:
        config = os.path.join(workdir, 'zodbshootout.conf')
        write_config(config, databases, workdir, hp, port)
        output = os.path.join(workdir, 'out-%d%s.json' % (clients, kind))
        cmd = [sys.executable, '-m', 'zodbshootout', config, '--zap', 'force',
               '--object-counts', str(args.counts[0]), '-c', str(clients),
               '--processes', '1', '--values', str(args.reps), '-o', output]
        if kind == 'threads':
            cmd += ['--threads', 'shared']
        env = dict(os.environ)
        mariadb = any(db == 'mysql' for db, _ in databases)
        if mariadb or kind == 'processes':
            site = _site_dir(workdir, mariadb, kind == 'processes')
            env['PYTHONPATH'] = os.pathsep.join(filter(None, [site, env.get('PYTHONPATH')]))
            cmd += ['--inherit-environ', 'PYTHONPATH']
        print('zodbshootout: %d client(s) as %s, %d objects' % (clients, kind, args.counts[0]), file=sys.stderr)
        _empty(databases)
        done = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            raise RuntimeError('zodbshootout failed (%d): %s' % (done.returncode, done.stdout[-3000:]))
        medians, failed = read_results(output)
        errors = _errors(done.stdout)
        for line in errors:
            print('zodbshootout: ' + line, file=sys.stderr)
        return medians, failed, errors
    finally:
        zeo.terminate()
        zeo.wait(30)


def run(args, databases):
    try:
        import zodbshootout  # noqa: F401
    except ImportError:
        raise SystemExit('zodbshootout is not installed: scripts/bench --zodbshootout installs '
                         'zodbshootout 0.8.0, pyperf 2.3.1 and six')
    results = {'objects': args.counts[0], 'mode': 'hp' if args.modes == ['hp'] else 'hf', 'rounds': args.rounds,
               'runs': []}
    for clients in args.clients:
        for kind in args.kinds:
            rounds, failed, errors = [], [], []
            for n in range(args.rounds):
                if args.rounds > 1:
                    print('zodbshootout: round %d of %d' % (n + 1, args.rounds), file=sys.stderr)
                workdir = tempfile.mkdtemp(prefix='gorelstorage-shootout-')
                try:
                    medians, f, e = run_config(args, databases, workdir, clients, kind)
                finally:
                    shutil.rmtree(workdir, ignore_errors=True)
                rounds.append(medians)
                failed += [x for x in f if x not in failed]
                errors += [x for x in e if x not in errors]
            results['runs'].append({'clients': clients, 'kind': kind, 'databases': [db for db, _ in databases],
                                    'medians': combine(rounds), 'rounds': rounds, 'failed': failed,
                                    'errors': errors})
    return results


def combine(rounds):
    """Per contender and workload, the median of the rounds' medians (of the rounds that have one):
    a run of zodbshootout on a busy machine moves a workload by a fifth or more, and the median of
    several runs by less."""
    out = {}
    for medians in rounds:
        for contender, workloads in medians.items():
            for w, v in workloads.items():
                out.setdefault(contender, {}).setdefault(w, []).append(v)
    return {c: {w: statistics.median(vs) for w, vs in ws.items()} for c, ws in out.items()}


def ratio_range(run, db, w):
    """The lowest and highest storage ratio of workload w on db over a run's rounds (None when no
    round defines it)."""
    ratios = []
    for medians in run.get('rounds', ()):
        r = storage_ratio(medians.get('gorelstorage_' + db, {}).get(w), medians.get('relstorage_' + db, {}).get(w),
                          medians.get('MappingStorage', {}).get(w))
        if r is not None:
            ratios.append(r)
    return (min(ratios), max(ratios)) if ratios else None


def markdown(results):
    """Per run and database: each contender's median (ms per operation) and the storage ratio."""
    lines = []
    for r in results['runs']:
        floor = r['medians'].get('MappingStorage', {})
        zeo = r['medians'].get('zeo_filestorage', {})
        for db in r['databases']:
            go = r['medians'].get('gorelstorage_' + db, {})
            rs = r['medians'].get('relstorage_' + db, {})
            several = len(r.get('rounds', ())) > 1
            lines.append('\n**%s, %s, %d object(s), %d client(s) as %s** (ms per operation, medians%s; storage '
                         'ratio = (GoRelStorage - MappingStorage) / (RelStorage - MappingStorage), goal %.1f; '
                         'n/a: failed, or disabled by zodbshootout)\n'
                         % (db, results['mode'], results['objects'], r['clients'], r['kind'],
                            ' of %d runs, and the storage ratio\'s range over them' % len(r['rounds'])
                            if several else '', GOAL[db]))
            lines.append('| workload | MappingStorage | ZEO + FileStorage | RelStorage | GoRelStorage '
                         '| ratio | storage ratio |' + (' range |' if several else ''))
            lines.append('|---|---:|---:|---:|---:|---:|---:|' + ('---:|' if several else ''))
            failed = {tuple(f) for f in r.get('failed', ())}
            for w in WORKLOADS:
                if w not in go and w not in rs and ('gorelstorage_' + db, w) not in failed:
                    continue
                ratio = go[w] / rs[w] if w in go and w in rs and rs[w] else None
                sr = storage_ratio(go.get(w), rs.get(w), floor.get(w))
                mark = '' if sr is None or w not in GOALED else (' ok' if sr <= GOAL[db] else ' over')
                cell = lambda name, m: _ms(m.get(w), (name, w) in failed)  # noqa: E731
                span = ratio_range(r, db, w) if several else None
                lines.append('| %s | %s | %s | %s | %s | %s | %s%s |' % (
                    w, cell('MappingStorage', floor), cell('zeo_filestorage', zeo), cell('relstorage_' + db, rs),
                    cell('gorelstorage_' + db, go), '%.2f' % ratio if ratio is not None else '-',
                    '%.2f' % sr if sr is not None else '-', mark) +
                    (' %s |' % ('%.2f-%.2f' % span if span else '-') if several else ''))
        for line in r.get('errors', ()):
            lines.append('\nzodbshootout reported: `%s`' % line)
    return '\n'.join(lines)


def _ms(v, failed=False):
    if failed:
        return 'n/a'  # failed (the errors follow the table) or disabled by zodbshootout
    return '-' if v is None else '%.3f' % (v * 1000)
