"""ZConfig datatypes named in component.xml."""
from ZODB.config import BaseConfig

from ._native import ConfigurationError
from .adapters import MySQL
from .adapters import Oracle
from .adapters import PostgreSQL
from .adapters import SQLite3
from .storage import GoRelStorage


class GoRelStorageFactory(BaseConfig):
    """The <gorelstorage> section."""

    def open(self):
        config = self.config
        options = {}
        for key in config.getSectionAttributes():
            value = getattr(config, key)
            if key != 'adapter' and value is not None:
                options[key] = value
        options.setdefault('name', self.name)
        return GoRelStorage(config.adapter.create(), **options)


class SQLite3AdapterFactory(BaseConfig):
    """The <gosqlite3> section."""

    def create(self):
        config = self.config
        if config.driver not in ('auto', 'gosqlite3', 'sqlite3'):
            raise ConfigurationError('gosqlite3 driver %r is not available; use auto' % (config.driver,))
        if config.gevent_yield_interval is not None:
            raise ConfigurationError('gosqlite3 option gevent_yield_interval is not implemented in this build')
        pragmas = config.pragmas.pragmas if config.pragmas is not None else None
        return SQLite3(config.data_dir, pragmas=pragmas)


class SQLitePragmas(BaseConfig):
    """The <gopragmas> section: named pragmas plus any ``name value`` line."""

    @property
    def pragmas(self):
        config = self.config
        pragmas = {k: v for k, (v,) in (config.pragmas or {}).items()}
        for attr in config.getSectionAttributes():
            if attr != 'pragmas' and getattr(config, attr) is not None:
                pragmas[attr] = getattr(config, attr)
        return pragmas


class PostgreSQLAdapterFactory(BaseConfig):
    """The <gopostgresql> section: RelStorage's ``dsn`` and ``driver``."""

    def create(self):
        config = self.config
        return PostgreSQL(config.dsn, driver=config.driver)


class MySQLAdapterFactory(BaseConfig):
    """The <gomysql> section: RelStorage's <mysql> keys (MySQLdb's connect() keywords)."""

    def create(self):
        config = self.config
        params = {key: getattr(config, key) for key in MySQL._STRINGS + MySQL._INTS}
        return MySQL(driver=config.driver, compress=bool(config.compress),
                     named_pipe=bool(config.named_pipe), **params)


class OracleAdapterFactory(BaseConfig):
    """The <gooracle> section: RelStorage's <oracle> keys (user, password, dsn) and twophase."""

    def create(self):
        config = self.config
        return Oracle(config.user, config.password, config.dsn, twophase=bool(config.twophase),
                      driver=config.driver)
