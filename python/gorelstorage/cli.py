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
        with db.transaction('demo: make the tree') as conn:
            conn.root()['demo'] = OOBTree()
        # The objects spread over the transactions as evenly as they go.
        made = min(args.transactions, args.objects)
        written = 0
        for t in range(made):
            upto = args.objects * (t + 1) // made
            with db.transaction('demo: add objects') as conn:
                tree = conn.root()['demo']
                for i in range(written, upto):
                    tree[i] = PersistentMapping({'n': i, 'text': 'object %d' % i})
            written = upto
        elapsed_write = time.perf_counter() - start
        print('wrote %d objects in %d transactions, after one that made the tree: %.3f s (%.1f us/object)'
              % (written, made, elapsed_write, elapsed_write / written * 1e6))
        if made < args.transactions:
            print('(%d transactions asked for, but there are only %d objects to spread over them)'
                  % (args.transactions, args.objects))

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
        objects = len(storage)
        print('database: %d objects (the %d written, the root, and %d others: the tree\'s nodes and what '
              'was there before), '
              '%d bytes, last transaction %s' % (objects, written, max(0, objects - written - 1),
                                                  storage.getSize(), storage.lastTransaction().hex()))
        if not args.history_free:
            print('undo log (newest first): %s'
                  % ', '.join(repr(e['description']) for e in db.undoLog(0, 3)))
        db.close()
    finally:
        if workdir and not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def _at_least_one(text):
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError('%r is not a whole number' % text)
    if n < 1:
        raise argparse.ArgumentTypeError('must be at least 1, not %d' % n)
    return n


def main(argv=None):
    parser = argparse.ArgumentParser(prog='gorelstorage', description=__doc__)
    sub = parser.add_subparsers(dest='command', required=True)
    p = sub.add_parser('demo', help=demo.__doc__, description=demo.__doc__)
    p.add_argument('--data-dir', help='SQLite data directory (default: a temporary one, removed afterwards)')
    p.add_argument('--postgresql', metavar='DSN',
                   help='use this PostgreSQL database instead of SQLite (libpq DSN or postgresql:// URL)')
    p.add_argument('--mysql', metavar='URI',
                   help='use this MySQL/MariaDB database instead of SQLite (gomysql://user:password@host:port/db)')
    p.add_argument('--objects', type=_at_least_one, default=5000,
                   help='how many objects to write (default: %(default)s)')
    p.add_argument('--transactions', type=_at_least_one, default=10,
                   help='how many transactions to spread them over (default: %(default)s; '
                        'at most one per object)')
    p.add_argument('--history-free', action='store_true',
                   help='keep no history (the default keeps it, and undo works)')
    p.add_argument('--keep', action='store_true', help='keep the temporary data directory')
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    p.set_defaults(func=demo)
    from . import bench
    p = sub.add_parser('bench', help='zodbshootout\'s workloads, GoRelStorage and RelStorage side by side',
                       description=bench.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    bench.add_arguments(p)
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    p.set_defaults(func=bench.main)
    from . import packcli
    p = sub.add_parser('pack', help='pack the storages of a ZConfig file, as zodbpack does',
                       description=packcli.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    packcli.add_arguments(p)
    p.add_argument('--debug', action='store_true', help='show the traceback of an error')
    p.set_defaults(func=packcli.main)
    from . import convert
    p = sub.add_parser('convert', help='copy the transactions of one storage into another, as zodbconvert does',
                       description=convert.__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    convert.add_arguments(p)
    p.set_defaults(func=convert.main)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except KeyboardInterrupt:
        sys.stderr.write('gorelstorage %s: interrupted\n' % args.command)
        return 130
    except Exception as e:
        if args.debug:
            raise
        sys.stderr.write('gorelstorage %s: error: %s (--debug shows the traceback)\n' % (args.command, _one_line(e)))
        return 1


def _one_line(e):
    text = ' '.join((str(e).strip() or e.__class__.__name__).split())
    return text if isinstance(e, (OSError, ValueError)) or text.startswith(e.__class__.__name__) else (
        '%s: %s' % (e.__class__.__name__, text))


if __name__ == '__main__':
    sys.exit(main())
