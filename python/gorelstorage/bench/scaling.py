"""``gorelstorage bench --scaling``: 1, 2, 4 and 8 processes against one server, GoRelStorage and
RelStorage side by side, on PostgreSQL and MariaDB (--postgresql, --mysql).

Each database is emptied and filled with --replica-objects small objects (history-free). Then,
for 1, 2, 4 and 8 processes at a time, each process runs --replica-seconds:

  writers   commit one changed object per transaction (each process its own objects):
            commits/s, all processes together
  readers   load random objects (no shared cache: cache-local-mb 0, ZODB's cache emptied per
            transaction of 100 loads): loads/s

How the cost grows with the objects per transaction is the main benchmark's: ``gorelstorage
bench --counts 1 10 100 1000 10000``.
"""
import sys

from .replicas import fill
from .replicas import markdown  # noqa: F401 (run_other prints with it)
from .replicas import measure


def run(args, databases):
    objects = max(args.replica_objects, 8000)
    results = []
    for database, location in databases:
        if database == 'sqlite':
            continue
        print('filling %s with %d objects ...' % (database, objects), file=sys.stderr)
        fill(database, location, objects)
        results += measure(database, location, None, objects, args.replica_seconds, label=database)
    if not results:
        raise SystemExit('--scaling needs --postgresql or --mysql')
    return results
