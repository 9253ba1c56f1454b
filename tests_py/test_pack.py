"""Pack over database x history mode: what garbage collection removes and keeps, blobs,
states that cannot be read, writers committing during a pack (GoRelStorage's and
RelStorage's), a pack killed with SIGKILL and run again, and RelStorage's zodbpack working on
the tables our pack leaves, and the reverse. ZODB's own pack suites run in test_conformance."""
import fcntl
import logging
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest
import transaction
import ZODB
import ZODB.FileStorage
from persistent.mapping import PersistentMapping
from ZODB.blob import Blob
from ZODB.Connection import TransactionMetaData
from ZODB.POSException import POSKeyError
from ZODB.serialize import referencesf
from ZODB.utils import p64
from ZODB.utils import u64

import gorelstorage
from pack_writer import grow_and_prune

HERE = os.path.dirname(os.path.abspath(__file__))


def _tid(storage):
    return u64(storage.lastTransaction())


def _oid_of(db, key):
    conn = db.open()
    try:
        return conn.root()[key]._p_oid
    finally:
        conn.close()


def _loads(storage, oid):
    """True when oid's current revision loads."""
    try:
        storage.load(oid)
        return True
    except POSKeyError:
        return False


def _walk(storage):
    """Every oid reachable from the root; each must load (a dangling reference raises)."""
    seen, todo = set(), [p64(0)]
    while todo:
        oid = todo.pop()
        if oid in seen:
            continue
        seen.add(oid)
        data, _ = storage.load(oid)
        todo.extend(referencesf(data))
    return seen


# --- what a pack removes and keeps -------------------------------------------------------

@pytest.mark.parametrize('gc', [True, False])
def test_pack_removes_garbage_and_old_revisions(database, keep_history, gc):
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            root = conn.root()
            root['kept'] = PersistentMapping(child=PersistentMapping(n=1))
            root['dropped'] = PersistentMapping(child=PersistentMapping(n=2))
        kept, dropped = _oid_of(db, 'kept'), _oid_of(db, 'dropped')
        conn = db.open()
        child_of_dropped = conn.root()['dropped']['child']._p_oid
        conn.close()
        old = _tid(storage)
        with db.transaction() as conn:
            conn.root()['kept']['n'] = 2
            del conn.root()['dropped']
        storage.pack(None, referencesf, gc=gc)
        assert _loads(storage, kept)
        assert _walk(storage) >= {p64(0), kept}
        assert _loads(storage, dropped) is not gc
        assert _loads(storage, child_of_dropped) is not gc
        if keep_history:
            with pytest.raises(POSKeyError):
                storage.loadSerial(kept, p64(old))
            # Packed transactions cannot be undone.
            assert storage.undoLog() == []
    finally:
        db.close()


def test_pack_to_a_time_keeps_later_history(database):
    """History-preserving: a pack to a time between two commits keeps the revisions current
    then and everything after; undo of the later transaction still works."""
    storage = database.make(True)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['a'] = PersistentMapping(v=1)
        with db.transaction() as conn:
            conn.root()['a']['v'] = 2
        middle = _tid(storage)
        with db.transaction() as conn:
            conn.root()['a']['v'] = 3
        last = _tid(storage)
        storage.pack(middle, referencesf)
        a = _oid_of(db, 'a')
        assert [h['tid'] for h in storage.history(a, size=10)] == [p64(last), p64(middle)]
        undo_id = storage.undoLog(0, 1)[0]['id']
        db.undo(undo_id)
        transaction.commit()
        with db.transaction() as conn:
            assert conn.root()['a']['v'] == 2
        # Packing again to the same time finds nothing more to remove.
        storage.pack(middle, referencesf)
        assert len(storage.history(a, size=10)) == 3
    finally:
        db.close()


