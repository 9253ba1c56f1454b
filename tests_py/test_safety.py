"""Data safety at the storage's edges: errors after a commit succeeded, blob records
that cannot be stored, passwords in messages, and the storage's smaller promises."""
import os

import pytest
import transaction
import ZODB
from BTrees.Length import Length
from persistent.mapping import PersistentMapping
from transaction.interfaces import TransientError
from ZODB.blob import Blob
from ZODB.blob import is_blob_record
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import StorageError
from ZODB.POSException import Unsupported
from ZODB.serialize import referencesf
from ZODB.utils import z64

import gorelstorage
from databases import MYSQL_URI
from databases import PG_DSN
from databases import PostgreSQLDatabase
from databases import SQLiteDatabase


# --- nothing retryable after a commit succeeded -----------------------------------------

@pytest.mark.skipif(not PG_DSN or not os.environ.get('GORELSTORAGE_PG_CTL'),
                    reason='needs the test PostgreSQL server and GORELSTORAGE_PG_CTL (scripts/test sets both)')
def test_server_down_after_a_commit_does_not_fail_the_commit(tmp_path):
    """ZODB polls inside transaction.commit(), after tpc_finish: the server going away
    then must not make a committed transaction look failed (its manager would run it
    again). The error comes at the next transaction's start, retryable."""
    location = PostgreSQLDatabase(str(tmp_path)).location(True)
    db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.PostgreSQL(location), keep_history=True))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        with tm:
            conn.root()['n'] = Length(1)
        paused = []
        try:
            tm.begin()
            conn.root()['n'].change(1)
            tm.get().addAfterCommitHook(lambda ok: paused.append(PostgreSQLDatabase.control('pause')))
            tm.commit()  # tpc_finish, the hook, then ZODB's poll against a stopped server
            assert paused
            with pytest.raises(TransientError) as info:
                tm.begin()
            assert isinstance(info.value, gorelstorage.DisconnectedError)
            tm.abort()
        finally:
            if paused:
                PostgreSQLDatabase.control('resume')
        with tm:
            assert conn.root()['n']() == 2, 'the commit that succeeded is there, once'
        conn.close()
    finally:
        db.close()


# --- blob records --------------------------------------------------------------------------

def test_blob_records_are_refused_not_dropped_without_blob_dir(tmp_path):
    """Without blob-dir, a blob record is refused (Unsupported, naming blob-dir) whether it
    comes through ZODB, store() or a copy, and nothing of it is written."""
    src = ZODB.DB(FileStorage(str(tmp_path / 'src.fs'), blob_dir=str(tmp_path / 'blobs')))
    with src.transaction() as conn:
        conn.root()['plain'] = PersistentMapping(a=1)
    with src.transaction() as conn:
        conn.root()['file'] = Blob(b'the data')
    source = src.storage

    location = SQLiteDatabase(str(tmp_path)).location(True)
    dest = gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), keep_history=True)
    try:
        with pytest.raises(Unsupported) as info:
            dest.copyTransactionsFrom(source)
        assert 'blob-dir' in str(info.value)
        dest.tpc_abort(dest.tpc_transaction())
        tids = [t.tid for t in dest.iterator()]
        assert tids == [t.tid for t in source.iterator()][:2], 'the transactions before the blob were copied'

        blob_record = next(rec.data for txn in source.iterator() for rec in txn if is_blob_record(rec.data))
        t = TransactionMetaData()
        dest.tpc_begin(t)
        with pytest.raises(Unsupported):
            dest.store(dest.new_oid(), None, blob_record, '', t)
        dest.tpc_abort(t)

        db = ZODB.DB(dest)
        with pytest.raises(Unsupported):
            with db.transaction() as conn:
                conn.root()['file'] = Blob(b'x')
        db.close()
    finally:
        dest.close()
        src.close()


# --- passwords -----------------------------------------------------------------------------

def _open_error(adapter):
    with pytest.raises(StorageError) as info:
        gorelstorage.GoRelStorage(adapter)
    return str(info.value)


# Passwords of 1, 2 and 3 characters, one of them also in the host's address: a message
# that hides them by replacing text is mangled or shows them by their pattern.
SHORT_PASSWORDS = ('t', 'on', '127')
UNIQUE_PASSWORD = 'Zq-unique-Zq'


