"""zap_all: the database emptied, as RelStorage's zap_all and ``zodbconvert --clear`` do."""
import os
import subprocess
import sys

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.POSException import StorageTransactionError
from ZODB.utils import p64
from ZODB.utils import z64


def _blob_files(blob_dir):
    return sorted(os.path.join(d, f) for d, _, files in os.walk(blob_dir) for f in files if f.endswith('.blob'))


def _fill(storage, n, blobs=True):
    db = ZODB.DB(storage)
    try:
        for i in range(n):
            with db.transaction('fill %d' % i) as conn:
                conn.root()['obj%d' % i] = PersistentMapping(i=i)
                if blobs:
                    conn.root()['blob%d' % i] = Blob(b'blob %d' % i)
    finally:
        db.close()


@pytest.mark.parametrize('shared', [False, True], ids=['cache', 'shared'])
def test_zap_all_empties_the_database_its_blobs_and_caches(database, keep_history, tmp_path, shared):
    blob_dir = str(tmp_path / 'blobs')
    _fill(database.make(keep_history, blob_dir=blob_dir, shared_blob_dir=shared), 3)
    storage = database.make(keep_history, blob_dir=blob_dir, shared_blob_dir=shared)
    try:
        db = ZODB.DB(storage)
        with db.transaction() as conn:  # loaded: cached pickles, downloaded blob files
            assert conn.root()['blob2'].open().read() == b'blob 2'
        assert _blob_files(blob_dir)
        old_tid = storage.lastTransaction()
        db.close()

        storage = database.make(keep_history, blob_dir=blob_dir, shared_blob_dir=shared)
        storage.zap_all()
        assert len(storage) == 0
        assert storage.lastTransaction() == z64
        with pytest.raises(POSKeyError):
            storage.load(z64)
        assert _blob_files(blob_dir) == []
        assert os.path.isdir(os.path.join(blob_dir, 'tmp'))
        assert list(storage.iterator()) == []
        assert storage.new_oid() == p64(1), 'the OIDs start again'

        # The emptied database is a new one: ZODB makes its root, commits and reads work.
        db = ZODB.DB(storage)
        with db.transaction() as conn:
            assert list(conn.root().keys()) == []
            conn.root()['after'] = Blob(b'after the zap')
        with db.transaction() as conn:
            assert conn.root()['after'].open().read() == b'after the zap'
        assert storage.lastTransaction() > old_tid
        if keep_history:
            assert [e['description'] for e in db.undoLog(0, 10)] == ['', 'initial database creation']
        db.close()
    finally:
        storage.close()


def test_zap_all_is_refused_during_a_transaction(database, tmp_path):
    _fill(database.make(True), 1, blobs=False)
    storage = database.make(True)
    try:
        t = TransactionMetaData()
        storage.tpc_begin(t)
        with pytest.raises(StorageTransactionError, match='transaction is in progress'):
            storage.zap_all()
        storage.tpc_abort(t)
        assert len(storage) == 2, 'nothing was removed'
        with pytest.raises(ValueError, match='reset_oid=False'):
            storage.zap_all(reset_oid=False)
        storage.zap_all(slow=True)
        assert len(storage) == 0
    finally:
        storage.close()


def test_zodbconvert_clear_replaces_what_the_destination_held(database, tmp_path):
    """RelStorage's zodbconvert --clear empties GoRelStorage through zap_all and copies the
    source in: the destination holds the source's transactions and nothing else."""
    from test_blobs import _filestorage_section
    from test_blobs import _go_section
    src = FileStorage(str(tmp_path / 'src.fs'), blob_dir=str(tmp_path / 'src-blobs'))
    db = ZODB.DB(src)
    for i in range(3):
        with db.transaction() as conn:
            conn.root()['src%d' % i] = Blob(b'source %d' % i)
    db.close()
    _fill(database.make(True, blob_dir=str(tmp_path / 'go-blobs')), 4)  # what --clear removes

    config = tmp_path / 'convert.conf'
    config.write_text('%%import gorelstorage\n%s\n%s\n' % (
        _filestorage_section(tmp_path / 'src.fs', tmp_path / 'src-blobs') % 'source',
        _go_section(database, True, tmp_path / 'go-blobs') % 'destination'))
    subprocess.run([sys.executable, '-m', 'relstorage.zodbconvert', '--clear', str(config)], check=True,
                   capture_output=True, timeout=300)

    src = FileStorage(str(tmp_path / 'src.fs'), read_only=True)
    want = [t.tid for t in src.iterator()]
    src.close()
    storage = database.make(True, blob_dir=str(tmp_path / 'go-blobs'))
    try:
        assert [t.tid for t in storage.iterator()] == want
        db = ZODB.DB(storage)
        with db.transaction() as conn:
            assert sorted(conn.root().keys()) == ['src0', 'src1', 'src2']
            assert conn.root()['src1'].open().read() == b'source 1'
        db.close()
    finally:
        storage.close()
    transaction.abort()
