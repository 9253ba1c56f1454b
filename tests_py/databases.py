"""The databases the shared suites run against.

Each entry makes GoRelStorage (and, for the interop tests, RelStorage)
storages for one database. Every suite is parametrised over ``DATABASES`` x
history mode. A database object belongs to one test: the first use of each of
its locations starts from an empty database.
"""
import os
import re
import subprocess

import gorelstorage
from gorelstorage.testing import mysql_connect
from gorelstorage.testing import zap
from gorelstorage.zodburi import mysql_params


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
    zap('postgresql', dsn)


class ServerDatabase(Database):
    """A database server with four test databases, gorelstorage[2][_hf]; subclasses
    say how to address (``address``) and empty (``zap``) one of them, its test user's
    ``password``, how to ``restart`` the server (the script named by ``ctl_env``) and
    how to ``hold`` RelStorage's locks from an outside session."""
    ctl_env = None

    def __init__(self, workdir):
        super().__init__(workdir)
        self._fresh = set()

    @classmethod
    def restart_skip_reason(cls):
        if not os.environ.get(cls.ctl_env):
            return '%s is not set: the test cannot restart the server' % cls.ctl_env
        return None

    @classmethod
    def control(cls, command):
        """Run the server's script: 'restart' keeps its data; PostgreSQL's also takes 'pause'
        (stop, keeping the data) and 'resume'."""
        subprocess.run([os.environ[cls.ctl_env], command], check=True, timeout=120)

    @classmethod
    def restart(cls):
        cls.control('restart')

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

    ctl_env = 'GORELSTORAGE_PG_CTL'
    password = re.search(r'password=(\S+)', PG_DSN).group(1) if PG_DSN else None

    @staticmethod
    def address(name):
        return re.sub(r'dbname=\S+', 'dbname=' + name, PG_DSN)

    zap = staticmethod(zap_postgresql)

    @staticmethod
    def hold(location, lock):
        """An outside session holding RelStorage's lock: 'commit' (advisory lock -1), or the
        root object's 'shared' (readCurrent) or 'exclusive' (modified) advisory lock."""
        import psycopg2
        conn = psycopg2.connect(location)
        statement = {'commit': 'SELECT pg_advisory_lock(-1)', 'shared': 'SELECT pg_advisory_lock_shared(0)',
                     'exclusive': 'SELECT pg_advisory_lock(0)'}[lock]
        conn.cursor().execute(statement)
        return conn

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


def zap_mysql(uri):
    """Drop everything in the database (RelStorage's procedures included)."""
    zap('mysql', uri)


class MySQLDatabase(ServerDatabase):
    """The test server scripts/mariadb-server starts: databases gorelstorage[2][_hf]."""
    name = 'mysql'
    skip_reason = None if MYSQL_URI else (
        'GORELSTORAGE_MYSQL_URI is not set: no MySQL/MariaDB server to test against (scripts/test starts one)')

    ctl_env = 'GORELSTORAGE_MYSQL_CTL'
    password = mysql_params(MYSQL_URI)['passwd'] if MYSQL_URI else None

    @staticmethod
    def address(name):
        return MYSQL_URI.rsplit('/', 1)[0] + '/' + name

    zap = staticmethod(zap_mysql)

    @staticmethod
    def hold(location, lock):
        """An outside session holding RelStorage's lock: 'commit' (the commit_row_lock row),
        or the root object's row locked 'shared' (readCurrent) or 'exclusive' (modified)."""
        statement = {'commit': 'SELECT tid FROM commit_row_lock FOR UPDATE',
                     'shared': 'SELECT zoid FROM current_object WHERE zoid = 0 LOCK IN SHARE MODE',
                     'exclusive': 'SELECT zoid FROM current_object WHERE zoid = 0 FOR UPDATE'}[lock]
        conn = mysql_connect(location)
        with conn.cursor() as cur:
            cur.execute('START TRANSACTION')
            cur.execute(statement)
            cur.fetchall()
        return conn

    @staticmethod
    def open_go(location, keep_history, **options):
        return gorelstorage.GoRelStorage(gorelstorage.MySQL(**mysql_params(location)),
                                         keep_history=keep_history, **options)

    @staticmethod
    def open_relstorage(location, keep_history, **options):
        from gorelstorage import _relstorage_mariadb
        _relstorage_mariadb.apply()
        from relstorage.adapters.mysql import MySQLAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        opts = Options(keep_history=keep_history, **options)
        return RelStorage(MySQLAdapter(options=opts, **mysql_params(location)), options=opts)


