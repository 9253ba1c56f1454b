"""Writer processes for test_reliability.py.

python reliability_worker.py counter DATABASE LOCATION hp|hf WORKER STOP_FILE
    Until STOP_FILE exists: one transaction increments the root's Length counter and
    adds the key WORKER-N to the root's OOBTree, N counting this worker's successes.
    Every TransientError is retried, at the transaction's start too (as a web
    framework's retry does). CommitOutcomeUnknownError is resolved as an application
    would: the key tells whether that transaction landed. Prints "ok N" after each
    success, then "done SUCCESSES RETRIES UNKNOWN".

python reliability_worker.py slots DATABASE LOCATION hp|hf WORKER
    Forever (until killed): one transaction writes the worker's next label into its
    four slot objects and adds a new object under that label to its OOBTree. Prints
    "ready" once open, then "committed LABEL" after each commit returned.

DATABASE is a key of databases.DATABASES, LOCATION what its location() returned.
"""
import os
import random
import sys
import time

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from transaction.interfaces import TransientError

from databases import DATABASES
import gorelstorage


def open_db(database, location, mode):
    return ZODB.DB(DATABASES[database].open_go(location, mode == 'hp', commit_lock_timeout=30))


def counter(database, location, mode, worker, stop_file):
    db = open_db(database, location, mode)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    done = retries = unknown = 0
    while not os.path.exists(stop_file):
        key = '%s-%d' % (worker, done)
        try:
            tm.begin()
            root = conn.root()
            root['counter'].change(1)
            root['keys'][key] = 1
            tm.commit()
        except TransientError:
            tm.abort()
            retries += 1
            time.sleep(random.uniform(0, 0.02))
            continue
        except gorelstorage.CommitOutcomeUnknownError:
            tm.abort()
            unknown += 1
            if not landed(tm, conn, key):
                continue
        done += 1
        print('ok', done, flush=True)
    print('done', done, retries, unknown, flush=True)
    conn.close()
    db.close()


def landed(tm, conn, key):
    """Whether the transaction that added key committed, asked until the database answers."""
    while True:
        try:
            tm.begin()
            found = key in conn.root()['keys']
            tm.abort()
            return found
        except TransientError:
            tm.abort()
            time.sleep(0.05)


def slots(database, location, mode, worker):
    db = open_db(database, location, mode)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    with tm:
        label = conn.root()['w' + worker]['slots'][0]['label'] + 1
    print('ready', flush=True)
    while True:
        try:
            tm.begin()
            mine = conn.root()['w' + worker]
            payload = os.urandom(random.randrange(100, 20000))
            for slot in mine['slots']:
                slot['label'] = label
                slot['payload'] = payload
            mine['tree'][label] = PersistentMapping(label=label)
            tm.commit()
        except TransientError:
            tm.abort()
            continue
        print('committed', label, flush=True)
        label += 1


if __name__ == '__main__':
    {'counter': counter, 'slots': slots}[sys.argv[1]](*sys.argv[2:])
