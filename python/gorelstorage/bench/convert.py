"""``gorelstorage bench --convert SOURCE_DSN DESTINATION_DSN``: copying a history-preserving
PostgreSQL database, side by side.

The source database is filled once by a deterministic program (--convert-changes object
changes, ten a transaction, 1.2 kB each, three in ten rewriting an earlier object), then
copied into the emptied destination database three ways, each in its own process:

  relstorage     RelStorage's zodbconvert, RelStorage to RelStorage
  rs-into-go     RelStorage's zodbconvert, RelStorage to GoRelStorage
  gorelstorage   gorelstorage convert, GoRelStorage to GoRelStorage (the bulk path)

Reported: the time and the process's peak memory of each (the median of --rounds), and
GoRelStorage's time over RelStorage's. Both databases are emptied; give throwaway ones.
"""
import os
import random
import subprocess
import sys
import tempfile
import time

_WAYS = ('relstorage', 'rs-into-go', 'gorelstorage')


def fill(dsn, changes):
    """The source: changes object changes in transactions of ten, as RelStorage reads it."""
    import ZODB
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    import gorelstorage
    from ..testing import zap
    zap('postgresql', dsn)
    db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(dsn), keep_history=True))
    rnd = random.Random(1)
    try:
        with db.transaction() as conn:
            conn.root()['objects'] = OOBTree()
        made = []
        for start in range(0, changes, 10):
            with db.transaction() as conn:
                tree = conn.root()['objects']
                for n in range(start, min(start + 10, changes)):
                    payload = rnd.getrandbits(4800).to_bytes(600, 'little').hex()
                    if made and rnd.random() < 0.3:
                        tree[rnd.choice(made)]['x'] = payload
                    else:
                        key = 'o%08d' % n
                        tree[key] = PersistentMapping(x=payload)
                        made.append(key)
    finally:
        db.close()


def _section(kind, role, dsn, read_only=False):
    ro = '  read-only true\n' if read_only else ''
    if kind == 'go':
        return ('<gorelstorage %s>\n  keep-history true\n%s  <gopostgresql>\n    dsn %s\n  </gopostgresql>\n'
                '</gorelstorage>\n' % (role, ro, dsn))
    return ('<relstorage %s>\n  keep-history true\n%s  <postgresql>\n    dsn %s\n  </postgresql>\n'
            '</relstorage>\n' % (role, ro, dsn))


def _command(way, config):
    if way == 'gorelstorage':
        return [sys.executable, '-m', 'gorelstorage.cli', 'convert', config]
    return [sys.executable, '-m', 'relstorage.zodbconvert', config]


def _timed(command):
    """(seconds, peak RSS bytes) of a child process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    err = proc.stderr.read().decode()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise RuntimeError('%s failed: %s' % (' '.join(command), err.strip().splitlines()[-1:] or err))
    return elapsed, usage.ru_maxrss * 1024


def run(args):
    from ..testing import zap
    source, destination = args.convert
    print('filling the source with %d changes ...' % args.convert_changes, file=sys.stderr)
    fill(source, args.convert_changes)
    workdir = tempfile.mkdtemp(prefix='gorelstorage-convert-bench-')
    configs = {
        'relstorage': '%import relstorage\n' + _section('rs', 'source', source, True)
                      + _section('rs', 'destination', destination),
        'rs-into-go': '%import relstorage\n%import gorelstorage\n' + _section('rs', 'source', source, True)
                      + _section('go', 'destination', destination),
        'gorelstorage': '%import gorelstorage\n' + _section('go', 'source', source, True)
                        + _section('go', 'destination', destination),
    }
    samples = {w: [] for w in _WAYS}
    for rnd in range(args.rounds):
        for way in _WAYS[rnd % 3:] + _WAYS[:rnd % 3]:
            path = os.path.join(workdir, way + '.conf')
            with open(path, 'w') as f:
                f.write(configs[way])
            zap('postgresql', destination)
            samples[way].append(_timed(_command(way, path)))
            print('round %d %s: %.2f s' % (rnd + 1, way, samples[way][-1][0]), file=sys.stderr)
    row = {'changes': args.convert_changes}
    for way in _WAYS:
        times = sorted(s[0] for s in samples[way])
        row[way] = {'seconds': times[len(times) // 2], 'peak_mb': max(s[1] for s in samples[way]) / 1e6}
    row['ratio'] = row['gorelstorage']['seconds'] / row['relstorage']['seconds']
    return [row]


def markdown(results):
    lines = ['| changes | zodbconvert RelStorage->RelStorage | zodbconvert RelStorage->GoRelStorage | '
             'gorelstorage convert | time ratio |', '|---:|---:|---:|---:|---:|']
    for r in results:
        lines.append('| {:,} | {:.1f} s ({:.0f} MB) | {:.1f} s ({:.0f} MB) | {:.1f} s ({:.0f} MB) | {:.2f} |'.format(
            r['changes'], r['relstorage']['seconds'], r['relstorage']['peak_mb'], r['rs-into-go']['seconds'],
            r['rs-into-go']['peak_mb'], r['gorelstorage']['seconds'], r['gorelstorage']['peak_mb'], r['ratio']))
    return '\n'.join(lines)
