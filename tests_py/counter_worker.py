"""A separate process incrementing BTrees.Length counters with conflict resolution.

python counter_worker.py go|relstorage DATA_DIR hp|hf INCREMENTS [BARRIER_DIR WORKERS]
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


def open_storage(kind, data_dir, keep_history):
    if kind == 'go':
        import gorelstorage
        if not hasattr(gorelstorage.GoRelStorage.tryToResolveConflict, '__wrapped_count__'):
            gorelstorage.GoRelStorage.tryToResolveConflict = _counting(gorelstorage.GoRelStorage.tryToResolveConflict)
            gorelstorage.GoRelStorage.tryToResolveConflict.__wrapped_count__ = True
        return gorelstorage.GoRelStorage(gorelstorage.SQLite3(data_dir), keep_history=keep_history,
                                         commit_lock_timeout=60)
    from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
    from relstorage.options import Options
    from relstorage.storage import RelStorage
    opts = Options(keep_history=keep_history, commit_lock_timeout=60)
    return RelStorage(Sqlite3Adapter(data_dir, {}, options=opts), options=opts)


def wait_for_all(barrier_dir, workers):
    open(os.path.join(barrier_dir, 'ready-%d' % os.getpid()), 'w').close()
    deadline = time.monotonic() + 120
    while len(os.listdir(barrier_dir)) < int(workers):
        if time.monotonic() > deadline:
            raise SystemExit('the other workers did not start')
        time.sleep(0.01)


def main(kind, data_dir, mode, increments, barrier_dir=None, workers=None):
    db = ZODB.DB(open_storage(kind, data_dir, mode == 'hp'))
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


def init(kind, data_dir, mode):
    db = ZODB.DB(open_storage(kind, data_dir, mode == 'hp'))
    with db.transaction() as conn:
        conn.root()['a'] = Length()
        conn.root()['b'] = Length()
    db.close()


def read(kind, data_dir, mode):
    db = ZODB.DB(open_storage(kind, data_dir, mode == 'hp'))
    with db.transaction() as conn:
        print(conn.root()['a'](), conn.root()['b']())
    db.close()


if __name__ == '__main__':
    if sys.argv[1] == 'init':
        init(*sys.argv[2:5])
    elif sys.argv[1] == 'read':
        read(*sys.argv[2:5])
    else:
        main(*sys.argv[1:])
