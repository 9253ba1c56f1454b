"""Cases every database server runs the same way, written once and parametrised over
databases.SERVERS: server restarts, and RelStorage's locks held by an outside session."""
import time

import pytest
import transaction
import ZODB
from BTrees.Length import Length
from ZODB.Connection import TransactionMetaData
from ZODB.POSException import ReadConflictError
from ZODB.utils import z64
from transaction.interfaces import TransientError

import gorelstorage
from databases import SERVERS


@pytest.fixture(params=sorted(SERVERS))
def server(request, tmp_path):
    db = SERVERS[request.param](str(tmp_path))
    if db.skip_reason:
        pytest.skip(db.skip_reason)
    return db


@pytest.fixture
def location(server):
    return server.location(True)  # the empty history-preserving database "gorelstorage"


@pytest.fixture
def open_storage(server, location):
    """open_storage(**options): a new storage on the test database, closed after the test."""
    opened = []

    def open_(**options):
        storage = server.open_go(location, True, **options)
        opened.append(storage)
        return storage
    yield open_
    for storage in opened:
        storage.close()


@pytest.fixture
def restart(server):
    """restart(): the server restarts, keeping its data."""
    reason = server.restart_skip_reason()
    if reason:
        pytest.skip(reason)
    return server.restart


@pytest.fixture
def hold(server, location):
    """hold(lock): an outside session holding one of RelStorage's locks; close() releases."""
    return lambda lock: server.hold(location, lock)


def commit_root(storage, value):
    """Store value as the root's state in one transaction."""
    try:
        serial = storage.load(z64)[1]
    except KeyError:
        serial = None
    t = TransactionMetaData()
    storage.tpc_begin(t)
    try:
        storage.store(z64, serial, value, '', t)
        storage.tpc_vote(t)
        storage.tpc_finish(t)
    except BaseException:
        storage.tpc_abort(t)
        raise


# Restarts

def test_restart_between_transactions_needs_no_reopen(open_storage, restart):
    db = ZODB.DB(open_storage())
    try:
        with db.transaction() as conn:
            conn.root()['n'] = Length(1)
        restart()
        # The pooled load and store connections are dead; the next transaction works.
        with db.transaction() as conn:
            conn.root()['n'].change(1)
        restart()
        with db.transaction() as conn:
            assert conn.root()['n']() == 2
    finally:
        db.close()


def test_restart_during_a_transaction_is_retryable(open_storage, restart, server):
    password = server.password
    db = ZODB.DB(open_storage())
    try:
        with db.transaction() as conn:
            conn.root()['a'] = Length(1)
            conn.root()['b'] = Length(1)
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        conn.cacheMinimize()
        tm.begin()
        conn.root()['a'].change(1)  # the snapshot is open on the server now
        restart()
        # The snapshot is gone: a read that reaches the database cannot be
        # consistent. (The shared cache could still serve 'b' correctly for
        # this snapshot; empty it so that the read goes to the server.)
        db.storage.clear_cache()
        with pytest.raises(TransientError) as info:
            conn.root()['b'].change(1)
        assert isinstance(info.value, gorelstorage.DisconnectedError)
        assert 'connection to the database lost' in str(info.value)
        assert password not in str(info.value)
        tm.abort()
        # The retry, as transaction managers do it, succeeds on new connections.
        for attempt in tm.attempts(3):
            with attempt:
                conn.root()['a'].change(1)
                conn.root()['b'].change(1)
        conn.close()
        with db.transaction() as c:
            assert (c.root()['a'](), c.root()['b']()) == (2, 2)
    finally:
        db.close()


def test_restart_after_reading_still_commits_safely(open_storage, restart):
    """The writes are checked against the database at vote, on a new
    connection: a restart between reading and committing loses nothing."""
    db = ZODB.DB(open_storage())
    try:
        with db.transaction() as conn:
            conn.root()['n'] = Length(1)
        with db.transaction() as conn:
            conn.root()['n'].change(1)
            restart()
        with db.transaction() as conn:
            assert conn.root()['n']() == 2
    finally:
        db.close()


# Locks, as RelStorage takes them: an outside session holding RelStorage's locks
# must stop our commits, and commit-lock-timeout bounds the wait.

def test_commit_waits_for_the_commit_lock(open_storage, hold):
    storage = open_storage(commit_lock_timeout=1)
    commit_root(storage, b'one')
    holder = hold('commit')
    try:
        start = time.monotonic()
        with pytest.raises(gorelstorage.UnableToLockError):
            commit_root(storage, b'two')
        assert time.monotonic() - start >= 0.9
    finally:
        holder.close()
    commit_root(storage, b'three')
    assert storage.load(z64)[0] == b'three'


def test_modified_object_waits_for_a_reader(open_storage, hold):
    """The holder takes RelStorage's readCurrent lock of the root."""
    storage = open_storage(commit_lock_timeout=1)
    commit_root(storage, b'one')
    holder = hold('shared')
    try:
        with pytest.raises(gorelstorage.UnableToLockError) as info:
            commit_root(storage, b'two')
        assert isinstance(info.value, TransientError)
    finally:
        holder.close()
    commit_root(storage, b'two')


def test_read_current_does_not_wait_for_a_writer(open_storage, hold):
    storage = open_storage(commit_lock_timeout=30)
    commit_root(storage, b'root')
    other_oid = storage.new_oid()
    t = TransactionMetaData()
    storage.tpc_begin(t)
    storage.store(other_oid, None, b'other', '', t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)
    serial = storage.load(z64)[1]
    holder = hold('exclusive')
    try:
        t = TransactionMetaData()
        storage.tpc_begin(t)
        storage.checkCurrentSerialInTransaction(z64, serial, t)
        storage.store(other_oid, storage.load(other_oid)[1], b'changed', '', t)
        start = time.monotonic()
        with pytest.raises(ReadConflictError) as info:
            storage.tpc_vote(t)
        assert time.monotonic() - start < 5, 'a readCurrent lock never waits'
        assert info.value.oid == z64
        storage.tpc_abort(t)
    finally:
        holder.close()
