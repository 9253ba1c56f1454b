"""Bad input gets a clear error naming what was wrong; nothing is half-written."""
import pytest
from ZODB.Connection import TransactionMetaData
from ZODB.POSException import POSKeyError
from ZODB.utils import z64

import gorelstorage
from gorelstorage import GoRelStorage
from gorelstorage import SQLite3


def test_data_dir_whose_parent_does_not_exist(tmp_path):
    missing = tmp_path / 'no' / 'such' / 'data'
    with pytest.raises(gorelstorage.ConfigurationError, match='parent directory .* does not exist'):
        GoRelStorage(SQLite3(missing))


def test_history_mode_must_match_the_database(tmp_path):
    GoRelStorage(SQLite3(tmp_path / 'd'), keep_history=True).close()
    with pytest.raises(gorelstorage.ConfigurationError, match='history-preserving but keep-history is false'):
        GoRelStorage(SQLite3(tmp_path / 'd'), keep_history=False)
    GoRelStorage(SQLite3(tmp_path / 'f'), keep_history=False).close()
    with pytest.raises(gorelstorage.ConfigurationError, match='history-free but keep-history is true'):
        GoRelStorage(SQLite3(tmp_path / 'f'), keep_history=True)


def test_create_schema_off_on_an_empty_directory(tmp_path):
    with pytest.raises(gorelstorage.ConfigurationError, match='create-schema is off'):
        GoRelStorage(SQLite3(tmp_path / 'd'), create_schema=False)


def test_wrong_argument_types(tmp_path):
    with pytest.raises(TypeError, match='adapter'):
        GoRelStorage('/some/path')
    with pytest.raises(gorelstorage.ConfigurationError, match='data-dir'):
        SQLite3(123)
    with pytest.raises(gorelstorage.ConfigurationError, match='unknown option no-such-option'):
        GoRelStorage(SQLite3(tmp_path / 'd'), no_such_option=1)
    with pytest.raises(gorelstorage.ConfigurationError, match='keep-history must be true or false'):
        GoRelStorage(SQLite3(tmp_path / 'd'), keep_history='yes')
    with pytest.raises(gorelstorage.ConfigurationError, match='invalid pragma'):
        GoRelStorage(SQLite3(tmp_path / 'd', pragmas={'cache_size': '1; DROP TABLE x'}))
    storage = GoRelStorage(SQLite3(tmp_path / 'd'))
    try:
        with pytest.raises(TypeError, match='oid must be 8 bytes'):
            storage.load('abc')
        with pytest.raises(TypeError, match='oid must be 8 bytes'):
            storage.load(b'\0' * 7)
        t = TransactionMetaData()
        storage.tpc_begin(t)
        with pytest.raises(TypeError, match='data must be bytes'):
            storage.store(z64, None, 'not bytes', '', t)
        storage.tpc_abort(t)
        with pytest.raises(POSKeyError):
            storage.load(z64)
    finally:
        storage.close()


def test_use_after_close(tmp_path):
    storage = GoRelStorage(SQLite3(tmp_path / 'd'))
    instance = storage.new_instance()
    storage.close()
    with pytest.raises(gorelstorage.StorageClosedError):
        storage.load(z64)
    with pytest.raises(gorelstorage.StorageClosedError):
        storage.new_oid()
    with pytest.raises(gorelstorage.StorageClosedError):
        instance.load(z64)
    with pytest.raises(gorelstorage.StorageClosedError):
        len(storage)
    storage.close()  # closing twice is harmless
    instance.release()


def test_failed_vote_leaves_nothing_written(tmp_path):
    storage = GoRelStorage(SQLite3(tmp_path / 'd'))
    try:
        t = TransactionMetaData()
        storage.tpc_begin(t)
        storage.store(z64, None, b'root', '', t)
        storage.tpc_vote(t)
        tid = storage.tpc_finish(t)
        oid = storage.new_oid()
        t = TransactionMetaData()
        storage.tpc_begin(t)
        storage.store(oid, None, b'new', '', t)
        storage.store(z64, b'\0' * 7 + b'\1', b'stale', '', t)  # not the current serial: conflict
        from ZODB.POSException import ConflictError
        with pytest.raises(ConflictError):
            storage.tpc_vote(t)
        storage.tpc_abort(t)
        assert storage.load(z64) == (b'root', tid)
        with pytest.raises(POSKeyError):
            storage.load(oid)
    finally:
        storage.close()
