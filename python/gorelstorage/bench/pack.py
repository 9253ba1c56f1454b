"""``gorelstorage bench --pack``: pack with garbage collection, GoRelStorage and RelStorage
side by side on identical databases.

For each database and size (--pack-objects, comma-separated), each contender gets the same
history-preserving database, built afresh by the same deterministic program, shaped as a site's
history: the objects are imported in transactions of 1,000, then edited as users do, a fifth
of them rewritten in transactions of 10, then a tenth unlinked from the root's tree in
transactions of 50 (the garbage). Then the contender packs to now with garbage collection, in a
new process. Reported: the pack's time, the packing process's peak memory (and its growth during
the pack), and the objects left, which must agree.
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from .contenders import CONTENDERS
from .contenders import open_storage

# Objects per transaction: imported, rewritten, unlinked.
_IMPORT, _EDIT, _UNLINK = 1000, 10, 50


def _rss(field):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(field + ':'):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def build(spec, objects):
    """The benchmark's database: objects PersistentMappings in an OOBTree, each referring to
    up to two earlier ones that stay; a fifth rewritten; every tenth unlinked, and nothing
    refers to those."""
    import ZODB
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping
    spec = dict(spec, contender='gorelstorage')
    db = ZODB.DB(open_storage(spec), cache_size=_IMPORT * 2)
    try:
        with db.transaction() as conn:
            conn.root()['items'] = OOBTree()
        for start in range(0, objects, _IMPORT):
            with db.transaction() as conn:
                items = conn.root()['items']
                for i in range(start, min(start + _IMPORT, objects)):
                    refs = [items[j] for j in sorted({i - 1, i // 2}) if 0 <= j < i and j % 10]
                    items[i] = PersistentMapping(n=i, refs=refs, text='object %d' % i)
            conn.cacheMinimize()
        _in_transactions(db, range(0, objects, 5), _EDIT, lambda items, i: items[i].__setitem__('text', 'edited %d' % i))
        _in_transactions(db, range(0, objects, 10), _UNLINK, lambda items, i: items.__delitem__(i))
    finally:
        db.close()


def _in_transactions(db, keys, per_txn, change):
    keys = list(keys)
    conn = db.open()
    try:
        for start in range(0, len(keys), per_txn):
            items = conn.root()['items']
            for i in keys[start:start + per_txn]:
                change(items, i)
            conn.transaction_manager.commit()
            if start % (per_txn * 200) == 0:
                conn.cacheMinimize()
    finally:
        conn.close()


def pack(spec):
    """Pack to now with garbage collection: seconds, peak memory, growth, objects left."""
    from ZODB.serialize import referencesf
    storage = open_storage(spec)
    try:
        base = _rss('VmRSS')
        start = time.perf_counter()
        storage.pack(None, referencesf)
        seconds = time.perf_counter() - start
        peak = _rss('VmHWM')
    finally:
        storage.close()
    from ..testing import count_objects
    left = count_objects(spec['database'], spec['location'])
    return {'seconds': seconds, 'peak': peak, 'growth': max(0, peak - base), 'left': left}


def _step(spec, what, objects):
    out = subprocess.run([sys.executable, '-m', 'gorelstorage.bench.pack', json.dumps(spec), what, str(objects)],
                         capture_output=True, timeout=24 * 3600)
    if out.returncode:
        raise RuntimeError(out.stderr.decode().strip().splitlines()[-1] if out.stderr else 'failed')
    return json.loads(out.stdout)


def run(args, databases):
    from ..testing import zap
    workdir = tempfile.mkdtemp(prefix='gorelstorage-pack-bench-')
    sizes = [int(n) for n in str(args.pack_objects).split(',')]
    results = []
    try:
        for database, location in databases:
            for objects in sizes:
                row = {'database': database, 'objects': objects}
                for contender in CONTENDERS:
                    loc = location or os.path.join(workdir, 'db-' + contender)
                    zap(database, loc)
                    spec = {'contender': contender, 'database': database, 'location': loc, 'hp': True}
                    start = time.perf_counter()
                    _step(spec, 'build', objects)
                    print('%s %d objects: built for %s in %.0f s' % (database, objects, contender,
                                                                     time.perf_counter() - start), file=sys.stderr)
                    row[contender] = _step(spec, 'pack', objects)
                    zap(database, loc)
                row['ratio'] = row['gorelstorage']['seconds'] / row['relstorage']['seconds']
                results.append(row)
                print(_line(row), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _line(row):
    g, r = row['gorelstorage'], row['relstorage']
    return ('%s, %d objects: GoRelStorage %.1f s (peak %.0f MB, +%.0f MB), RelStorage %.1f s '
            '(peak %.0f MB, +%.0f MB), time ratio %.3f; objects left %d / %d') % (
        row['database'], row['objects'], g['seconds'], g['peak'] / 1e6, g['growth'] / 1e6, r['seconds'],
        r['peak'] / 1e6, r['growth'] / 1e6, row['ratio'], g['left'], r['left'])


def markdown(results):
    lines = ['| database | objects | GoRelStorage s | peak MB (+MB) | RelStorage s | peak MB (+MB) | time ratio |'
             ' objects left |',
             '|---|---:|---:|---:|---:|---:|---:|---:|']
    for row in results:
        g, r = row['gorelstorage'], row['relstorage']
        lines.append('| %s | %s | %.2f | %.0f (+%.0f) | %.2f | %.0f (+%.0f) | %.3f | %d / %d |' % (
            row['database'], '{:,}'.format(row['objects']), g['seconds'], g['peak'] / 1e6, g['growth'] / 1e6,
            r['seconds'], r['peak'] / 1e6, r['growth'] / 1e6, row['ratio'], g['left'], r['left']))
    return '\n'.join(lines)


if __name__ == '__main__':
    _spec, _what, _objects = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    if _what == 'build':
        build(_spec, _objects)
        print('{}')
    else:
        print(json.dumps(pack(_spec)))
