"""A process under gevent (``monkey.patch_all()`` first), for test_gevent.py.

    python gevent_worker.py DATABASE LOCATION wait    commit once while the test holds the commit
                                                      lock; count a ticker greenlet's ticks meanwhile
    python gevent_worker.py DATABASE LOCATION many N  N greenlets sharing one ZODB.DB each add a key
                                                      and increment a counter, retrying conflicts
                                                      (50 at a time)

Prints one JSON line of results.
"""
from gevent import monkey

monkey.patch_all()

import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.lock  # noqa: E402
import transaction  # noqa: E402
import ZODB  # noqa: E402
from ZODB.POSException import ConflictError  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from databases import DATABASES  # noqa: E402


def main():
    name, location, mode = sys.argv[1:4]
    storage = DATABASES[name].open_go(location, True, commit_lock_timeout=60)
    db = ZODB.DB(storage)
    ticks = [0]

    def ticker():
        while True:
            gevent.sleep(0.01)
            ticks[0] += 1
    tick = gevent.spawn(ticker)
    out = {}
    if mode == 'wait':
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        conn.root()['n'].change(1)
        print('committing', flush=True)
        before, start = ticks[0], time.monotonic()
        tm.commit()  # waits for the commit lock the test holds
        out = {'ticks': ticks[0] - before, 'seconds': time.monotonic() - start}
        conn.close()
    else:
        count = int(sys.argv[4])

        # At most 50 ZODB Connections open at once (each holds database connections, and the
        # test servers allow a few hundred); the other greenlets wait their turn.
        slots = gevent.lock.BoundedSemaphore(50)

        retries = [0]

        def work(i):
            with slots:
                tm = transaction.TransactionManager()
                conn = db.open(tm)
                while True:  # retried after a conflict, with a short random pause, as apps do
                    try:
                        tm.begin()
                        root = conn.root()
                        root['n'].change(1)
                        root['tree']['k%05d' % i] = i
                        tm.commit()
                        break
                    except ConflictError:
                        tm.abort()
                        retries[0] += 1
                        gevent.sleep(random.uniform(0, 0.02))
                conn.close()
        before = ticks[0]
        gevent.joinall([gevent.spawn(work, i) for i in range(count)], raise_error=True)
        with db.transaction() as conn:
            out = {'n': conn.root()['n'](), 'keys': len(conn.root()['tree']), 'ticks': ticks[0] - before,
                   'retries': retries[0]}
    tick.kill()
    db.close()
    print(json.dumps(out), flush=True)


if __name__ == '__main__':
    main()
