"""``gorelstorage bench --replicas PRIMARY_DSN STANDBY_PORT``: writers against a PostgreSQL
primary and readers against its hot standby, GoRelStorage and RelStorage side by side.

The primary's database is filled with --replica-objects small objects (history-free) and the
standby given time to replay them. Then, for 1, 2, 4 and 8 processes at a time, each process
runs --replica-seconds:

  writers   commit one changed object per transaction (each process its own objects), on the
            primary: commits/s, all processes together
  readers   with ro-replica-conf naming the standby, load random objects from it (no shared
            cache: cache-local-mb 0, ZODB's cache emptied per transaction of 100 loads): loads/s

The database is emptied; give a throwaway one.
"""
import json
import os
import random
import subprocess
import sys
import tempfile
import time

_WAYS = ('gorelstorage', 'relstorage')


def _open(contender, database, location, ro_conf=None):
    """A history-free storage without a shared cache on a PostgreSQL DSN or a gomysql URI."""
    if contender == 'gorelstorage':
        from .. import GoRelStorage
        from .. import PostgreSQL
        from ..zodburi import mysql_adapter
        adapter = PostgreSQL(location) if database == 'postgresql' else mysql_adapter(location)[0]
        return GoRelStorage(adapter, keep_history=False, cache_local_mb=0, ro_replica_conf=ro_conf)
    from relstorage.options import Options
    from relstorage.storage import RelStorage
    opts = Options(keep_history=False, cache_local_mb=0, ro_replica_conf=ro_conf)
    if database == 'postgresql':
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        adapter = PostgreSQLAdapter(dsn=location, options=opts)
    else:
        from relstorage.adapters.mysql import MySQLAdapter

        from .. import _relstorage_mariadb
        from ..zodburi import mysql_params
        _relstorage_mariadb.apply()
        adapter = MySQLAdapter(options=opts, **mysql_params(location))
    return RelStorage(adapter, options=opts)


def worker(contender, role, database, location, ro_conf, index, objects, seconds):
    """One process's count of commits (writers) or loads (readers) in ``seconds``."""
    import transaction
    import ZODB
    db = ZODB.DB(_open(contender, database, location, ro_conf or None))
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    done, rnd = 0, random.Random(index)
    try:
        tree = conn.root()['objects']
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if role == 'writers':
                tm.begin()
                tree[index * 1000 + rnd.randrange(1000)]['n'] = done
                tm.commit()
                done += 1
            else:
                tm.begin()
                conn.cacheMinimize()
                for _ in range(100):
                    tree[rnd.randrange(objects)]['n']
                tm.abort()
                done += 100
    finally:
        conn.close()
        db.close()
    return done


def fill(database, location, objects):
    """Empty the database, then give it ``objects`` small objects in an IOBTree."""
    import ZODB
    from BTrees.IOBTree import IOBTree
    from persistent.mapping import PersistentMapping

    from ..testing import zap
    zap(database, location)
    db = ZODB.DB(_open('gorelstorage', database, location))
    try:
        with db.transaction() as conn:
            conn.root()['objects'] = IOBTree()
        for start in range(0, objects, 1000):
            with db.transaction() as conn:
                tree = conn.root()['objects']
                for i in range(start, min(objects, start + 1000)):
                    tree[i] = PersistentMapping(n=0)
    finally:
        db.close()


def measure(database, location, ro_conf, objects, seconds, label=''):
    """Writers, then readers (through ro_conf when given), 1, 2, 4 and 8 processes at a time,
    each contender in turn: rows of commits/s or loads/s, all processes together."""
    results = []
    for role in ('writers', 'readers'):
        for n in (1, 2, 4, 8):
            row = {'role': role, 'processes': n}
            if label:
                row['database'] = label
            for contender in _WAYS:
                procs = [subprocess.Popen(
                    [sys.executable, '-m', 'gorelstorage.bench.replicas', contender, role, database, location,
                     ro_conf if role == 'readers' and ro_conf else '', str(i), str(objects), str(seconds)],
                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(n)]
                total = 0
                for p in procs:
                    out, err = p.communicate(timeout=seconds + 300)
                    if p.returncode:
                        raise RuntimeError('%s %s failed: %s' % (contender, role, err.strip().splitlines()[-1:]))
                    total += json.loads(out)['done']
                row[contender] = total / seconds
            row['ratio'] = row['gorelstorage'] / row['relstorage'] if row['relstorage'] else None
            print('%s%s x%d: GoRelStorage %.0f/s, RelStorage %.0f/s' % (
                label and label + ' ', role, n, row['gorelstorage'], row['relstorage']), file=sys.stderr)
            results.append(row)
    return results


def run(args):
    import re

    from ..testing import wait_for_replay
    primary, port = args.replicas[0], int(args.replicas[1])
    standby = re.sub(r'port=\d+', 'port=%d' % port, primary) if 'port=' in primary else primary + ' port=%d' % port
    objects = max(args.replica_objects, 8000)
    print('filling the primary with %d objects ...' % objects, file=sys.stderr)
    fill('postgresql', primary, objects)
    wait_for_replay(primary, standby, 60)
    workdir = tempfile.mkdtemp(prefix='gorelstorage-replica-bench-')
    ro_conf = os.path.join(workdir, 'readers.conf')
    with open(ro_conf, 'w') as f:
        f.write('127.0.0.1:%d\n' % port)
    return measure('postgresql', primary, ro_conf, objects, args.replica_seconds)


def markdown(results):
    lines = ['| %sprocesses | role | GoRelStorage /s | RelStorage /s | GoRelStorage / RelStorage |'
             % ('database | ' if results and 'database' in results[0] else ''),
             '|%s---:|---|---:|---:|---:|' % ('---|' if results and 'database' in results[0] else '')]
    for r in results:
        unit = 'commits' if r['role'] == 'writers' else 'loads'
        lines.append('| %s%d | %s (%s) | %.0f | %.0f | %.2f |' % (
            r['database'] + ' | ' if 'database' in r else '', r['processes'], r['role'], unit, r['gorelstorage'],
            r['relstorage'], r['ratio'] or 0))
    return '\n'.join(lines)


def main():
    contender, role, database, location, ro_conf, index, objects, seconds = sys.argv[1:9]
    print(json.dumps({'done': worker(contender, role, database, location, ro_conf, int(index), int(objects),
                                     float(seconds))}))


if __name__ == '__main__':
    main()