def _dangling_prev_tids(database, keep_history):
    """object_state rows whose prev_tid names a transaction that does not exist, read
    through RelStorage's own connection."""
    rs = database.make_relstorage(keep_history)
    conn, cursor = rs._adapter.connmanager.open()
    try:
        txn = {'mysql': '`transaction`', 'oracle': 'transaction'}.get(database.name, '"transaction"')
        cursor.execute('SELECT o.zoid, o.tid, o.prev_tid FROM object_state o WHERE o.prev_tid <> 0'
                       ' AND NOT EXISTS (SELECT 1 FROM %s t WHERE t.tid = o.prev_tid)' % txn)
        return list(cursor.fetchall())
    finally:
        rs._adapter.connmanager.close(conn, cursor)
        rs.close()


def test_pack_removes_emptied_transactions_and_later_undo_works(database):
    """History-preserving: a transaction whose every revision the pack removes goes, the
    revisions kept no longer name it, and undo of a later transaction restores them."""
    storage = database.make(True)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['a'] = PersistentMapping(v=1)
        first = _tid(storage)
        with db.transaction() as conn:
            conn.root()['n'] = 1
            conn.root()['a']['v'] = 2
        middle = _tid(storage)
        with db.transaction() as conn:
            conn.root()['a']['v'] = 3
        storage.pack(middle, referencesf)
        a = _oid_of(db, 'a')
        assert first not in [u64(t.tid) for t in storage.iterator()]
        assert [u64(h['tid']) for h in storage.history(a, size=10)] == [_tid(storage), middle]
        assert _dangling_prev_tids(database, True) == []
        assert len(storage.undoLog()) == 1
        db.undo(storage.undoLog(0, 1)[0]['id'])
        transaction.commit()
        with db.transaction() as conn:
            assert conn.root()['a']['v'] == 2
    finally:
        db.close()


def test_prepack_then_skip_prepack(database, keep_history):
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['x'] = PersistentMapping()
        x = _oid_of(db, 'x')
        with db.transaction() as conn:
            del conn.root()['x']
        storage.pack(None, referencesf, prepack_only=True)
        assert _loads(storage, x)
        storage.pack(None, referencesf, skip_prepack=True)
        assert not _loads(storage, x)
        with pytest.raises(ValueError):
            storage.pack(None, referencesf, prepack_only=True, skip_prepack=True)
    finally:
        db.close()


def test_a_commit_after_the_plan_keeps_what_it_reaches(database, keep_history):
    """An object planned as garbage that a transaction committed after the plan refers to
    again (a connection still holding it from an older snapshot) is kept, with what it refers
    to: the remove step reads what committed since the plan before removing anything."""
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['x'] = PersistentMapping(child=PersistentMapping(n=1))
            conn.root()['holder'] = PersistentMapping()
        stale_tm = transaction.TransactionManager()
        stale = db.open(stale_tm)
        x = stale.root()['x']
        child = x['child']._p_oid
        with db.transaction() as conn:
            del conn.root()['x']
        storage.pack(None, referencesf, prepack_only=True)
        stale.root()['holder']['x'] = x  # the holder did not change: no conflict
        stale_tm.commit()
        stale.close()
        storage.pack(None, referencesf, skip_prepack=True)
        assert _loads(storage, x._p_oid) and _loads(storage, child)
        assert {x._p_oid, child} <= _walk(storage)
    finally:
        db.close()


def test_check_refs_lists_references_to_missing_objects(database, keep_history):
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['a'] = PersistentMapping(b=PersistentMapping())
        a = _oid_of(db, 'a')
        conn = db.open()
        b = conn.root()['a']['b']._p_oid
        conn.close()
        # Delete b behind the application's back (IExternalGC), leaving a's reference.
        t = TransactionMetaData()
        storage.tpc_begin(t)
        storage.deleteObject(b, storage.load(b)[1], t)
        storage.tpc_vote(t)
        storage.tpc_finish(t)
        assert storage.pack(None, referencesf, check_refs=True) == [(a, b)]
        assert _loads(storage, a)  # nothing removed
    finally:
        db.close()


# --- states that cannot be read ---------------------------------------------------------

def _store_raw(storage, oid, serial, data):
    t = TransactionMetaData()
    storage.tpc_begin(t)
    storage.store(oid, serial, data, '', t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)


