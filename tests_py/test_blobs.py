"""Blobs over database x history mode x blob directory layout: ZODB's reusable blob suite,
RelStorage interop both ways, conversion from and to FileStorage, the cache's size limit and
locking, bad input and faults."""
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import time
import unittest

import pytest
import transaction
import ZODB
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.Connection import TransactionMetaData
from ZODB.FileStorage import FileStorage
from ZODB.POSException import POSKeyError
from ZODB.tests.testblob import storage_reusable_suite
from ZODB.utils import p64

import gorelstorage
from databases import DATABASES
from gorelstorage.zodburi import mysql_params

LAYOUTS = {'cache': False, 'shared': True}
HERE = os.path.dirname(os.path.abspath(__file__))


# --- ZODB's reusable blob suite ------------------------------------------------------------

def _flatten(suite):
    for test in suite:
        if isinstance(test, unittest.TestSuite):
            yield from _flatten(test)
        else:
            yield test


def _zodb_suite(db_name, mode, layout):
    """ZODB's blob suite for one combination. Each test runs in its own temporary directory
    (ZODB's setUp changes into one), which keys the database it gets: the first storage a
    test makes starts from an empty database, a second name gets the second database."""
    databases = {}

    def factory(name, blob_dir):
        cwd = os.getcwd()
        if cwd not in databases:
            databases[cwd] = DATABASES[db_name](cwd)
        label = 'dst' if name in ('2', 'dest') else 'main'
        return databases[cwd].make(mode == 'hp', label=label, blob_dir=blob_dir,
                                   shared_blob_dir=LAYOUTS[layout])

    suite = storage_reusable_suite('%s_%s_%s' % (db_name, mode, layout), factory,
                                   test_blob_storage_recovery=mode == 'hp', test_undo=mode == 'hp',
                                   # blob_packing.txt reads FileStorage's fshelper;
                                   # test_pack.py checks what a pack does to blobs.
                                   test_packing=False)
    tests = list(_flatten(suite))
    if os.geteuid() == 0:
        for test in tests:
            _as_root(test)
    return suite.layer, tests


def _as_root(test):
    """blob_transaction.txt opens a committed blob file for writing and expects a
    PermissionError, which root never gets (and the open truncates the file). As root, that
    example checks instead that the file has no write permission, which is what stops
    everyone else."""
    for example in getattr(getattr(test, '_dt_test', None), 'examples', ()):
        if "open(blob.committed(), 'w')" in example.source:
            example.source = ("print('Error raised.' if not os.stat(blob.committed()).st_mode & 0o222 "
                              "else 'writable')\n")


def _cases():
    for db_name in sorted(DATABASES):
        for mode in ('hp', 'hf'):
            for layout in sorted(LAYOUTS):
                layer, tests = _zodb_suite(db_name, mode, layout)
                for test in tests:
                    name = test.id().split('.')[-1]
                    yield pytest.param(db_name, mode, layout, layer, test,
                                       id='%s-%s-%s-%s' % (db_name, mode, layout, name))


@pytest.mark.parametrize('db_name, mode, layout, layer, test', list(_cases()))
def test_zodb_blob_suite(db_name, mode, layout, layer, test):
    skip = DATABASES[db_name].skip_reason
    if skip:
        pytest.skip(skip)
    result = unittest.TestResult()
    layer.testSetUp()
    try:
        test.run(result)
    finally:
        layer.testTearDown()
    problems = result.errors + result.failures
    assert not problems, '\n'.join(text for _, text in problems)
    if result.skipped:
        pytest.skip(result.skipped[0][1])


# --- helpers ---------------------------------------------------------------------------------

@pytest.fixture(params=sorted(LAYOUTS))
def shared(request):
    return LAYOUTS[request.param]


def _payload(n, seed=b'x'):
    """n bytes, not compressible, reproducible."""
    out, block = [], hashlib.sha256(seed).digest()
    while sum(map(len, out)) < n:
        block = hashlib.sha256(block).digest()
        out.append(block * 32)
    return b''.join(out)[:n]


def _commit_blobs(storage, blobs):
    """Commit {key: bytes} as Blobs under root[key]; returns {key: (oid, serial)}."""
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            for key, data in blobs.items():
                conn.root()[key] = Blob(data)
        conn = db.open()
        try:
            return {key: (conn.root()[key]._p_oid, conn.root()[key]._p_serial) for key in blobs}
        finally:
            conn.close()
    finally:
        db.close()


