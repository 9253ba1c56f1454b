"""A separate process using a GoRelStorage SQLite database with a cache file.

python cache_worker.py DATA_DIR CACHE_DIR load FIRST LAST [BARRIER_DIR WORKERS]
    loads oids FIRST..LAST-1, waits for WORKERS workers to have loaded theirs, closes
python cache_worker.py DATA_DIR CACHE_DIR change OID STATE  commits STATE as oid OID, closes
Prints the cache statistics as JSON at the end.
"""
import json
import os
import sys
import time

from ZODB.Connection import TransactionMetaData
from ZODB.utils import p64

from gorelstorage import GoRelStorage
from gorelstorage import SQLite3


def barrier(directory, workers):
    open(os.path.join(directory, 'ready-%d' % os.getpid()), 'w').close()
    deadline = time.time() + 60
    while len(os.listdir(directory)) < int(workers):
        if time.time() > deadline:
            raise SystemExit('the other workers did not arrive')
        time.sleep(0.01)


def main(data_dir, cache_dir, action, a, b, barrier_dir=None, workers=None):
    storage = GoRelStorage(SQLite3(data_dir), cache_local_dir=cache_dir or None)
    try:
        if action == 'load':
            storage.poll_invalidations()
            for oid in range(int(a), int(b)):
                storage.load(p64(oid))
            if barrier_dir:
                barrier(barrier_dir, workers)
        elif action == 'change':
            oid = p64(int(a))
            storage.poll_invalidations()
            _, serial = storage.load(oid)
            t = TransactionMetaData()
            storage.tpc_begin(t)
            storage.store(oid, serial, b.encode('ascii'), '', t)
            storage.tpc_vote(t)
            storage.tpc_finish(t)
        stats = storage.cache_stats()
    finally:
        storage.close()
    print(json.dumps(stats))


if __name__ == '__main__':
    main(*sys.argv[1:])