@pytest.mark.parametrize('reachable', [True, False])
def test_unreadable_state_is_reported_and_nothing_it_may_reach_goes(database, keep_history, reachable, caplog):
    """A state whose references cannot be read never stops the pack silently: it is named in
    a warning, and when it is reachable no object is collected (it may refer to any)."""
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['bad'] = PersistentMapping()
            conn.root()['garbage'] = PersistentMapping()
        bad, garbage = _oid_of(db, 'bad'), _oid_of(db, 'garbage')
        with db.transaction() as conn:
            del conn.root()['garbage']
            if not reachable:
                del conn.root()['bad']
        _store_raw(storage, bad, storage.load(bad)[1], b'this is not a pickle')
        with caplog.at_level(logging.WARNING, logger='gorelstorage'):
            storage.pack(None, referencesf)
        assert 'oid %d' % u64(bad) in caplog.text
        assert _loads(storage, garbage) is reachable
        assert _loads(storage, bad) is reachable
    finally:
        db.close()


# --- blobs -------------------------------------------------------------------------------

@pytest.mark.parametrize('shared', [False, True], ids=['cache', 'shared'])
def test_pack_removes_blobs(database, keep_history, shared, tmp_path):
    blob_dir = str(tmp_path / 'blobs')
    storage = database.make(keep_history, blob_dir=blob_dir, shared_blob_dir=shared)
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            conn.root()['kept'] = Blob(b'first')
            conn.root()['dropped'] = Blob(b'dropped')
        conn = db.open()
        kept, dropped = conn.root()['kept'], conn.root()['dropped']
        kept._p_activate()
        dropped._p_activate()
        first, dropped_serial = kept._p_serial, dropped._p_serial
        with kept.open('w') as f:
            f.write(b'second')
        del conn.root()['dropped']
        transaction.commit()
        kept._p_activate()
        current = kept._p_serial
        conn.close()
        old_files = [storage.loadBlob(dropped._p_oid, dropped_serial)]
        if keep_history:
            old_files.append(storage.loadBlob(kept._p_oid, first))
        storage.pack(None, referencesf)
        assert not any(os.path.exists(f) for f in old_files)
        # A cold cache (or the shared directory) has only the current blob.
        cold = database.make(keep_history, label='main', blob_dir=blob_dir if shared else str(tmp_path / 'cold'),
                             shared_blob_dir=shared)
        try:
            with open(cold.loadBlob(kept._p_oid, current), 'rb') as f:
                assert f.read() == b'second'
            with pytest.raises(POSKeyError):
                cold.loadBlob(dropped._p_oid, dropped_serial)
            if keep_history:
                with pytest.raises(POSKeyError):
                    cold.loadBlob(kept._p_oid, first)
        finally:
            cold.close()
    finally:
        db.close()


# --- one pack at a time ------------------------------------------------------------------

def test_one_pack_at_a_time(database, keep_history):
    """RelStorage's pack lock: while zodbpack (or another pack) holds it, ours is refused
    with an error that says so, and runs once it is released."""
    storage = database.make(keep_history)
    if database.name == 'sqlite':
        # RelStorage's SQLite adapter has no pack lock; ours is pack.lock in the data-dir.
        holder = open(os.path.join(database.location(keep_history), 'pack.lock'), 'a')
        fcntl.flock(holder, fcntl.LOCK_EX)
        release = holder.close
    else:
        rs = database.make_relstorage(keep_history)
        conn, cursor = rs._adapter.connmanager.open_for_pack_lock()
        rs._adapter.locker.hold_pack_lock(cursor)

        def release():
            rs._adapter.locker.release_pack_lock(cursor)
            rs._adapter.connmanager.close(conn, cursor)
            rs.close()
    try:
        with pytest.raises(gorelstorage.GoRelStorageError, match='another pack is running'):
            storage.pack(None, referencesf)
    finally:
        release()
    storage.pack(None, referencesf)
    storage.close()


