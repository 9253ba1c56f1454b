"""How much of a load runs without the GIL: N loads in one thread, then N loads
in each of two threads at once (each thread its own instance, as ZODB gives
each Connection its own). Prints numbers; asserts nothing.

    .venv/bin/python -m gorelstorage.bench.threads [--objects N] [--size BYTES]
"""
import argparse
import os
import tempfile
import threading
import time

from ZODB.Connection import TransactionMetaData

from gorelstorage import GoRelStorage
from gorelstorage import SQLite3


def fill(storage, count, size):
    oids = [storage.new_oid() for _ in range(count)]
    t = TransactionMetaData()
    storage.tpc_begin(t)
    for oid in oids:
        storage.store(oid, None, os.urandom(size), '', t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)
    return oids


def load_all(instance, oids, rounds):
    instance.poll_invalidations()  # hold one snapshot, as a ZODB Connection does
    for _ in range(rounds):
        for oid in oids:
            instance.load(oid)


def timed(threads):
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument('--objects', type=int, default=2000)
    parser.add_argument('--size', type=int, default=300)
    parser.add_argument('--rounds', type=int, default=10)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        storage = GoRelStorage(SQLite3(os.path.join(d, 'data')))
        oids = fill(storage, args.objects, args.size)
        a, b = storage.new_instance(), storage.new_instance()
        load_all(a, oids, 1)
        load_all(b, oids, 1)
        loads = args.objects * args.rounds
        one = timed([threading.Thread(target=load_all, args=(a, oids, args.rounds))])
        two = timed([threading.Thread(target=load_all, args=(x, oids, args.rounds)) for x in (a, b)])
        print('objects of %d bytes, %d loads per thread' % (args.size, loads))
        print('1 thread : %.3f s  (%.1f us/load)' % (one, one / loads * 1e6))
        print('2 threads: %.3f s  (%.1f us/load per thread), %.2fx the time of one thread'
              % (two, two / loads * 1e6, two / one))
        a.release()
        b.release()
        storage.close()


if __name__ == '__main__':
    main()
