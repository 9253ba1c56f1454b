"""The library loads lazily, refuses forked children, survives panics and releases the GIL."""
import os
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from ZODB.Connection import TransactionMetaData
from ZODB.utils import z64

import gorelstorage
from gorelstorage import GoRelStorage
from gorelstorage import SQLite3
from gorelstorage import _native


def _run_python(code):
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_import_does_not_load_the_library(tmp_path):
    result = _run_python("""
        import gorelstorage, gorelstorage._native as n
        print(n.is_loaded())
        s = gorelstorage.GoRelStorage(gorelstorage.SQLite3(%r))
        print(n.is_loaded())
        s.close()
    """ % str(tmp_path / 'd'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ['False', 'True']


def _wait_child(pid, limit=60):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail('the forked child hung')


def test_forked_child_gets_a_clear_error_and_never_hangs(tmp_path):
    storage = GoRelStorage(SQLite3(tmp_path / 'd'))
    try:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # child: must not run any Go code
            os.close(read_end)
            try:
                storage.load(z64)
                message = b'no error'
            except gorelstorage.ForkedProcessError as e:
                message = str(e).encode()
            except BaseException as e:  # pragma: no cover - reported to the parent
                message = repr(e).encode()
            os.write(write_end, message)
            os._exit(0)
        os.close(write_end)
        assert _wait_child(pid) == 0
        with os.fdopen(read_end, 'rb') as f:
            message = f.read().decode()
        assert 'forked child' in message
        assert 'gunicorn without --preload' in message
        assert 'lazy-apps' in message
        # The parent is unaffected.
        with pytest.raises(KeyError):
            storage.load(z64)
    finally:
        storage.close()


def test_fork_before_first_open_is_fine(tmp_path):
    result = _run_python("""
        import os, gorelstorage
        from ZODB.utils import z64
        pid = os.fork()
        if pid == 0:
            s = gorelstorage.GoRelStorage(gorelstorage.SQLite3(%r))
            try:
                s.load(z64)
            except KeyError:
                os._exit(7)
            os._exit(1)
        _, status = os.waitpid(pid, 0)
        print(os.waitstatus_to_exitcode(status))
    """ % str(tmp_path / 'd'))
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == '7'


@pytest.mark.parametrize('force_ctypes', ['0', '1'])
def test_the_c_module_and_the_ctypes_fallback_behave_alike(tmp_path, force_ctypes):
    """Calls go through gorelstorage._calls when it was built, else ctypes; both give
    the same results and the same exceptions."""
    env = dict(os.environ, GORELSTORAGE_CTYPES=force_ctypes)
    result = subprocess.run([sys.executable, '-c', textwrap.dedent("""
        import gorelstorage, gorelstorage._native as n
        from ZODB.Connection import TransactionMetaData
        from ZODB.POSException import ConflictError
        from ZODB.utils import p64, z64
        s = gorelstorage.GoRelStorage(gorelstorage.SQLite3(%r))
        t = TransactionMetaData(); s.tpc_begin(t); s.store(z64, None, b'root', '', t); s.tpc_vote(t)
        tid = s.tpc_finish(t)
        print(n.uses_ctypes(), s.load(z64) == (b'root', tid), s.load(z64, '') == (b'root', tid))
        try:
            s.load(p64(42))
        except KeyError as e:
            print('missing', e.args[0] == p64(42))
        t = TransactionMetaData(); s.tpc_begin(t); s.store(z64, p64(1), b'stale', '', t)
        try:
            s.tpc_vote(t)
        except ConflictError as e:
            print('conflict', e.oid == z64, e.serials == (tid, p64(1)))
        s.tpc_abort(t)
        s.close()
        try:
            s.load(z64)
        except gorelstorage.StorageClosedError:
            print('closed')
    """ % str(tmp_path / 'd'))], capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split('\n')[:4] == [
        '%s True True' % (force_ctypes == '1'), 'missing True', 'conflict True True', 'closed']


def test_a_go_panic_becomes_an_exception(tmp_path):
    storage = GoRelStorage(SQLite3(tmp_path / 'd'))  # make sure the library is loaded
    try:
        with pytest.raises(gorelstorage.InternalError, match='internal error'):
            _native.call('grs_test_panic')
        with pytest.raises(KeyError):
            storage.load(z64)  # and the library still works
    finally:
        storage.close()


def _hold_write_lock(tmp_path, commit_lock_timeout):
    """Return (holder, other, t1, t2): holder has voted (so holds the database
    write lock); other has begun t2 with one store and not voted yet."""
    holder = GoRelStorage(SQLite3(tmp_path / 'd'), commit_lock_timeout=commit_lock_timeout)
    other = holder.new_instance()
    t1 = TransactionMetaData()
    holder.tpc_begin(t1)
    holder.store(z64, None, b'one', '', t1)
    holder.tpc_vote(t1)
    t2 = TransactionMetaData()
    other.tpc_begin(t2)
    other.store(holder.new_oid(), None, b'two', '', t2)
    return holder, other, t1, t2


def test_a_blocked_call_releases_the_gil(tmp_path):
    holder, waiter, t1, t2 = _hold_write_lock(tmp_path, 30)
    try:
        outcome = []

        def vote():
            try:
                waiter.tpc_vote(t2)  # blocks in Go until the lock is released
                waiter.tpc_finish(t2)
                outcome.append('committed')
            except BaseException as e:  # pragma: no cover - reported below
                outcome.append(e)

        thread = threading.Thread(target=vote)
        thread.start()
        progress = 0
        deadline = time.monotonic() + 0.5
        while time.monotonic() < deadline:
            progress += 1  # runs only if the blocked call released the GIL
        still_blocked = thread.is_alive()
        holder.tpc_finish(t1)
        thread.join(60)
        assert still_blocked, 'the second vote should wait for the write lock'
        assert progress > 1000
        assert outcome == ['committed']
    finally:
        waiter.release()
        holder.close()


def test_lock_timeout_is_a_retryable_conflict(tmp_path):
    import transaction.interfaces
    holder, other, t1, t2 = _hold_write_lock(tmp_path, 1)
    try:
        with pytest.raises(gorelstorage.UnableToLockError) as info:
            other.tpc_vote(t2)
        assert isinstance(info.value, transaction.interfaces.TransientError)
        assert 'lock' in str(info.value)
        other.tpc_abort(t2)
        holder.tpc_finish(t1)
        assert holder.load(z64)[0] == b'one'
    finally:
        other.release()
        holder.close()
