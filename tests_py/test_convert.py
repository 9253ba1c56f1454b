"""gorelstorage convert: zodbconvert's command, run as a user runs it."""
import subprocess
import sys

import pytest
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.utils import p64

from test_blobs import _filestorage_section
from test_blobs import filestorage_contents
from test_blobs import _go_section


def _convert(tmp_path, source, destination, *flags):
    config = tmp_path / ('convert-%d.conf' % len(list(tmp_path.glob('convert-*.conf'))))
    config.write_text('%s\n%s\n' % (source % 'source', destination % 'destination'))
    return subprocess.run([sys.executable, '-m', 'gorelstorage.cli', 'convert', *flags, str(config)],
                          capture_output=True, text=True, timeout=300)


def _fs(tmp_path, name):
    return _filestorage_section(tmp_path / (name + '.fs'), tmp_path / (name + '-blobs'))


def _write_source(tmp_path, start, count):
    """count transactions into src.fs: blobs replaced, plain objects added, one deleted blob's
    record kept in history."""
    fs = FileStorage(str(tmp_path / 'src.fs'), blob_dir=str(tmp_path / 'src-blobs'))
    db = ZODB.DB(fs)
    try:
        for i in range(start, start + count):
            with db.transaction('change %d' % i) as conn:
                root = conn.root()
                key = 'b%d' % (i % 3)
                data = (b'%d:' % i) * (700 * i + 1)
                if key in root:
                    with root[key].open('w') as f:
                        f.write(data)
                else:
                    root[key] = Blob(data)
                root['plain%d' % i] = PersistentMapping(i=i)
    finally:
        db.close()


def test_filestorage_to_gorelstorage_and_back_keeps_everything(database, tmp_path):
    """FileStorage with blobs -> GoRelStorage -> FileStorage: the same transactions, records,
    histories and blob bytes; then --incremental copies only what the source gained."""
    _write_source(tmp_path, 0, 5)
    go = _go_section(database, True, tmp_path / 'go-blobs')
    out = _convert(tmp_path, _fs(tmp_path, 'src'), go)
    assert out.returncode == 0, out.stderr
    assert 'copied 6 transactions' in out.stdout and '5 blobs' in out.stdout, out.stdout

    _write_source(tmp_path, 5, 3)
    out = _convert(tmp_path, _fs(tmp_path, 'src'), go, '--incremental')
    assert out.returncode == 0, out.stderr
    assert 'resuming after' in out.stdout and 'copied 3 transactions' in out.stdout, out.stdout

    out = _convert(tmp_path, go, _fs(tmp_path, 'out'))
    assert out.returncode == 0, out.stderr
    before = filestorage_contents(tmp_path / 'src.fs', tmp_path / 'src-blobs')
    after = filestorage_contents(tmp_path / 'out.fs', tmp_path / 'out-blobs')
    assert len(before) == 9 and after == before
    assert sum(1 for t in after for r in t[3] if r[2] is not None) == 8


def test_a_destination_with_data_is_refused_unless_cleared(database, tmp_path):
    _write_source(tmp_path, 0, 2)
    go = _go_section(database, True, tmp_path / 'go-blobs')
    storage = database.make(True, blob_dir=str(tmp_path / 'go-blobs'))
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        conn.root()['old'] = Blob(b'to be cleared')
    db.close()

    out = _convert(tmp_path, _fs(tmp_path, 'src'), go)
    assert out.returncode == 1
    assert out.stderr.startswith('gorelstorage convert: error: the destination') and '--clear' in out.stderr
    assert 'Traceback' not in out.stderr

    out = _convert(tmp_path, _fs(tmp_path, 'src'), go, '--clear', '--dry-run')
    assert out.returncode == 1 and 'cannot --clear' in out.stderr

    out = _convert(tmp_path, _fs(tmp_path, 'src'), go, '--clear')
    assert out.returncode == 0, out.stderr
    assert 'destination emptied' in out.stdout and 'copied 3 transactions' in out.stdout
    storage = database.make(True, blob_dir=str(tmp_path / 'go-blobs'))
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            assert sorted(conn.root().keys()) == ['b0', 'b1', 'plain0', 'plain1']
    finally:
        db.close()


def test_dry_run_writes_nothing(database, tmp_path):
    _write_source(tmp_path, 0, 4)
    go = _go_section(database, True, tmp_path / 'go-blobs')
    out = _convert(tmp_path, _fs(tmp_path, 'src'), go, '--dry-run')
    assert out.returncode == 0, out.stderr
    assert 'dry run: would copy 5 transactions' in out.stdout, out.stdout
    storage = database.make(True)
    try:
        assert list(storage.iterator()) == []
    finally:
        storage.close()


