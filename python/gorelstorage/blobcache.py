"""Prune a GoRelStorage (or RelStorage) blob cache directory to a size:
``python -m gorelstorage.blobcache DIR TARGET_BYTES``. The storage runs this in a
new process when blob-cache-size-check-external is true; it exits 0 when done or
when another process was pruning the directory."""
import sys

from . import _native


def main(argv=None):
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or not args[1].isdigit():
        print('usage: python -m gorelstorage.blobcache BLOB_CACHE_DIR TARGET_BYTES', file=sys.stderr)
        return 2
    try:
        locked, left, removed = _native.blob_prune(args[0], int(args[1]))
    except Exception as e:
        print('gorelstorage.blobcache: %s' % (e,), file=sys.stderr)
        return 1
    if locked:
        print('%s: another process is pruning it' % args[0])
    else:
        print('%s: %d files removed, %d bytes left' % (args[0], removed, left))
    return 0


if __name__ == '__main__':
    sys.exit(main())
