"""The databases the shared suites run against.

Each entry makes GoRelStorage (and, where the interop tests need it,
RelStorage) storages for one database. PostgreSQL and MySQL join by adding an
entry here: every suite is parametrised over ``DATABASES`` x history mode.
"""
import os

import gorelstorage


class SQLiteDatabase:
    name = 'sqlite'
    skip_reason = None

    def __init__(self, workdir):
        self.workdir = workdir

    def location(self, keep_history, label='main'):
        return os.path.join(self.workdir, '%s-%s' % (label, 'hp' if keep_history else 'hf'))

    def make(self, keep_history, label='main', **options):
        adapter = gorelstorage.SQLite3(self.location(keep_history, label))
        return gorelstorage.GoRelStorage(adapter, keep_history=keep_history, **options)

    def make_relstorage(self, keep_history, label='main', **options):
        from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        opts = Options(keep_history=keep_history, **options)
        adapter = Sqlite3Adapter(self.location(keep_history, label), {}, options=opts)
        return RelStorage(adapter, options=opts)


DATABASES = {
    'sqlite': SQLiteDatabase,
}