ORACLE_DSN = os.environ.get('GORELSTORAGE_ORACLE_DSN', '')
# The main test user, and a second one for the tests that copy between two databases.
ORACLE_USERS = {
    'main': (os.environ.get('GORELSTORAGE_ORACLE_USER', ''), os.environ.get('GORELSTORAGE_ORACLE_PASSWORD', '')),
    'second': (os.environ.get('GORELSTORAGE_ORACLE_USER2', ''),
               os.environ.get('GORELSTORAGE_ORACLE_PASSWORD2', os.environ.get('GORELSTORAGE_ORACLE_PASSWORD', ''))),
}
ORACLE_SKIP = (
    'GORELSTORAGE_ORACLE_DSN and GORELSTORAGE_ORACLE_USER are not set: no Oracle server to test against '
    '(none can run on this machine; the README says how to run the Oracle suite against one)')

# What RelStorage's and GoRelStorage's Oracle schemas create, in an order that drops cleanly.
ORACLE_OBJECTS = (
    ('VIEW', 'current_object_state'), ('PACKAGE', 'relstorage_op'), ('SEQUENCE', 'zoid_seq'),
    ('TABLE', 'temp_undo'), ('TABLE', 'temp_pack_visit'), ('TABLE', 'temp_blob_chunk'), ('TABLE', 'temp_store'),
    ('TABLE', 'pack_state_tid'), ('TABLE', 'pack_state'), ('TABLE', 'pack_object'), ('TABLE', 'object_refs_added'),
    ('TABLE', 'object_ref'), ('TABLE', 'current_object'), ('TABLE', 'blob_chunk'), ('TABLE', 'object_state'),
    ('TABLE', 'transaction'), ('TABLE', 'pack_lock'), ('TABLE', 'commit_row_lock'),
)


def oracle_connect(user, password):
    """A python-oracledb connection (thin mode: no client libraries needed)."""
    try:
        import oracledb
    except ImportError:
        import pytest
        pytest.skip('python-oracledb is not installed: pip install oracledb to run the Oracle suite')
    return oracledb.connect(user=user, password=password, dsn=ORACLE_DSN)


def zap_oracle(location):
    """Drop the RelStorage schema objects the user owns."""
    user, password = OracleDatabase.credentials(location)
    conn = oracle_connect(user, password)
    try:
        with conn.cursor() as cur:
            for kind, name in ORACLE_OBJECTS:
                cur.execute('SELECT COUNT(*) FROM user_objects WHERE object_type = :1 AND object_name = :2',
                            (kind, name.upper()))
                if cur.fetchone()[0]:
                    extra = ' CASCADE CONSTRAINTS PURGE' if kind == 'TABLE' else ''
                    cur.execute('DROP %s %s%s' % (kind, name, extra))
    finally:
        conn.close()


class OracleDatabase(ServerDatabase):
    """An Oracle server given by GORELSTORAGE_ORACLE_DSN and its test users: a location is a
    user (main or second) and a history mode, which share the user's schema one at a time."""
    name = 'oracle'
    skip_reason = None if ORACLE_DSN and ORACLE_USERS['main'][0] else ORACLE_SKIP

    @staticmethod
    def address(name):
        label = 'second' if name.startswith('gorelstorage2') else 'main'
        if not ORACLE_USERS[label][0]:
            import pytest
            pytest.skip('GORELSTORAGE_ORACLE_USER2 is not set: this test needs a second Oracle user')
        return '%s:%s' % (label, name)

    @staticmethod
    def credentials(location):
        return ORACLE_USERS[location.split(':', 1)[0]]

    zap = staticmethod(zap_oracle)

    @classmethod
    def open_go(cls, location, keep_history, **options):
        user, password = cls.credentials(location)
        return gorelstorage.GoRelStorage(gorelstorage.Oracle(user, password, ORACLE_DSN),
                                         keep_history=keep_history, **options)

    @classmethod
    def open_relstorage(cls, location, keep_history, **options):
        try:
            import cx_Oracle  # RelStorage's only Oracle driver
            del cx_Oracle
        except ImportError:
            import pytest
            pytest.skip('cx_Oracle is not installed: RelStorage needs it to open Oracle')
        from relstorage.adapters.oracle import OracleAdapter
        from relstorage.options import Options
        from relstorage.storage import RelStorage
        user, password = cls.credentials(location)
        opts = Options(keep_history=keep_history, **options)
        return RelStorage(OracleAdapter(user=user, password=password, dsn=ORACLE_DSN, options=opts), options=opts)


DATABASES = {
    'sqlite': SQLiteDatabase,
    'postgresql': PostgreSQLDatabase,
    'mysql': MySQLDatabase,
    'oracle': OracleDatabase,
}

# The servers the server cases (test_servers.py) run against: restarted and locked by the tests.
SERVERS = {'postgresql': PostgreSQLDatabase, 'mysql': MySQLDatabase}
