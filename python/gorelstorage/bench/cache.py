"""The shared pickle cache, measured from Python. Prints numbers; asserts nothing.

    .venv/bin/python -m gorelstorage.bench.cache [--objects N] [--size BYTES] [--postgresql DSN]

1. a load served by the shared cache, against a load that reaches the database
   (cache-local-mb 0), in microseconds per load;
2. warm-up after a restart: loading N objects in a freshly opened storage, with
   and without the cache file (cache-local-dir), including the open itself;
3. prefetch: N cold objects loaded one by one, against prefetch(N) then the loads.

SQLite by default (a temporary directory); with --postgresql, a database you can
write to (the objects are added to it).
"""
import argparse
import os
import shutil
import tempfile
import time

from ZODB.Connection import TransactionMetaData

from gorelstorage import GoRelStorage
from gorelstorage import PostgreSQL
from gorelstorage import SQLite3


def fill(storage, count, size):
    oids = [storage.new_oid() for _ in range(count)]
    for start in range(0, count, 5000):
        t = TransactionMetaData()
        storage.tpc_begin(t)
        for oid in oids[start:start + 5000]:
            storage.store(oid, None, os.urandom(size), '', t)
        storage.tpc_vote(t)
        storage.tpc_finish(t)
    return oids


def load_all(instance, oids):
    start = time.perf_counter()
    for oid in oids:
        instance.load(oid)
    return time.perf_counter() - start


def best(fn, rounds=5):
    return min(fn() for _ in range(rounds))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--objects', type=int, default=10000)
    parser.add_argument('--size', type=int, default=300)
    parser.add_argument('--postgresql', metavar='DSN', help='run on this PostgreSQL database instead of SQLite')
    args = parser.parse_args()
    tmp = tempfile.mkdtemp()
    cache_dir = os.path.join(tmp, 'cache')
    if args.postgresql:
        adapter, where = (lambda: PostgreSQL(args.postgresql)), 'PostgreSQL'
    else:
        adapter, where = (lambda: SQLite3(os.path.join(tmp, 'data'))), 'SQLite'
    n = args.objects
    try:
        storage = GoRelStorage(adapter(), keep_history=False, cache_local_mb=100)
        oids = fill(storage, n, args.size)
        storage.close()
        print('%s, %d objects of %d bytes, history-free' % (where, n, args.size))

        # 1. hit against database load
        storage = GoRelStorage(adapter(), keep_history=False, cache_local_mb=100)
        inst = storage.new_instance()
        inst.poll_invalidations()
        load_all(inst, oids)  # fill
        hit = best(lambda: load_all(inst, oids))
        inst.release()
        storage.close()
        storage = GoRelStorage(adapter(), keep_history=False, cache_local_mb=0)
        inst = storage.new_instance()
        inst.poll_invalidations()
        load_all(inst, oids)  # warm the database's own caches
        miss = best(lambda: load_all(inst, oids))
        inst.release()
        storage.close()
        print('load, served by the shared cache: %6.2f us' % (hit / n * 1e6))
        print('load, from the database         : %6.2f us  (%.1fx the cached load)'
              % (miss / n * 1e6, miss / hit))

        # 2. warm-up after a restart
        def restart(with_file):
            start = time.perf_counter()
            s = GoRelStorage(adapter(), keep_history=False, cache_local_mb=100,
                             cache_local_dir=cache_dir if with_file else None)
            opened = time.perf_counter() - start
            i = s.new_instance()
            i.poll_invalidations()
            loaded = load_all(i, oids)
            stats = s.cache_stats()
            i.release()
            s.close()
            return opened, loaded, stats['hits']

        shutil.rmtree(cache_dir, ignore_errors=True)
        restart(True)  # writes the file at close
        for label, with_file in (('without the cache file', False), ('with the cache file   ', True)):
            opened, loaded, hits = min(restart(with_file) for _ in range(3))
            print('restart %s: open %7.1f ms + %d loads %7.1f ms = %7.1f ms (%d cache hits)'
                  % (label, opened * 1e3, n, loaded * 1e3, (opened + loaded) * 1e3, hits))
        print('cache file: %.1f MB' % (sum(os.path.getsize(os.path.join(cache_dir, f))
                                             for f in os.listdir(cache_dir)) / 1e6))

        # 3. prefetch against single loads, both cold
        storage = GoRelStorage(adapter(), keep_history=False, cache_local_mb=100)
        inst = storage.new_instance()
        inst.poll_invalidations()

        def single():
            storage.clear_cache()
            return load_all(inst, oids)

        def prefetched():
            storage.clear_cache()
            start = time.perf_counter()
            inst.prefetch(oids)
            load_all(inst, oids)
            return time.perf_counter() - start

        one, batch = best(single, 3), best(prefetched, 3)
        inst.release()
        storage.close()
        print('cold loads one by one       : %6.2f us per object' % (one / n * 1e6))
        print('cold prefetch, then the loads: %6.2f us per object (%.1fx faster)' % (batch / n * 1e6, one / batch))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == '__main__':
    main()