def _read_blobs(storage, keys):
    db = ZODB.DB(storage)
    try:
        conn = db.open()
        try:
            out = {}
            for key in keys:
                with conn.root()[key].open() as f:
                    out[key] = f.read()
            return out
        finally:
            conn.close()
    finally:
        db.close()


# --- bytes, chunks, revisions ----------------------------------------------------------------

def test_blob_bytes_survive_every_chunking(database, keep_history, shared, tmp_path):
    """Empty, one-byte, chunk-sized and multi-chunk blobs read back byte for byte from a
    cold cache (a new blob directory); 'windows' is read from PostgreSQL in three windows of
    256 kB pieces after its first chunk, the last one partly past its end."""
    chunk = 4096
    blobs = {'empty': b'', 'one': b'\0', 'exact': _payload(chunk), 'many': _payload(5 * chunk + 17),
             'windows': _payload(chunk + (3 << 20) + 5)}
    blob_dir = str(tmp_path / 'blobs')
    storage = database.make(keep_history, blob_dir=blob_dir, shared_blob_dir=shared, blob_chunk_size=chunk)
    _commit_blobs(storage, blobs)
    cold = blob_dir if shared else str(tmp_path / 'cold')
    storage = database.make(keep_history, blob_dir=cold, shared_blob_dir=shared, blob_chunk_size=chunk)
    assert _read_blobs(storage, blobs) == blobs


def test_old_revisions_and_missing_blobs(database, keep_history, shared, tmp_path):
    """History-preserving: loadBlob(oid, old serial) gives the old bytes. A revision without
    a blob is a POSKeyError naming the oid and the tid."""
    storage = database.make(keep_history, blob_dir=str(tmp_path / 'blobs'), shared_blob_dir=shared)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['b'] = Blob(b'first')
        conn = db.open()
        blob = conn.root()['b']
        blob._p_activate()
        oid, first = blob._p_oid, blob._p_serial
        with blob.open('w') as f:
            f.write(b'second')
        transaction.commit()
        blob._p_activate()  # committing a blob ghosts it
        second = blob._p_serial
        conn.close()
        with open(storage.loadBlob(oid, second), 'rb') as f:
            assert f.read() == b'second'
        if keep_history:
            with open(storage.loadBlob(oid, first), 'rb') as f:
                assert f.read() == b'first'
        with pytest.raises(POSKeyError) as info:
            storage.loadBlob(oid, p64(12345))
        assert '0x%016x' % 12345 in str(info.value) and ('0x%016x' % int.from_bytes(oid, 'big')) in str(info.value)
    finally:
        db.close()


def test_open_blob_files_are_read_only_and_stay_readable(database, keep_history, tmp_path):
    storage = database.make(keep_history, blob_dir=str(tmp_path / 'blobs'))
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['b'] = Blob(b'data')
        conn = db.open()
        f = conn.root()['b'].open()
        assert not os.stat(f.name).st_mode & 0o222, 'a committed blob file is writable'
        assert f.read() == b'data'
        f.close()
        conn.close()
    finally:
        db.close()


# --- RelStorage interop -----------------------------------------------------------------------

def test_each_reads_the_blobs_the_other_wrote(database, keep_history, shared, tmp_path):
    """Blobs RelStorage wrote are read by GoRelStorage byte for byte, and the reverse; with a
    shared blob directory both use the same files."""
    ours = {'go-small': b'go', 'go-big': _payload(3 << 20, b'go')}
    theirs = {'rs-small': b'rs', 'rs-big': _payload(3 << 20, b'rs')}
    shared_dir = str(tmp_path / 'shared')

    def blob_dir(name):
        return shared_dir if shared else str(tmp_path / name)

    _commit_blobs(database.make(keep_history, blob_dir=blob_dir('go1'), shared_blob_dir=shared), ours)
    rs = database.make_relstorage(keep_history, blob_dir=blob_dir('rs1'), shared_blob_dir=shared)
    assert _read_blobs(rs, ours) == ours
    rs = database.make_relstorage(keep_history, blob_dir=blob_dir('rs2'), shared_blob_dir=shared)
    _commit_blobs(rs, theirs)
    go = database.make(keep_history, blob_dir=blob_dir('go2'), shared_blob_dir=shared)
    assert _read_blobs(go, {**ours, **theirs}) == {**ours, **theirs}