@pytest.mark.skipif(not PG_DSN, reason='needs the test PostgreSQL server (scripts/test starts it)')
def test_postgresql_messages_do_not_depend_on_the_password():
    without_password = ' '.join(p for p in PG_DSN.split() if not p.startswith('password='))
    for form, shows in (('host=127.0.0.1 port=1 user=u dbname=d password=%s connect_timeout=5',
                         'dial tcp 127.0.0.1:1: connect: connection refused'),
                        (without_password + ' password=%s', 'password authentication failed'),
                        ('host=127.0.0.1 port=notaport password=%s', '127.0.0.1'),
                        ('postgresql://u:%s@127.0.0.1:1/d?connect_timeout=5', 'connection refused')):
        messages = {pw: _open_error(gorelstorage.PostgreSQL(form % pw)) for pw in SHORT_PASSWORDS + (UNIQUE_PASSWORD,)}
        assert len(set(messages.values())) == 1, messages
        message = messages[UNIQUE_PASSWORD]
        assert shows in message and UNIQUE_PASSWORD not in message and '***' not in message, message
    shown = repr(gorelstorage.PostgreSQL("host=127.0.0.1 password=127 sslpassword='t t'"))
    assert shown == "PostgreSQL('host=127.0.0.1 password=*** sslpassword=***')"
    shown = repr(gorelstorage.PostgreSQL('postgresql://u:127@127.0.0.1:5432/d?password=t&sslmode=disable'))
    assert shown == "PostgreSQL('postgresql://u:***@127.0.0.1:5432/d?password=***&sslmode=disable')"


@pytest.mark.skipif(not MYSQL_URI, reason='needs the test MariaDB server (scripts/test starts it)')
def test_mysql_messages_do_not_depend_on_the_password():
    from gorelstorage.zodburi import mysql_params
    params = mysql_params(MYSQL_URI)
    for changes, shows in (({'host': '127.0.0.1', 'port': 1, 'connect_timeout': 5},
                            'dial tcp 127.0.0.1:1: connect: connection refused'),
                           ({'user': params['user']}, 'Access denied')):
        messages = {}
        for pw in SHORT_PASSWORDS + (UNIQUE_PASSWORD,):
            kw = dict(params, **changes)
            kw['passwd'] = pw
            messages[pw] = _open_error(gorelstorage.MySQL(**kw))
        assert len(set(messages.values())) == 1, messages
        message = messages[UNIQUE_PASSWORD]
        assert shows in message and UNIQUE_PASSWORD not in message and '***' not in message, message


# --- smaller promises ----------------------------------------------------------------------

def _commit(storage, oid, serial, data):
    t = TransactionMetaData()
    storage.tpc_begin(t)
    storage.store(oid, serial, data, '', t)
    storage.tpc_vote(t)
    return storage.tpc_finish(t)


def test_history_sizes_mean_what_they_mean_in_relstorage(database):
    storage = database.make(True)
    try:
        serial = None
        for i in range(3):
            serial = _commit(storage, z64, serial, b'state %d' % i)
        assert len(storage.history(z64)) == 1
        assert len(storage.history(z64, size=2)) == 2
        assert len(storage.history(z64, size=-1)) == 1
        assert len(storage.history(z64, size=0)) == 1
        assert [h['tid'] for h in storage.history(z64, size=None)] == \
            [h['tid'] for h in storage.history(z64, size=10)]
        assert len(storage.history(z64, size=None)) == 3
        newest = storage.history(z64)[0]['tid']
        assert [h['tid'] for h in storage.history(z64, size=5, filter=lambda h: h['tid'] != newest)] == \
            [h['tid'] for h in storage.history(z64, size=None)][1:]
    finally:
        storage.close()


def test_history_mode_mismatch_is_a_configuration_error(database):
    storage = database.make(True)
    adapter = storage._db.adapter
    storage.close()
    with pytest.raises(gorelstorage.ConfigurationError) as info:
        gorelstorage.GoRelStorage(adapter, keep_history=False)
    assert 'history-preserving but keep-history is false' in str(info.value)


def test_new_oid_after_close_is_refused(database):
    storage = database.make(False)
    storage.new_oid()  # the storage keeps a block of OIDs from here on
    storage.close()
    with pytest.raises(gorelstorage.StorageClosedError):
        storage.new_oid()


def test_pack_takes_relstorages_keywords(database):
    """zodbpack's keywords are accepted; anything else, or both halves of a split pack at
    once, is refused before anything is packed."""
    storage = database.make(True)
    try:
        for kw in ({}, {'prepack_only': True}, {'skip_prepack': True}, {'gc': False}, {'check_refs': True}):
            storage.pack(0, referencesf, **kw)
        with pytest.raises(TypeError, match='prepack'):
            storage.pack(0, referencesf, prepack=True)
        with pytest.raises(ValueError):
            storage.pack(0, referencesf, prepack_only=True, skip_prepack=True)
    finally:
        storage.close()


def test_relstorage_and_gorelstorage_in_one_process_on_one_sqlite_data_dir_is_refused(tmp_path):
    db = SQLiteDatabase(str(tmp_path))
    rs = db.make_relstorage(False)
    ZODB.DB(rs)  # creates the root: RelStorage holds the database open
    try:
        with pytest.raises(gorelstorage.ConfigurationError) as info:
            db.make(False)
        assert 'another SQLite library' in str(info.value)
    finally:
        rs.close()
    db.make(False).close()  # once RelStorage has closed it, GoRelStorage opens it
