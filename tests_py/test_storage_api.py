"""Storage methods ZODB's conformance mixins do not exercise, per database x history mode."""
import os
import shutil
import subprocess

import pytest
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import ConflictError
from ZODB.POSException import POSKeyError
from ZODB.utils import p64
from ZODB.utils import z64

from gorelstorage import _native


def _commit(storage, writes):
    t = TransactionMetaData()
    storage.tpc_begin(t)
    for oid, (serial, data) in writes.items():
        storage.store(oid, serial, data, '', t)
    storage.tpc_vote(t)
    return storage.tpc_finish(t)


@pytest.fixture
def storage(database, keep_history):
    s = database.make(keep_history)
    yield s
    s.close()


def test_record_iternext_walks_every_current_record(storage):
    oids = [z64] + [storage.new_oid() for _ in range(5)]
    tid = _commit(storage, {oid: (None, b'state-%d' % i) for i, oid in enumerate(oids)})
    seen, token = [], None
    while True:
        oid, serial, data, token = storage.record_iternext(token)
        seen.append((oid, serial, data))
        if token is None:
            break
    assert seen == [(oid, tid, b'state-%d' % i) for i, oid in enumerate(oids)]


def test_delete_object(storage, keep_history):
    oid = storage.new_oid()
    tid1 = _commit(storage, {z64: (None, b'root'), oid: (None, b'doomed')})
    t = TransactionMetaData()
    storage.tpc_begin(t)
    storage.deleteObject(oid, tid1, t)
    storage.tpc_vote(t)
    tid2 = storage.tpc_finish(t)
    with pytest.raises(POSKeyError):
        storage.load(oid)
    if keep_history:
        assert storage.loadBefore(oid, tid2) == (b'doomed', tid1, tid2)
    assert storage.load(z64)[0] == b'root'


def test_delete_object_with_a_stale_serial_conflicts(storage):
    oid = storage.new_oid()
    tid1 = _commit(storage, {oid: (None, b'a')})
    _commit(storage, {oid: (tid1, b'b')})
    t = TransactionMetaData()
    storage.tpc_begin(t)
    storage.deleteObject(oid, tid1, t)
    with pytest.raises(ConflictError):
        storage.tpc_vote(t)
    storage.tpc_abort(t)
    assert storage.load(oid)[0] == b'b'


def test_prefetch_then_load(storage):
    oids = [storage.new_oid() for _ in range(50)]
    tid = _commit(storage, {oid: (None, b'x%d' % i) for i, oid in enumerate(oids)})
    instance = storage.new_instance()
    try:
        instance.poll_invalidations()
        instance.prefetch(oids + [p64(999999)])  # unknown oids are ignored
        assert [instance.load(oid) for oid in oids] == [(b'x%d' % i, tid) for i in range(len(oids))]
    finally:
        instance.release()


def test_copy_transactions_from_filestorage(storage, tmp_path):
    fs = FileStorage(str(tmp_path / 'source.fs'))
    db = ZODB.DB(fs)
    for i in range(3):
        with db.transaction('txn %d' % i) as conn:
            conn.root()['k%d' % i] = PersistentMapping(n=i)
    db.close()
    fs = FileStorage(str(tmp_path / 'source.fs'), read_only=True)
    try:
        storage.copyTransactionsFrom(fs)
        assert storage.lastTransaction() == fs.lastTransaction()
        assert storage.load(z64)[1] == fs.load(z64)[1]
    finally:
        fs.close()
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        assert sorted((k, v['n']) for k, v in conn.root().items()) == [('k0', 0), ('k1', 1), ('k2', 2)]


def test_only_grs_symbols_are_exported():
    nm = shutil.which('nm')
    if nm is None:
        pytest.skip('nm (binutils) is not installed')
    out = subprocess.run([nm, '-D', '--defined-only', _native.library_path()],
                         capture_output=True, text=True, check=True).stdout
    names = [line.split()[-1] for line in out.splitlines() if line.strip()]
    assert 'grs_open' in names
    assert [n for n in names if not n.startswith('grs_')] == []


@pytest.mark.parametrize('explicit', [False, True])
def test_sqlite_wal_stays_bounded_under_a_connection(tmp_path, explicit):
    """A Connection holds a snapshot while it commits; the WAL must still be checkpointed
    and restarted (it once grew by every commit: 40 MB after 5000 small ones)."""
    import gorelstorage
    import transaction
    data_dir = tmp_path / 'data'
    db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(data_dir)), keep_history=False))
    try:
        tm = transaction.TransactionManager(explicit=explicit)
        conn = db.open(tm)
        if explicit:
            tm.begin()
        conn.root()['m'] = m = PersistentMapping()
        tm.commit()
        for i in range(3000):
            if explicit:
                tm.begin()
            m['n'] = i
            tm.commit()
        wal = os.path.getsize(str(data_dir / 'main.sqlite3-wal'))
        # SQLite checkpoints at 1000 pages (4 MB); 3000 commits of two pages each would be 24 MB.
        assert wal < 6 * 1024 * 1024, 'the WAL grew to %d bytes' % wal
        conn.close()
    finally:
        db.close()


@pytest.mark.parametrize('keep_history', [False, True])
def test_sqlite_pages_are_filled_by_a_commits_new_objects(tmp_path, keep_history):
    """ZODB stores a commit's new objects last-found first; written in that order, SQLite's
    B-tree left one 1.5 kB object a page (514 pages for 500). In oid order two fit a page."""
    import sqlite3
    import gorelstorage
    import transaction
    data_dir = tmp_path / 'data'
    db = ZODB.DB(gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(data_dir)), keep_history=keep_history))
    try:
        tm = transaction.TransactionManager()
        conn = db.open(tm)
        conn.root()['m'] = m = PersistentMapping()
        for i in range(500):
            m[i] = PersistentMapping(data=os.urandom(700).hex())
        tm.commit()
        conn.close()
    finally:
        db.close()
    with sqlite3.connect(str(data_dir / 'main.sqlite3')) as c:
        c.execute('PRAGMA wal_checkpoint(TRUNCATE)')
        table_pages = c.execute("SELECT count(*) FROM dbstat WHERE name = 'object_state'").fetchone()[0]
    assert table_pages < 330, '%d pages for 501 objects of 1.5 kB' % table_pages