# --- conversion -------------------------------------------------------------------------------

def _zodbconvert(tmp_path, source, destination):
    config = tmp_path / ('convert-%d.conf' % len(os.listdir(tmp_path)))
    config.write_text('%%import gorelstorage\n%s\n%s\n' % (source % 'source', destination % 'destination'))
    subprocess.run([sys.executable, '-m', 'relstorage.zodbconvert', str(config)], check=True,
                   capture_output=True, timeout=300)


def _filestorage_section(path, blob_dir):
    return '<filestorage %%s>\npath %s\nblob-dir %s\n</filestorage>' % (path, blob_dir)


def _go_section(database, keep_history, blob_dir):
    location = database.location(keep_history)
    if database.name == 'sqlite':
        os.makedirs(location, exist_ok=True)
        adapter = '<gosqlite3>\ndata-dir %s\n</gosqlite3>' % location
    elif database.name == 'postgresql':
        adapter = '<gopostgresql>\ndsn %s\n</gopostgresql>' % location
    elif database.name == 'mysql':
        adapter = '<gomysql>\n%s\n</gomysql>' % '\n'.join(
            '%s %s' % kv for kv in sorted(mysql_params(location).items()) if kv[1] not in (None, ''))
    else:
        pytest.skip('the conversion test writes ZConfig for SQLite, PostgreSQL and MySQL')
    return ('<gorelstorage %%s>\nkeep-history %s\nblob-dir %s\n%s\n</gorelstorage>'
            % ('true' if keep_history else 'false', blob_dir, adapter))


def filestorage_contents(path, blob_dir):
    """Every transaction's tid, user, description, and its records (oid, data, blob bytes or
    None) in oid order."""
    fs = FileStorage(str(path), blob_dir=str(blob_dir), read_only=True)
    try:
        out = []
        for txn in fs.iterator():
            records = []
            for rec in txn:
                blob = None
                try:
                    with open(fs.loadBlob(rec.oid, rec.tid), 'rb') as f:
                        blob = f.read()
                except POSKeyError:
                    pass
                records.append((rec.oid, rec.data, blob))
            out.append((txn.tid, txn.user, txn.description, sorted(records)))
        return out
    finally:
        fs.close()


def test_zodbconvert_filestorage_to_gorelstorage_and_back(database, tmp_path):
    """RelStorage's zodbconvert copies a FileStorage with blobs into GoRelStorage (history
    preserved) and back out into a new FileStorage: same transactions, same blob bytes."""
    src = FileStorage(str(tmp_path / 'src.fs'), blob_dir=str(tmp_path / 'src-blobs'))
    db = ZODB.DB(src)
    contents = {}
    for i in range(4):
        with db.transaction() as conn:
            key = 'b%d' % (i % 3)
            contents[key] = _payload(1000 * i + 1, key.encode() + bytes([i]))
            if key in conn.root():
                with conn.root()[key].open('w') as f:
                    f.write(contents[key])
            else:
                conn.root()[key] = Blob(contents[key])
            conn.root()['plain%d' % i] = PersistentMapping(i=i)
    db.close()

    go = _go_section(database, True, tmp_path / 'go-blobs')
    _zodbconvert(tmp_path, _filestorage_section(tmp_path / 'src.fs', tmp_path / 'src-blobs'), go)
    _zodbconvert(tmp_path, go, _filestorage_section(tmp_path / 'out.fs', tmp_path / 'out-blobs'))

    before = filestorage_contents(tmp_path / 'src.fs', tmp_path / 'src-blobs')
    after = filestorage_contents(tmp_path / 'out.fs', tmp_path / 'out-blobs')
    assert after == before
    assert sum(1 for *_, records in after for *_, blob in records if blob is not None) == 4


# --- the cache ----------------------------------------------------------------------------------

def _cache_bytes(blob_dir):
    total = 0
    for dirpath, _, files in os.walk(blob_dir):
        if os.path.basename(dirpath).isdigit():
            total += sum(os.path.getsize(os.path.join(dirpath, f)) for f in files if f.endswith('.blob'))
    return total


