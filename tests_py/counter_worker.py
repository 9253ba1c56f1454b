"""A separate process incrementing BTrees.Length counters with conflict resolution.

python counter_worker.py go|relstorage DATABASE LOCATION hp|hf INCREMENTS [BARRIER_DIR WORKERS]
DATABASE is a key of databases.DATABASES, LOCATION what its location() returned.
With a barrier, every worker waits until all have started, so that they commit at the same time.
Prints the counters' values it read at the end, its retries and the conflicts it resolved.
"""
import os
import sys
import time

import transaction
import ZODB
from BTrees.Length import Length
from ZODB.POSException import ConflictError


RESOLVED = [0]


def _counting(resolve):
    def wrapper(*args, **kwargs):
        RESOLVED[0] += 1
        return resolve(*args, **kwargs)
    return wrapper


def open_storage(kind, database, location, keep_history):
    from databases import DATABASES
    db = DATABASES[database]
    if kind == 'go':
        import gorelstorage
        if not hasattr(gorelstorage.GoRelStorage.tryToResolveConflict, '__wrapped_count__'):
            gorelstorage.GoRelStorage.tryToResolveConflict = _counting(gorelstorage.GoRelStorage.tryToResolveConflict)
            gorelstorage.GoRelStorage.tryToResolveConflict.__wrapped_count__ = True
        return db.open_go(location, keep_history, commit_lock_timeout=60)
    return db.open_relstorage(location, keep_history, commit_lock_timeout=60)


def wait_for_all(barrier_dir, workers):
    open(os.path.join(barrier_dir, 'ready-%d' % os.getpid()), 'w').close()
    deadline = time.monotonic() + 120
    while len(os.listdir(barrier_dir)) < int(workers):
        if time.monotonic() > deadline:
            raise SystemExit('the other workers did not start')
        time.sleep(0.01)


def main(kind, database, location, mode, increments, barrier_dir=None, workers=None):
    db = ZODB.DB(open_storage(kind, database, location, mode == 'hp'))
    if barrier_dir:
        wait_for_all(barrier_dir, workers)
    retries = 0
    for _ in range(int(increments)):
        for _attempt in range(200):
            conn = db.open()
            try:
                root = conn.root()
                root['a'].change(1)
                root['b'].change(2)
                transaction.commit()
                break
            except ConflictError:
                transaction.abort()
                retries += 1
            finally:
                conn.close()
        else:
            raise SystemExit('gave up after 200 conflicts')
    conn = db.open()
    print(conn.root()['a'](), conn.root()['b'](), retries, RESOLVED[0])
    conn.close()
    db.close()


def init(kind, database, location, mode):
    db = ZODB.DB(open_storage(kind, database, location, mode == 'hp'))
    with db.transaction() as conn:
        conn.root()['a'] = Length()
        conn.root()['b'] = Length()
    db.close()


def read(kind, database, location, mode):
    db = ZODB.DB(open_storage(kind, database, location, mode == 'hp'))
    with db.transaction() as conn:
        print(conn.root()['a'](), conn.root()['b']())
    db.close()


if __name__ == '__main__':
    if sys.argv[1] == 'init':
        init(*sys.argv[2:6])
    elif sys.argv[1] == 'read':
        read(*sys.argv[2:6])
    else:
        main(*sys.argv[1:])
