"""The contenders: opening GoRelStorage and RelStorage on the benchmark's databases (and ZEO on
a FileStorage, the storage most sites would otherwise keep), and telling whether a cold read
reached the database."""
import contextlib
import shutil
import tempfile

from ..zodburi import mysql_params


CONTENDERS = ('gorelstorage', 'relstorage')
# Measured beside them, the same for every database: a ZEO server on a FileStorage.
ZEO = 'zeo'


def open_storage(spec):
    """Open the storage a spec dict describes (picklable, for processes)."""
    contender, database, location, hp = spec['contender'], spec['database'], spec['location'], spec['hp']
    cache = spec.get('cache_mb', 10)
    if contender == ZEO:
        from ZEO.ClientStorage import ClientStorage
        return ClientStorage(('127.0.0.1', spec['zeo_port']), cache_size=cache * 1000 * 1000, wait_timeout=60)
    blobs = {'blob_dir': spec['blob_dir']} if spec.get('blob_dir') else {}
    if contender == 'gorelstorage':
        from .. import GoRelStorage
        from .. import PostgreSQL
        from .. import SQLite3
        from ..zodburi import mysql_adapter
        if database == 'sqlite':
            adapter = SQLite3(location)
        elif database == 'postgresql':
            adapter = PostgreSQL(location)
        else:
            adapter = mysql_adapter(location)[0]
        return GoRelStorage(adapter, keep_history=hp, cache_local_mb=cache, **blobs)
    from relstorage.options import Options
    from relstorage.storage import RelStorage
    opts = Options(keep_history=hp, cache_local_mb=cache, **blobs)
    if database == 'sqlite':
        from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
        adapter = Sqlite3Adapter(location, {}, options=opts)
    elif database == 'postgresql':
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        adapter = PostgreSQLAdapter(dsn=location, options=opts)
    else:
        from relstorage.adapters.mysql import MySQLAdapter
        from .. import _relstorage_mariadb
        _relstorage_mariadb.apply()
        adapter = MySQLAdapter(options=opts, **mysql_params(location))
    _count_relstorage_fetches(type(adapter.mover))
    return RelStorage(adapter, options=opts)


# Objects RelStorage read from the database (its cache statistics are reset when it is cleared).
_fetched = [0]


def _count_relstorage_fetches(mover_class):
    if getattr(mover_class, '_gorelstorage_counted', False):
        return
    load_current, load_currents = mover_class.load_current, mover_class.load_currents

    def counted_current(self, cursor, oid):
        _fetched[0] += 1
        return load_current(self, cursor, oid)

    def counted_currents(self, cursor, oids):
        for row in load_currents(self, cursor, oids):
            _fetched[0] += 1
            yield row
    mover_class.load_current, mover_class.load_currents = counted_current, counted_currents
    mover_class._gorelstorage_counted = True


def _is_zeo(storage):
    storage = getattr(storage, '_timed_inner', storage)  # the benchmark's TimedStorage around it
    return type(storage).__module__.startswith('ZEO.')


def _clear_storage_cache(db):
    """Empty the storage's cache, shared by every Connection of the process."""
    storage = db.storage
    if hasattr(storage, 'clear_cache'):
        storage.clear_cache()
    elif _is_zeo(storage):
        storage._cache.clear()
    elif hasattr(storage, '_cache'):
        storage._cache.clear(load_persistent=False)


def _fetched_from_database(db):
    """How many object states the process has read from the database so far."""
    storage = db.storage
    if hasattr(storage, 'cache_stats'):
        return storage.cache_stats()['stores']  # every state read from the database is put in the cache
    if _is_zeo(storage):
        return storage._cache.getStats()[0]  # states the server sent are added to the client cache
    if hasattr(storage, '_cache'):
        return _fetched[0]


@contextlib.contextmanager
def zeo_server(spec):
    """A ZEO server on a new FileStorage for one run: spec with its port."""
    from .shootout import start_zeo
    workdir = tempfile.mkdtemp(prefix='gorelstorage-zeo-')
    proc, port = start_zeo(workdir)
    try:
        yield dict(spec, zeo_port=port)
    finally:
        proc.terminate()
        proc.wait(30)
        shutil.rmtree(workdir, ignore_errors=True)
    return None  # a storage without a cache (ZODB's MappingStorage): every load reaches it
