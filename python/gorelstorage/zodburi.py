"""zodburi resolvers: ``gosqlite://?data_dir=/path&keep_history=false``,
``gopostgres://user:password@host:5432/dbname?connect_timeout=10``.

Query arguments take RelStorage's option names; those this resolver does not
consume go back to zodburi as database keywords (database_name,
connection_cache_size, ...).
"""
from urllib.parse import parse_qsl
from urllib.parse import unquote
from urllib.parse import urlsplit

from ._native import ConfigurationError
from .adapters import PostgreSQL
from .adapters import SQLite3
from .options import IGNORED
from .options import IMPLEMENTED
from .options import NOT_YET
from .storage import GoRelStorage

_BOOLS = {'read_only', 'keep_history', 'create_schema', 'shared_blob_dir', 'pack_gc', 'pack_prepack_only',
          'pack_skip_prepack', 'revert_when_stale', 'blob_cache_size_check_external', 'demostorage'}
# Query arguments that describe the database, not the storage.
_ADAPTER_ARGS = {'data_dir', 'connect_timeout', 'ssl_mode', 'sslmode', 'driver'}
_TRUE = {'1', 'true', 'yes', 'on'}
_FALSE = {'0', 'false', 'no', 'off', ''}


def _bool(name, value):
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise ConfigurationError('query argument %s must be true or false, not %r' % (name, value))


def _split(uri):
    """Return (path, storage options, adapter args, leftover database keywords)."""
    parts = urlsplit(uri)
    options, adapter_args, leftover = {}, {}, {}
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _BOOLS:
            options[key] = _bool(key, value)
        elif key in IMPLEMENTED or key in IGNORED or key in NOT_YET:
            options[key] = value
        elif key in _ADAPTER_ARGS:
            adapter_args[key] = value
        else:
            leftover[key] = value
    return unquote(parts.netloc + parts.path), options, adapter_args, leftover


def _factory(adapter, options):
    demo = options.pop('demostorage', False)

    def factory():
        storage = GoRelStorage(adapter, **options)
        if demo:
            from ZODB.DemoStorage import DemoStorage
            return DemoStorage(base=storage)
        return storage
    return factory


def sqlite_resolver(uri):
    path, options, args, leftover = _split(uri)
    for key in sorted(set(args) - {'data_dir'}):
        raise ConfigurationError('gosqlite URIs take no %s' % key)
    data_dir = args.get('data_dir') or path
    if not data_dir:
        raise ConfigurationError('gosqlite URI needs a data directory: gosqlite://?data_dir=/path/to/dir')
    return _factory(SQLite3(data_dir), options), leftover


def _dsn_value(value):
    """Quote a value for a libpq keyword/value DSN."""
    return "'%s'" % str(value).replace('\\', '\\\\').replace("'", "\\'")


def postgres_resolver(uri):
    """``gopostgres://user:password@host:port/dbname?...``, as RelStorage's ``postgres://``:
    the URL's parts and ``connect_timeout``/``ssl_mode`` make the libpq DSN."""
    parts = urlsplit(uri)
    _path, options, args, leftover = _split(uri)
    dsn = []
    for key, value in (('dbname', unquote(parts.path[1:])), ('user', unquote(parts.username or '')),
                       ('password', unquote(parts.password or '')), ('host', parts.hostname),
                       ('port', parts.port)):
        if value:
            dsn.append('%s=%s' % (key, _dsn_value(value)))
    if 'connect_timeout' in args:
        try:
            dsn.append('connect_timeout=%d' % int(args['connect_timeout']))
        except ValueError:
            raise ConfigurationError('query argument connect_timeout must be an integer, not %r'
                                     % (args['connect_timeout'],)) from None
    ssl_mode = args.get('ssl_mode') or args.get('sslmode')
    if ssl_mode:
        dsn.append('sslmode=%s' % _dsn_value(ssl_mode))
    if 'data_dir' in args:
        raise ConfigurationError('gopostgres URIs take no data_dir')
    return _factory(PostgreSQL(' '.join(dsn), driver=args.get('driver', 'auto')), options), leftover