# --- writers during a pack ---------------------------------------------------------------

def _writer(db, name, stop, errors):
    try:
        grow_and_prune(db, name, stop.is_set)
    except Exception as e:  # reported by the test
        errors.append(e)


def test_pack_while_writers_commit(database, keep_history, tmp_path):
    """GoRelStorage and RelStorage writers commit while packs run one after the other;
    afterwards every object reachable from the root loads (no dangling reference), and the
    packs did remove garbage."""
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    stop_file = str(tmp_path / 'stop')
    relstorage_writer = subprocess.Popen(
        [sys.executable, os.path.join(HERE, 'pack_writer.py'), HERE, database.name,
         database.location(keep_history), '1' if keep_history else '0', stop_file])
    stop, errors = threading.Event(), []
    writers = [threading.Thread(target=_writer, args=(db, 'go%d' % i, stop, errors)) for i in range(2)]
    for w in writers:
        w.start()
    try:
        time.sleep(1)
        packer = database.make(keep_history)
        for _ in range(4):
            packer.pack(None, referencesf)
            time.sleep(0.2)
        packer.close()
    finally:
        stop.set()
        open(stop_file, 'w').close()
        for w in writers:
            w.join()
        assert relstorage_writer.wait(timeout=60) == 0
    try:
        assert not errors, errors
        check = database.make(keep_history)
        reachable = _walk(check)
        assert {'go0', 'go1', 'relstorage'} <= set(ZODB.DB(check).open().root())
        check.pack(None, referencesf)
        assert _walk(check) == reachable
        assert len(check) == len(reachable)
        check.close()
    finally:
        db.close()


def _pack_worker(database, keep_history, which):
    return [sys.executable, os.path.join(HERE, 'pack_worker.py'), HERE, database.name,
            database.location(keep_history), '1' if keep_history else '0', which]


# --- a pack killed and run again ---------------------------------------------------------

def _populate(db, objects, rounds):
    """objects nodes under root['tree'], rewritten rounds times, a tenth unlinked each round."""
    with db.transaction() as conn:
        conn.root()['tree'] = PersistentMapping()
    for r in range(rounds):
        with db.transaction() as conn:
            tree = conn.root()['tree']
            for i in range(objects):
                key = 'k%d' % i
                if key in tree and r % 2:
                    tree[key]['r'] = r
                else:
                    tree[key] = PersistentMapping(r=r, child=PersistentMapping(v=i))
            for i in range(0, objects, 10):
                tree.pop('k%d' % (i + r), None)


