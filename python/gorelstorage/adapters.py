"""Descriptions of the databases GoRelStorage can use, as the engine takes them."""
import os
from urllib.parse import parse_qsl
from urllib.parse import quote
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from ._native import ConfigurationError


class SQLite3:
    """An embedded SQLite data-dir (RelStorage's ``<sqlite3>``): ``main.sqlite3`` and ``oids.sqlite3``."""

    engine_name = 'sqlite3'
    # Reads run in this process and never wait on a network: a load from the database (a few
    # microseconds) keeps the GIL, which costs other threads less than handing it over and back.
    reads_in_process = True

    def __init__(self, data_dir, pragmas=None):
        if not isinstance(data_dir, (str, os.PathLike)) or not str(data_dir):
            raise ConfigurationError('sqlite3 data-dir must be a non-empty path, not %r' % (data_dir,))
        self.data_dir = os.path.abspath(os.fspath(data_dir))
        self.pragmas = {}
        for name, value in (pragmas or {}).items():
            if not isinstance(name, str):
                raise ConfigurationError('sqlite3 pragma names must be strings, not %r' % (name,))
            self.pragmas[name.replace('-', '_')] = str(value)

    def engine_dict(self):
        return {'data_dir': self.data_dir, 'pragmas': self.pragmas}

    def __repr__(self):
        return 'SQLite3(%r)' % self.data_dir


# RelStorage's PostgreSQL driver names; GoRelStorage always talks to the server through pgx.
POSTGRESQL_DRIVERS = ('auto', 'pgx', 'psycopg2', 'gevent psycopg2', 'psycopg2cffi', 'pg8000')

_SECRET_KEYS = ('password', 'sslpassword')


def hide_password(dsn):
    """``dsn`` with the values of its password keys replaced by ``***``: a libpq
    keyword/value string is split into its pairs, a URL into its parts (user info and
    query). The password's text is never searched for, so nothing else is touched; a
    DSN that cannot be parsed is not shown at all."""
    if dsn.startswith(('postgres://', 'postgresql://')):
        try:
            parts = urlsplit(dsn)
            netloc = parts.netloc
            if parts.password is not None:
                userinfo, _, hostport = netloc.rpartition('@')
                netloc = userinfo.split(':', 1)[0] + ':***@' + hostport
            query = '&'.join(k + '=' + ('***' if k in _SECRET_KEYS else quote(v, safe=''))
                             for k, v in parse_qsl(parts.query, keep_blank_values=True))
            return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:
            return '<a postgresql URL that cannot be parsed>'
    pairs = _keyword_values(dsn)
    if pairs is None:
        return '<a DSN that cannot be parsed>'
    return ' '.join('%s=%s' % (k, '***' if k in _SECRET_KEYS else _quote_value(v)) for k, v in pairs)


def _keyword_values(dsn):
    """libpq's keyword/value pairs of ``dsn`` (whitespace around "=", values quoted in
    single quotes or running to the next whitespace, backslash escaping), or None."""
    pairs, i, n = [], 0, len(dsn)
    while True:
        while i < n and dsn[i].isspace():
            i += 1
        if i == n:
            return pairs
        start = i
        while i < n and dsn[i] != '=' and not dsn[i].isspace():
            i += 1
        key = dsn[start:i]
        while i < n and dsn[i].isspace():
            i += 1
        if i == n or dsn[i] != '=':
            return None
        i += 1
        while i < n and dsn[i].isspace():
            i += 1
        value = []
        quoted = i < n and dsn[i] == "'"
        if quoted:
            i += 1
        while True:
            if i == n:
                if quoted:
                    return None
                break
            c = dsn[i]
            i += 1
            if quoted and c == "'":
                break
            if not quoted and c.isspace():
                break
            if c == '\\' and i < n:
                c = dsn[i]
                i += 1
            value.append(c)
        pairs.append((key, ''.join(value)))


def _quote_value(v):
    if v and not any(c.isspace() or c in "'\\" for c in v):
        return v
    return "'" + v.replace('\\', '\\\\').replace("'", "\\'") + "'"


class PostgreSQL:
    """A PostgreSQL database (RelStorage's ``<postgresql>``), named by a libpq DSN:
    ``"host=db.example.com dbname=zodb user=zodb password=..."`` or a ``postgresql://`` URL."""

    engine_name = 'postgresql'

    def __init__(self, dsn='', driver='auto'):
        # An empty DSN means libpq's defaults and PG* environment variables, as in RelStorage.
        if not isinstance(dsn, str):
            raise ConfigurationError('postgresql dsn must be a string such as '
                                     '"host=localhost dbname=zodb user=zodb password=...", not %r'
                                     % type(dsn).__name__)
        if driver not in POSTGRESQL_DRIVERS:
            raise ConfigurationError('postgresql driver %r is not available; use one of %s'
                                     % (driver, ', '.join(POSTGRESQL_DRIVERS)))
        self._dsn = dsn
        self.driver = driver

    def engine_dict(self):
        return {'dsn': self._dsn, 'driver': self.driver}

    def __repr__(self):
        return 'PostgreSQL(%r)' % hide_password(self._dsn)


