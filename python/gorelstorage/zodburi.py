"""zodburi resolvers: ``gosqlite://?data_dir=/path&keep_history=false``,
``gopostgres://user:password@host:5432/dbname?connect_timeout=10``,
``gomysql://user:password@host:3306/dbname?connect_timeout=10``,
``gooracle://?dsn=dbhost:1521/ORCLPDB1&user=zodb&password=...&twophase=1``.

Query arguments take RelStorage's option names; those this resolver does not
consume go back to zodburi as database keywords (database_name,
connection_cache_size, ...).
"""
from urllib.parse import parse_qsl
from urllib.parse import unquote
from urllib.parse import urlsplit

from ._native import ConfigurationError
from .adapters import MySQL
from .adapters import Oracle
from .adapters import PostgreSQL
from .adapters import SQLite3
from .options import IGNORED
from .options import IMPLEMENTED
from .options import NOT_YET
from .storage import GoRelStorage

_BOOLS = {'read_only', 'keep_history', 'create_schema', 'shared_blob_dir', 'pack_gc', 'pack_prepack_only',
          'pack_skip_prepack', 'revert_when_stale', 'blob_cache_size_check_external', 'demostorage'}
# Query arguments that describe the database, not the storage.
_SQLITE_ARGS = {'data_dir'}
_POSTGRES_ARGS = {'connect_timeout', 'ssl_mode', 'sslmode', 'driver'}
_MYSQL_ARGS = {'connect_timeout', 'driver', 'unix_socket', 'init_command', 'read_default_file',
               'read_default_group', 'compress', 'named_pipe', 'client_flag', 'load_infile'}
_ORACLE_ARGS = {'dsn', 'user', 'password', 'twophase'}
_ADAPTER_ARGS = _SQLITE_ARGS | _POSTGRES_ARGS | _MYSQL_ARGS | _ORACLE_ARGS
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


def _refuse_others(scheme, args, allowed):
    for key in sorted(set(args) - allowed):
        raise ConfigurationError('%s URIs take no %s' % (scheme, key))


def _int_arg(args, key):
    try:
        return int(args[key])
    except ValueError:
        raise ConfigurationError('query argument %s must be an integer, not %r' % (key, args[key])) from None


def sqlite_resolver(uri):
    path, options, args, leftover = _split(uri)
    _refuse_others('gosqlite', args, _SQLITE_ARGS)
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
    _refuse_others('gopostgres', args, _POSTGRES_ARGS)
    if 'connect_timeout' in args:
        dsn.append('connect_timeout=%d' % _int_arg(args, 'connect_timeout'))
    ssl_mode = args.get('ssl_mode') or args.get('sslmode')
    if ssl_mode:
        dsn.append('sslmode=%s' % _dsn_value(ssl_mode))
    return _factory(PostgreSQL(' '.join(dsn), driver=args.get('driver', 'auto')), options), leftover


def mysql_params(uri):
    """MySQLdb's ``connect()`` keywords (host, port, user, passwd, db) from the parts of a
    ``gomysql://user:password@host:port/db`` URI, port 3306 when it names none: the one
    reader of these URIs (the resolver, the benchmark and the tests use it)."""
    parts = urlsplit(uri)
    try:
        port = parts.port
    except ValueError as e:
        raise ConfigurationError('gomysql URI: %s' % e) from None
    return {'host': parts.hostname or '', 'port': port or 3306, 'user': unquote(parts.username or ''),
            'passwd': unquote(parts.password or ''), 'db': unquote(parts.path[1:])}


def mysql_adapter(uri):
    """The MySQL adapter a ``gomysql://user:password@host:port/db?...`` URI names, and the
    URI's other query arguments (storage options, database keywords)."""
    _path, options, args, leftover = _split(uri)
    _refuse_others('gomysql', args, _MYSQL_ARGS)
    for key in ('client_flag', 'load_infile'):
        if key in args:
            raise ConfigurationError('gomysql: %s is not supported by GoRelStorage' % key)
    params = {k: v for k, v in mysql_params(uri).items() if v}
    for key in ('unix_socket', 'init_command', 'read_default_file', 'read_default_group'):
        if key in args:
            params[key] = args[key]
    if 'connect_timeout' in args:
        params['connect_timeout'] = _int_arg(args, 'connect_timeout')
    flags = {key: bool(_int_arg(args, key)) for key in ('compress', 'named_pipe') if key in args}
    return MySQL(driver=args.get('driver', 'auto'), **flags, **params), options, leftover


def mysql_resolver(uri):
    """``gomysql://user:password@host:port/db?...``, as RelStorage's ``mysql://``: the URL's
    parts and MySQLdb's keywords (``connect_timeout``, ``unix_socket``, ...) as query arguments."""
    adapter, options, leftover = mysql_adapter(uri)
    return _factory(adapter, options), leftover


def oracle_adapter(uri):
    """The Oracle adapter a ``gooracle://?dsn=...&user=...&password=...`` URI names, and the
    URI's other query arguments (storage options, database keywords)."""
    _path, options, args, leftover = _split(uri)
    _refuse_others('gooracle', args, _ORACLE_ARGS)
    for key in ('dsn', 'user'):
        if not args.get(key):
            raise ConfigurationError('gooracle URI needs %s: gooracle://?dsn=host:1521/service&user=...&password=...'
                                     % key)
    twophase = _bool('twophase', args.get('twophase', ''))
    return Oracle(args['user'], args.get('password', ''), args['dsn'], twophase=twophase), options, leftover


def oracle_resolver(uri):
    """``gooracle://?dsn=...&user=...&password=...&twophase=1``, as RelStorage's ``oracle://``:
    everything in query arguments."""
    adapter, options, leftover = oracle_adapter(uri)
    return _factory(adapter, options), leftover
