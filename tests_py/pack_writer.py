"""Commits until a stop file appears, for test_pack's writers: each writer grows and prunes
its own subtree, leaving garbage behind. Run as a script, it writes through RelStorage in its
own process (two copies of SQLite in one process would break each other's file locks).
Arguments: tests directory, database name, location, keep-history (1/0), stop file."""
import os
import random
import sys

import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.POSException import ConflictError


def grow_and_prune(db, name, stopped):
    """Adds nodes linked to other nodes of root[name]'s subtree, and unlinks old ones
    (garbage unless another node links them), until stopped() is true."""
    rnd = random.Random(name)
    tm = transaction.TransactionManager()
    conn = db.open(tm)
    try:
        while not stopped():
            try:
                with tm:
                    if name not in conn.root():
                        conn.root()[name] = PersistentMapping(nodes=PersistentMapping(), n=0)
                        continue
                    tree = conn.root()[name]
                    nodes = tree['nodes']
                    tree['n'] += 1
                    keys = list(nodes)
                    links = [nodes[k] for k in rnd.sample(keys, min(2, len(keys)))]
                    nodes['n%d' % tree['n']] = PersistentMapping(links=links, payload='x' * 200)
                    if len(keys) > 20:
                        del nodes[rnd.choice(keys)]
            except ConflictError:
                continue
    finally:
        conn.close()


def main():
    sys.path.insert(0, sys.argv[1])
    from databases import DATABASES
    name, location, keep_history, stop = sys.argv[2:6]
    db = ZODB.DB(DATABASES[name].open_relstorage(location, keep_history == '1'))
    try:
        grow_and_prune(db, 'relstorage', lambda: os.path.exists(stop))
    finally:
        db.close()


if __name__ == '__main__':
    main()
