"""The databases the shared suites run against.

Each entry makes GoRelStorage (and, for the interop tests, RelStorage)
storages for one database. Every suite is parametrised over ``DATABASES`` x
history mode. A database object belongs to one test: the first use of each of
its locations starts from an empty database.
"""
import os
import re

import gorelstorage


class Database:
    """One database server or directory; subclasses say where a location is
    (``location``) and how each storage opens one (``open_go``, ``open_relstorage``)."""
    name = None
    skip_reason = None

    def __init__(self, workdir):
        self.workdir = workdir

    def make(self, keep_history, label='main', **options):
        return self.open_go(self.location(keep_history, label), keep_history, **options)

    def make_relstorage(self, keep_history, label='main', **options):
        return self.open_relstorage(self.location(keep_history, label), keep_history, **options)


class SQLiteDatabase(Database):
    name = 'sqlite'

    def location(self, keep_history, label='main'):
        return os.path.join(self.workdir, '%s-%s' % (label, 'hp' if keep_history else 'hf'))

    @staticmethod
    def open_go(location, keep_history, **options):
        return gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), keep_history=keep_history, **options)

    @staticmethod
    def open_relstorage(location, keep_history, **options):
        from relstorage.adapters.sqlite.adapter import Sqlite3Adapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        opts = Options(keep_history=keep_history, **options)
        return RelStorage(Sqlite3Adapter(location, {}, options=opts), options=opts)


PG_DSN = os.environ.get('GORELSTORAGE_PG_DSN', '')


def zap_postgresql(dsn):
    """Drop everything in the database's public schema (RelStorage's objects included)."""
    import psycopg2
    conn = psycopg2.connect(dsn)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute('SELECT lo_unlink(oid) FROM pg_largeobject_metadata')
            cur.execute('DROP SCHEMA public CASCADE')
            cur.execute('CREATE SCHEMA public')
    finally:
        conn.close()


class ServerDatabase(Database):
    """A database server with four test databases, gorelstorage[2][_hf]; subclasses
    say how to address (``address``) and empty (``zap``) one of them."""

    def __init__(self, workdir):
        super().__init__(workdir)
        self._fresh = set()

    def location(self, keep_history, label='main'):
        name = {'main': 'gorelstorage', 'dst': 'gorelstorage2', 'second': 'gorelstorage2'}[label]
        location = self.address(name + ('' if keep_history else '_hf'))
        if location not in self._fresh:
            self._fresh.add(location)
            self.zap(location)
        return location


class PostgreSQLDatabase(ServerDatabase):
    """The test server scripts/pg-server starts: databases gorelstorage[2][_hf]."""
    name = 'postgresql'
    skip_reason = None if PG_DSN else (
        'GORELSTORAGE_PG_DSN is not set: no PostgreSQL server to test against (scripts/test starts one)')

    @staticmethod
    def address(name):
        return re.sub(r'dbname=\S+', 'dbname=' + name, PG_DSN)

    zap = staticmethod(zap_postgresql)

    @staticmethod
    def open_go(location, keep_history, **options):
        return gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(location), keep_history=keep_history, **options)

    @staticmethod
    def open_relstorage(location, keep_history, **options):
        from relstorage.adapters.postgresql import PostgreSQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        opts = Options(keep_history=keep_history, **options)
        return RelStorage(PostgreSQLAdapter(dsn=location, options=opts), options=opts)


MYSQL_URI = os.environ.get('GORELSTORAGE_MYSQL_URI', '')


def mysql_params(uri):
    """MySQLdb keywords from a ``gomysql://user:password@host:port/db`` URI."""
    from urllib.parse import unquote
    from urllib.parse import urlsplit
    parts = urlsplit(uri)
    return {'host': parts.hostname, 'port': parts.port, 'user': unquote(parts.username),
            'passwd': unquote(parts.password), 'db': parts.path[1:]}


def mysql_connect(uri, **kw):
    import pymysql
    params = mysql_params(uri)
    return pymysql.connect(host=params['host'], port=params['port'], user=params['user'],
                           password=params['passwd'], database=params['db'], autocommit=True, **kw)


def zap_mysql(uri):
    """Drop and recreate the database (RelStorage's procedures go with it)."""
    params = mysql_params(uri)
    import pymysql
    conn = pymysql.connect(host=params['host'], port=params['port'], user=params['user'],
                           password=params['passwd'], autocommit=True)
    try:
        with conn.cursor() as cur:
            cur.execute('DROP DATABASE IF EXISTS `%s`' % params['db'])
            cur.execute('CREATE DATABASE `%s`' % params['db'])
    finally:
        conn.close()


class MySQLDatabase(ServerDatabase):
    """The test server scripts/mariadb-server starts: databases gorelstorage[2][_hf]."""
    name = 'mysql'
    skip_reason = None if MYSQL_URI else (
        'GORELSTORAGE_MYSQL_URI is not set: no MySQL/MariaDB server to test against (scripts/test starts one)')

    @staticmethod
    def address(name):
        return MYSQL_URI.rsplit('/', 1)[0] + '/' + name

    zap = staticmethod(zap_mysql)

    @staticmethod
    def open_go(location, keep_history, **options):
        return gorelstorage.GoRelStorage(gorelstorage.MySQL(**mysql_params(location)),
                                         keep_history=keep_history, **options)

    @staticmethod
    def open_relstorage(location, keep_history, **options):
        import relstorage_mariadb
        relstorage_mariadb.apply()
        from relstorage.adapters.mysql import MySQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        opts = Options(keep_history=keep_history, **options)
        return RelStorage(MySQLAdapter(options=opts, **mysql_params(location)), options=opts)


DATABASES = {
    'sqlite': SQLiteDatabase,
    'postgresql': PostgreSQLDatabase,
    'mysql': MySQLDatabase,
}
