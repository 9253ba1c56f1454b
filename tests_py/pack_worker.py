"""Packs one database in its own process, with GoRelStorage or RelStorage, for test_pack (a
pack to kill, and RelStorage's zodbpack steps: two copies of SQLite in one process would
break each other's file locks).
Arguments: tests directory, database name, location, keep-history (1/0), go or relstorage,
pack, prepack (zodbpack --prepack) or reuse (zodbpack --use-prepack-state)."""
import sys

from ZODB.serialize import referencesf

sys.path.insert(0, sys.argv[1])
from databases import DATABASES  # noqa: E402


def main():
    name, location, keep_history, which, what = sys.argv[2:7]
    database = DATABASES[name]
    open_storage = database.open_go if which == 'go' else database.open_relstorage
    storage = open_storage(location, keep_history == '1')
    try:
        storage.pack(None, referencesf, prepack_only=what == 'prepack', skip_prepack=what == 'reuse')
    finally:
        storage.close()


if __name__ == '__main__':
    main()