# RelStorage's MySQL driver names; GoRelStorage always talks to the server through go-sql-driver/mysql.
MYSQL_DRIVERS = ('auto', 'mysqlclient', 'gevent mysqlclient', 'PyMySQL', 'C MySQL Connector/Python',
                 'Py MySQL Connector/Python', 'go-sql-driver')


class MySQL:
    """A MySQL 8.0+ or MariaDB 10.3+ database (RelStorage's ``<mysql>``), named by
    MySQLdb's ``connect()`` keywords: ``MySQL(host='db', user='zodb', passwd='...', db='zodb')``.

    ``password`` and ``database`` are accepted for ``passwd`` and ``db``, as MySQLdb does.
    ``read_default_file``/``read_default_group`` read an option file's ``[client]`` and named
    groups; the keywords given here win over it."""

    engine_name = 'mysql'
    _STRINGS = ('host', 'user', 'passwd', 'db', 'unix_socket', 'init_command',
                'read_default_file', 'read_default_group')
    _INTS = ('port', 'connect_timeout')
    _ALIASES = {'password': 'passwd', 'database': 'db'}

    def __init__(self, driver='auto', compress=False, named_pipe=False, **params):
        if driver not in MYSQL_DRIVERS:
            raise ConfigurationError('mysql driver %r is not available; use one of %s'
                                     % (driver, ', '.join(MYSQL_DRIVERS)))
        if named_pipe:
            raise ConfigurationError('mysql named_pipe is for Windows servers; '
                                     'connect with host/port or unix_socket')
        self.driver = driver
        self.compress = bool(compress)
        self._params = {}
        for key, value in params.items():
            key = self._ALIASES.get(key, key)
            if value is None:
                continue
            if key in self._STRINGS:
                if not isinstance(value, str):
                    raise ConfigurationError('mysql %s must be a string, not %r' % (key, type(value).__name__))
            elif key in self._INTS:
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise ConfigurationError('mysql %s must be a non-negative integer, not %r' % (key, value))
            else:
                raise ConfigurationError(
                    'mysql: unknown or unsupported keyword %r; GoRelStorage takes %s'
                    % (key, ', '.join(self._STRINGS + self._INTS + ('compress',))))
            self._params[key] = value
        if not self._params.get('db') and not self._params.get('read_default_file') \
                and not self._params.get('read_default_group'):
            raise ConfigurationError('mysql: no database given (db)')

    def engine_dict(self):
        return dict(self._params, compress=self.compress, driver=self.driver)

    def __repr__(self):
        shown = ', '.join('%s=%r' % (k, v) for k, v in sorted(self._params.items()) if k != 'passwd')
        return 'MySQL(%s)' % shown


# RelStorage's Oracle driver names; GoRelStorage always talks to the server through godror.
ORACLE_DRIVERS = ('auto', 'cx_Oracle', 'godror')


class Oracle:
    """An Oracle database (RelStorage's ``<oracle>``): ``Oracle(user='zodb', password='...',
    dsn='dbhost:1521/ORCLPDB1')``. ``dsn`` is anything Oracle's client accepts: a TNS name,
    an Easy Connect string or a connect descriptor. ``twophase`` makes every commit an
    Oracle two-phase (XA) commit, as RelStorage's option of that name.

    Oracle's client libraries (Instant Client) must be installed where the dynamic linker
    finds them; without them, opening the storage fails and says so."""

    engine_name = 'oracle'

    def __init__(self, user, password, dsn, twophase=False, driver='auto'):
        for key, value in (('user', user), ('password', password), ('dsn', dsn)):
            if not isinstance(value, str):
                raise ConfigurationError('oracle %s must be a string, not %r' % (key, type(value).__name__))
        if not dsn:
            raise ConfigurationError('oracle: no dsn given (a TNS name, host:port/service or a connect descriptor)')
        if not user:
            raise ConfigurationError('oracle: no user given')
        if driver not in ORACLE_DRIVERS:
            raise ConfigurationError('oracle driver %r is not available; use one of %s'
                                     % (driver, ', '.join(ORACLE_DRIVERS)))
        if isinstance(twophase, str):
            twophase = twophase.strip().lower() in ('1', 'true', 'yes', 'on')
        self.user = user
        self._password = password
        self.dsn = dsn
        self.twophase = bool(twophase)
        self.driver = driver

    def engine_dict(self):
        return {'user': self.user, 'password': self._password, 'dsn': self.dsn,
                'twophase': self.twophase, 'driver': self.driver}

    def __repr__(self):
        return 'Oracle(user=%r, dsn=%r%s)' % (self.user, self.dsn, ', twophase=True' if self.twophase else '')