def test_cache_stays_within_its_size_and_keeps_open_files(tmp_path):
    """Reading 40 blobs of 100 kB through a 1 MB cache leaves it under 1 MB once pruning ran;
    a blob open for reading is never removed."""
    location = str(tmp_path / 'data')
    blobs = {'b%02d' % i: _payload(100_000, b'%d' % i) for i in range(40)}
    _commit_blobs(gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=str(tmp_path / 'w')), blobs)
    cache = str(tmp_path / 'cache')
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=cache,
                                        blob_cache_size=1_000_000, blob_cache_size_check=10)
    db = ZODB.DB(storage)
    try:
        conn = db.open()
        held = conn.root()['b00'].open()
        for key in sorted(blobs):
            with conn.root()[key].open() as f:
                assert f.read() == blobs[key]
        gorelstorage._native.blob_wait_pruning(storage._db.handle)
        assert _cache_bytes(cache) <= 1_000_000 + 100_000  # the held file may stay above the target
        assert os.path.exists(held.name), 'a blob open for reading was pruned'
        assert held.read() == blobs['b00']
        held.close()
        conn.close()
    finally:
        db.close()


def test_external_pruning(tmp_path):
    """blob-cache-size-check-external prunes in a separate process (python -m gorelstorage.blobcache)."""
    location = str(tmp_path / 'data')
    blobs = {'b%02d' % i: _payload(100_000, b'%d' % i) for i in range(20)}
    _commit_blobs(gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=str(tmp_path / 'w')), blobs)
    cache = str(tmp_path / 'cache')
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=cache, blob_cache_size=500_000,
                                        blob_cache_size_check_external=True)
    assert _read_blobs(storage, blobs) == blobs  # closes the storage, which waits for pruning
    assert _cache_bytes(cache) <= 500_000


_FETCHER = textwrap.dedent('''
    import sys, ZODB, gorelstorage
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(sys.argv[1]), blob_dir=sys.argv[2])
    db = ZODB.DB(storage)
    conn = db.open()
    with conn.root()['big'].open() as f:
        data = f.read()
    print(len(data), __import__('hashlib').sha256(data).hexdigest())
    db.close()
''')


def test_processes_fetching_one_blob_at_once(tmp_path):
    """Four processes sharing a cache download one blob at the same moment: each reads it whole."""
    location = str(tmp_path / 'data')
    big = _payload(20 << 20, b'big')
    _commit_blobs(gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=str(tmp_path / 'w')),
                  {'big': big})
    cache = str(tmp_path / 'cache')
    procs = [subprocess.Popen([sys.executable, '-c', _FETCHER, location, cache], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE) for _ in range(4)]
    outputs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outputs):
        assert p.returncode == 0, err.decode()
        assert out.split() == [str(len(big)).encode(), hashlib.sha256(big).hexdigest().encode()]
    files = [f for _, _, fs in os.walk(cache) for f in fs if f.endswith('.blob')]
    assert len(files) == 1 and not [f for _, _, fs in os.walk(cache) for f in fs if f.endswith('.tmp')]


# --- bad input and faults ---------------------------------------------------------------------

def test_missing_blob_file_is_refused_and_nothing_commits(tmp_path):
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'b'))
    try:
        t = TransactionMetaData()
        storage.tpc_begin(t)
        oid = storage.new_oid()
        with pytest.raises(FileNotFoundError, match='nope'):
            storage.storeBlob(oid, None, b'record', str(tmp_path / 'nope'), '', t)
        assert os.listdir(storage.temporaryDirectory()) == []
        storage.tpc_abort(t)
        with pytest.raises(POSKeyError):
            storage.load(oid)
    finally:
        storage.close()


def test_blob_dir_that_cannot_be_made(tmp_path):
    (tmp_path / 'file').write_bytes(b'')
    with pytest.raises(gorelstorage.ConfigurationError, match='not a directory'):
        gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'd')), blob_dir=str(tmp_path / 'file' / 'b'))


_FULL_DISK = textwrap.dedent('''
    import resource, signal, sys, ZODB, gorelstorage
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(sys.argv[1]), blob_dir=sys.argv[2])
    db = ZODB.DB(storage)
    conn = db.open()
    blob = conn.root()['big']
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))  # files stop growing at 1 MB
    try:
        blob.open().read()
    except Exception as e:
        print(type(e).__name__, e)
    db.close()
''')