def test_errors_are_one_line_naming_the_cause(tmp_path):
    missing = _convert(tmp_path, _fs(tmp_path, 'nowhere') .replace('<filestorage', '<nosuchstorage'),
                       _fs(tmp_path, 'out'))
    assert missing.returncode == 1 and 'nosuchstorage' in missing.stderr
    assert missing.stderr.count('\n') == 1 and 'Traceback' not in missing.stderr

    _write_source(tmp_path, 0, 1)
    FileStorage(str(tmp_path / 'full.fs')).close()
    full = ZODB.DB(FileStorage(str(tmp_path / 'full.fs')))  # a destination that cannot be zapped
    full.close()
    out = _convert(tmp_path, _fs(tmp_path, 'src'), _fs(tmp_path, 'full'), '--clear')
    assert out.returncode == 1 and 'cannot be emptied' in out.stderr, out.stderr

    no_blobs = '<filestorage %%s>\npath %s\n</filestorage>' % (tmp_path / 'plain.fs')
    out = _convert(tmp_path, _fs(tmp_path, 'src'), no_blobs)
    assert out.returncode == 1 and 'keeps no blobs' in out.stderr, out.stderr

    out = subprocess.run([sys.executable, '-m', 'gorelstorage.cli', 'convert', str(tmp_path / 'absent.conf')],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and 'absent.conf' in out.stderr and 'Traceback' not in out.stderr

    out = subprocess.run([sys.executable, '-m', 'gorelstorage.cli', 'convert', '--debug', str(tmp_path / 'absent.conf')],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1 and 'Traceback' in out.stderr


@pytest.fixture(autouse=True)
def _isolated(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)


def test_a_restore_batch_commits_whole_or_not_at_all(database):
    """The bulk path's batch is one database transaction: when its second transaction cannot be
    written (its tid is taken), the first is not committed either, and the error says why."""
    from ZODB.utils import p64
    from ZODB.utils import u64
    storage = database.make(True)
    try:
        db = ZODB.DB(storage)
        with db.transaction() as conn:
            conn.root()['x'] = PersistentMapping(a=1)
        db.close()
        storage = database.make(True)
        taken = u64(storage.lastTransaction())
        before = [t.tid for t in storage.iterator()]

        class Txn:
            def __init__(self, tid):
                self.tid, self.status, self.user, self.description = p64(tid), ' ', b'u', b'd'
                self.extension_bytes = b''
        records = [(p64(1000), b'(c__builtin__\nobject\nq\x01N}q\x02tq\x03.')]
        with pytest.raises(Exception) as info:
            storage._restore_batch([(Txn(taken - 1), records), (Txn(taken), records)])
        assert str(taken) in str(info.value) or 'duplicate' in str(info.value).lower() \
            or 'unique' in str(info.value).lower(), info.value
        assert [t.tid for t in storage.iterator()] == before, 'nothing of the batch was committed'
        with pytest.raises(POSKeyError):
            storage.load(p64(1000))

        storage._restore_batch([(Txn(taken + 1), records), (Txn(taken + 2), records)])
        assert [u64(t.tid) for t in storage.iterator()][-2:] == [taken + 1, taken + 2]
        assert [u64(h['tid']) for h in storage.history(p64(1000), size=5)] == [taken + 2, taken + 1]
        with pytest.raises(Exception, match='ascend'):
            storage._restore_batch([(Txn(taken + 4), records), (Txn(taken + 3), records)])
    finally:
        storage.close()


def test_into_history_free_only_the_current_records_are_copied(database, tmp_path):
    """RelStorage's fast path: a history-free destination gets each object's current record
    with its own tid, blobs with them, and nothing older."""
    _write_source(tmp_path, 0, 7)
    go = _go_section(database, False, tmp_path / 'go-blobs')
    out = _convert(tmp_path, _fs(tmp_path, 'src'), go)
    assert out.returncode == 0, out.stderr
    assert 'current records only' in out.stdout
    assert 'copied' in out.stdout and '3 blobs' in out.stdout, out.stdout

    src = FileStorage(str(tmp_path / 'src.fs'), blob_dir=str(tmp_path / 'src-blobs'), read_only=True)
    dst = database.make(False, blob_dir=str(tmp_path / 'go-blobs'))
    try:
        oid, count = None, 0
        while True:
            current, tid, data, oid = src.record_iternext(oid)
            assert dst.load(current) == (data, tid)
            if current in (p64(i) for i in range(1, 4)) or b'ZODB.blob' in data:
                try:
                    want = open(src.loadBlob(current, tid), 'rb').read()
                except POSKeyError:
                    want = None
                if want is not None:
                    assert open(dst.loadBlob(current, tid), 'rb').read() == want
            count += 1
            if oid is None:
                break
        assert len(dst) == count == 11  # the root, three blobs, seven mappings
    finally:
        src.close()
        dst.close()
