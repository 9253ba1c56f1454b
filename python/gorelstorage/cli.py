"""The ``gorelstorage`` command."""
import argparse
import os
import shutil
import sys
import tempfile
import time


def demo(args):
    """A short ZODB application: write objects, read them back, print what happened."""
    import ZODB
    from BTrees.OOBTree import OOBTree
    from persistent.mapping import PersistentMapping

    from . import GoRelStorage
    from . import PostgreSQL
    from . import SQLite3

    workdir = None
    data_dir = args.data_dir
    if data_dir is None and not args.postgresql and not args.mysql:
        workdir = tempfile.mkdtemp(prefix='gorelstorage-demo-')
        data_dir = os.path.join(workdir, 'data')

    def adapter():
        if args.mysql:
            from .zodburi import mysql_adapter
            return mysql_adapter(args.mysql)[0]
        return PostgreSQL(args.postgresql) if args.postgresql else SQLite3(data_dir)
    try:
        storage = GoRelStorage(adapter(), keep_history=not args.history_free)
        db = ZODB.DB(storage)
        print('storage: %s (%s)' % (storage.getName(), 'history-free' if args.history_free else 'history-preserving'))

        start = time.perf_counter()
        per_txn = max(1, args.objects // args.transactions)
        written = 0
        with db.transaction() as conn:
            conn.root()['demo'] = OOBTree()
        while written < args.objects:
            with db.transaction('demo: add objects') as conn:
                tree = conn.root()['demo']
                for i in range(written, min(written + per_txn, args.objects)):
                    tree[i] = PersistentMapping({'n': i, 'text': 'object %d' % i})
                written = min(written + per_txn, args.objects)
        elapsed_write = time.perf_counter() - start
        print('wrote %d objects in %d transactions: %.3f s (%.1f us/object)'
              % (written, args.transactions, elapsed_write, elapsed_write / written * 1e6))

        db.close()
        storage = GoRelStorage(adapter(), keep_history=not args.history_free)
        db = ZODB.DB(storage)
        start = time.perf_counter()
        total = 0
        with db.transaction() as conn:
            for i, obj in conn.root()['demo'].items():
                if obj['n'] != i:
                    raise SystemExit('read back object %d with n=%r' % (i, obj['n']))
                total += 1
        elapsed_read = time.perf_counter() - start
        print('read %d objects back after reopening, all correct: %.3f s (%.1f us/object)'
              % (total, elapsed_read, elapsed_read / total * 1e6))

        with db.transaction('demo: update') as conn:
            conn.root()['demo'][0]['text'] = 'changed'
        with db.transaction() as conn:
            print('updated object 0: %r' % conn.root()['demo'][0]['text'])
        print('database: %d objects, %d bytes, last transaction %s'
              % (len(storage), storage.getSize(), storage.lastTransaction().hex()))
        if not args.history_free:
            print('undo log (newest first): %s'
                  % ', '.join(repr(e['description']) for e in db.undoLog(0, 3)))
        db.close()
    finally:
        if workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog='gorelstorage', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('demo', help=demo.__doc__)
    p.add_argument('--data-dir', help='SQLite data directory (default: a temporary one, removed afterwards)')
    p.add_argument('--postgresql', metavar='DSN',
                   help='use this PostgreSQL database instead of SQLite (libpq DSN or postgresql:// URL)')
    p.add_argument('--mysql', metavar='URI',
                   help='use this MySQL/MariaDB database instead of SQLite (gomysql://user:password@host:port/db)')
    p.add_argument('--objects', type=int, default=5000)
    p.add_argument('--transactions', type=int, default=10)
    p.add_argument('--history-free', action='store_true')
    p.add_argument('--keep', action='store_true', help='keep the temporary data directory')
    p.set_defaults(func=demo)
    from . import bench
    p = sub.add_parser('bench', help='zodbshootout\'s workloads, GoRelStorage and RelStorage side by side',
                       description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    p.set_defaults(func=bench.main)
    from . import packcli
    p = sub.add_parser('pack', help='pack the storages of a ZConfig file, as zodbpack does',
                       description=packcli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    packcli.add_arguments(p)
    p.set_defaults(func=packcli.main)
    from . import convert
    p = sub.add_parser('convert', help='copy the transactions of one storage into another, as zodbconvert does',
                       description=convert.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_arguments(p)
    p.set_defaults(func=convert.main)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == '__main__':
    sys.exit(main())