def test_full_disk_while_downloading(tmp_path):
    """A download the disk cannot hold fails with an error naming the cause, and leaves no
    file in the cache (a later reader downloads it again)."""
    location = str(tmp_path / 'data')
    big = _payload(4 << 20, b'full')
    _commit_blobs(gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=str(tmp_path / 'w')),
                  {'big': big})
    cache = str(tmp_path / 'cache')
    out = subprocess.run([sys.executable, '-c', _FULL_DISK, location, cache], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    assert b'file too large' in out.stdout, out.stdout
    assert not [f for _, _, fs in os.walk(cache) for f in fs if f.endswith(('.blob', '.tmp'))]
    assert _read_blobs(gorelstorage.GoRelStorage(gorelstorage.SQLite3(location), blob_dir=cache),
                       {'big': big}) == {'big': big}


_MEMORY = textwrap.dedent('''
    import os, resource, sys, ZODB, transaction, gorelstorage
    from ZODB.blob import Blob
    sys.path.insert(0, sys.argv[1])
    from databases import DATABASES
    database = DATABASES[sys.argv[2]](sys.argv[3])
    size = int(sys.argv[4])
    src = os.path.join(sys.argv[3], 'src')
    with open(src, 'wb') as f:
        block = os.urandom(1 << 20)
        for _ in range(size >> 20):
            f.write(block)
    def peak():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    db = ZODB.DB(database.make(False, blob_dir=os.path.join(sys.argv[3], 'b1')))
    with db.transaction() as conn:
        conn.root()['x'] = 1
    base = peak()
    with db.transaction() as conn:
        b = conn.root()['big'] = Blob()
        with b.open('w') as f:
            with open(src, 'rb') as s:
                while True:
                    chunk = s.read(1 << 20)
                    if not chunk:
                        break
                    f.write(chunk)
    written = peak()
    db.close()
    db = ZODB.DB(database.make(False, blob_dir=os.path.join(sys.argv[3], 'b2')))
    conn = db.open()
    n = 0
    with conn.root()['big'].open() as f:
        while True:
            chunk = f.read(1 << 20)
            if not chunk:
                break
            n += len(chunk)
    read = peak()
    db.close()
    print(n, written - base, read - base)
''')


def test_200mb_blob_in_bounded_memory(database, tmp_path):
    """A 200 MB blob is written and read back cold while the process's peak memory grows by
    less than 100 MB (the blob streams between its file and the database in chunks)."""
    size = 200 << 20
    out = subprocess.run([sys.executable, '-c', _MEMORY, HERE, database.name, str(tmp_path), str(size)],
                         capture_output=True, timeout=900)
    assert out.returncode == 0, out.stderr.decode()
    n, written, read = map(int, out.stdout.split())
    assert n == size
    assert written < 100 << 20, 'writing grew the peak memory by %d MB' % (written >> 20)
    assert read < 100 << 20, 'reading grew the peak memory by %d MB' % (read >> 20)


def test_kill_during_blob_commits_leaves_no_partial_blob(database, shared, tmp_path):
    """A writer committing blobs is killed (-9) at random moments; afterwards every committed
    blob reads back whole (its hash is stored beside it) and no partial file is in sight."""
    blob_dir = str(tmp_path / 'blobs')
    location = database.location(False)
    for round_ in range(5):
        # A Blob made outside a connection writes its file in TMPDIR: the killed worker's
        # last one stays there, in this test's directory.
        worker = subprocess.Popen([sys.executable, os.path.join(HERE, 'blob_worker.py'), HERE, database.name,
                                   location, blob_dir, '1' if shared else '0', str(round_)],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  env=dict(os.environ, TMPDIR=str(tmp_path)))
        line = worker.stdout.readline()  # the first commit is in: kill it later, mid-commit or not
        assert line, worker.stderr.read().decode()
        time.sleep(random.uniform(0.05, 0.6))
        worker.send_signal(signal.SIGKILL)
        worker.wait()
    storage = database.open_go(location, False, blob_dir=blob_dir if shared else str(tmp_path / 'check'),
                               shared_blob_dir=shared)
    db = ZODB.DB(storage)
    try:
        conn = db.open()
        hashes = conn.root()['hashes']
        assert len(hashes) >= 5
        for key, digest in hashes.items():
            with conn.root()[key].open() as f:
                assert hashlib.sha256(f.read()).hexdigest() == digest, key
        conn.close()
    finally:
        db.close()
    if not shared:
        assert not [f for _, _, fs in os.walk(blob_dir) for f in fs if f.endswith('.tmp')]
