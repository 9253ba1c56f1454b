"""Descriptions of the databases GoRelStorage can use, as the engine takes them."""
import os
import re

from ._native import ConfigurationError


class SQLite3:
    """An embedded SQLite data-dir (RelStorage's ``<sqlite3>``): ``main.sqlite3`` and ``oids.sqlite3``."""

    engine_name = 'sqlite3'

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

_PASSWORD_KV = re.compile(r"""(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)""")
_PASSWORD_URL = re.compile(r'(://[^:/@]*:)([^@]*)(@)')


def hide_password(dsn):
    """``dsn`` with its password replaced by ``***`` (keyword/value or URL form)."""
    dsn = _PASSWORD_KV.sub(lambda m: m.group(1) + '***', dsn)
    return _PASSWORD_URL.sub(lambda m: m.group(1) + '***' + m.group(3), dsn)


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