def test_pack_killed_then_run_again(database, keep_history):
    """SIGKILL at random moments of a pack, then a pack to the end: it finishes (no duplicate
    key), every reachable object loads with the state it had, and the garbage is gone."""
    storage = database.make(keep_history)
    db = ZODB.DB(storage)
    try:
        _populate(db, 1500, 4)
        before = {oid: storage.load(oid)[0] for oid in _walk(storage)}
        total = len(storage)
    finally:
        db.close()
    cmd = _pack_worker(database, keep_history, 'go')
    start = time.monotonic()
    subprocess.run(cmd + ['prepack'], check=True, timeout=600)
    prepack = time.monotonic() - start
    rnd = random.Random(7)
    for _ in range(4):
        proc = subprocess.Popen(cmd + ['pack'])
        time.sleep(rnd.uniform(0.05, max(0.1, 2 * prepack)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    subprocess.run(cmd + ['pack'], check=True, timeout=600)
    storage = database.make(keep_history)
    try:
        after = {oid: storage.load(oid)[0] for oid in _walk(storage)}
        assert after == before
        assert len(storage) == len(after) < total
    finally:
        storage.close()


# --- RelStorage's zodbpack and ours on one database --------------------------------------

def _garbage_round(db, key):
    """Adds root[key] with children, and unlinks the previous round's: returns the oids
    that are garbage now."""
    with db.transaction() as conn:
        root = conn.root()
        old = root.pop('round', None)
        root['round'] = PersistentMapping(key=key, kids=[PersistentMapping(i=i) for i in range(5)])
    if old is None:
        return set()
    return {old._p_oid} | {k._p_oid for k in old['kids']}


@pytest.mark.parametrize('order', ['ours-then-relstorage', 'relstorage-then-ours',
                                   'our-prepack-their-pack', 'their-prepack-our-pack'])
def test_packs_alternate_with_relstorage(database, keep_history, order):
    """Each pack leaves object_ref, object_refs_added and the pack tables as the other
    expects: RelStorage's pack works after ours, ours after RelStorage's, and a prepack by
    one is finished by the other (zodbpack --prepack, then --use-prepack-state). RelStorage
    runs in its own process."""
    storage = database.make(keep_history)
    relstorage = _pack_worker(database, keep_history, 'relstorage')

    def pack(who, what='pack'):
        if who == 'ours':
            storage.pack(None, referencesf, prepack_only=what == 'prepack', skip_prepack=what == 'reuse')
        else:
            subprocess.run(relstorage + [what], check=True, timeout=600)
            # A pack elsewhere leaves this process's cache as it was (no new transaction
            # tells it, as with RelStorage): the checks below read the database.
            storage.clear_cache()

    db = ZODB.DB(storage)
    try:
        _garbage_round(db, 'a')
        garbage = _garbage_round(db, 'b')
        first = order.split('-')[0]
        if 'then' in order:
            pack(first)
            assert not any(_loads(storage, oid) for oid in garbage)
            garbage = _garbage_round(db, 'c')
            pack('relstorage' if first == 'ours' else 'ours')
        else:
            pack('ours' if first == 'our' else 'relstorage', 'prepack')
            assert all(_loads(storage, oid) for oid in garbage)
            pack('ours' if first == 'their' else 'relstorage', 'reuse')
        assert not any(_loads(storage, oid) for oid in garbage)
        assert len(storage) == len(_walk(storage))
    finally:
        db.close()


# --- gorelstorage pack -------------------------------------------------------------------

def _cli(*args):
    return subprocess.run([sys.executable, '-m', 'gorelstorage.cli', 'pack'] + list(args),
                          capture_output=True, text=True, timeout=600)


def test_pack_command(tmp_path):
    """zodbpack's configuration file (several storages, GoRelStorage's section and
    ZODB's) and flags; exit status 0 only on success; errors in one line."""
    data_dir, fs = str(tmp_path / 'data'), str(tmp_path / 'Data.fs')
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(data_dir))
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        conn.root()['x'] = PersistentMapping()
    x = _oid_of(db, 'x')
    with db.transaction() as conn:
        del conn.root()['x']
    db.close()
    ZODB.DB(ZODB.FileStorage.FileStorage(fs)).close()
    config = tmp_path / 'pack.conf'
    config.write_text('<gorelstorage main>\n  <gosqlite3>\n    data-dir %s\n  </gosqlite3>\n</gorelstorage>\n'
                      '<filestorage fs>\n  path %s\n</filestorage>\n' % (data_dir, fs))

    done = _cli('--prepack', '-d', '-1', str(config))
    assert done.returncode == 0, done.stderr
    assert 'fs: not packed: --prepack' in done.stdout
    done = _cli('--use-prepack-state', str(config))
    assert done.returncode == 0, done.stderr
    assert 'main: packed to transaction' in done.stdout
    assert _cli('-d', '0', str(config)).stdout.splitlines()[-1] == 'fs: packed'
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(data_dir))
    assert not _loads(storage, x)
    storage.close()

    done = _cli('--check-refs-only', str(config))
    assert done.returncode == 0 and 'main: 0 broken reference(s)' in done.stdout, done.stdout + done.stderr

    missing = _cli(str(tmp_path / 'missing.conf'))
    assert missing.returncode == 1
    assert missing.stderr.startswith('gorelstorage pack: error: ') and missing.stderr.count('\n') == 1
    both = _cli('--prepack', '--use-prepack-state', str(config))
    assert both.returncode == 1 and 'exclude each other' in both.stderr
