"""The only module that knows GoRelStorage's C ABI.

It loads the Go library on first use (never at import: a Go runtime does not
survive fork), refuses calls from a forked child, turns error records into
ZODB exceptions and copies returned bytes once into Python objects. Calls go
through the C module gorelstorage._calls when it was built (a fraction of a
ctypes call's cost), else through ctypes; GORELSTORAGE_CTYPES=1 forces ctypes.
"""
import contextlib
import ctypes
import os
import struct
import threading

from transaction.interfaces import TransientError
from ZODB.POSException import ConflictError
from ZODB.POSException import POSKeyError
from ZODB.POSException import ReadConflictError
from ZODB.POSException import ReadOnlyError
from ZODB.POSException import StorageError
from ZODB.POSException import StorageTransactionError
from ZODB.POSException import UndoError
from ZODB.POSException import Unsupported

try:
    from . import _calls
except ImportError:  # built without a C compiler's Python headers
    _calls = None

ABI_VERSION = 3
LIBRARY_ENV = 'GORELSTORAGE_LIBRARY'
CTYPES_ENV = 'GORELSTORAGE_CTYPES'


class GoRelStorageError(StorageError):
    """The database failed, or the storage was misconfigured or misused."""


class ConfigurationError(GoRelStorageError, ValueError):
    """An option has a bad value or is not supported by this build."""


class StorageClosedError(GoRelStorageError):
    """The storage or instance was closed or released."""


class InternalError(GoRelStorageError):
    """A bug inside the engine was caught; the process is unharmed."""


class UnableToLockError(ConflictError):
    """A lock could not be taken within commit-lock-timeout. Retryable."""


class DisconnectedError(GoRelStorageError, TransientError):
    """The connection to the database was lost, or the server could not be reached,
    during a transaction; nothing of it was committed. Retryable: ``transaction``
    managers run the transaction again, and GoRelStorage reconnects."""


class CommitOutcomeUnknownError(GoRelStorageError):
    """The connection to the database was lost while the transaction's COMMIT was
    out, and no new connection could tell whether it landed. Not retryable: running
    the transaction again could apply it twice. ``tid`` (8 bytes) is the tid it
    committed under if it did; look for it in the database."""

    def __init__(self, message, tid):
        super().__init__(message)
        self.tid = tid


class ForkedProcessError(GoRelStorageError):
    """The library was loaded before this process was forked."""

    def __init__(self, parent, child):
        super().__init__(
            'GoRelStorage was loaded in process %d and is being used in its forked child %d. '
            'Go code cannot run in a child forked after it started. Open storages after the fork: '
            'run gunicorn without --preload (preload_app = False), uWSGI with lazy-apps = true, '
            'or multiprocessing with the "spawn" or "forkserver" start method.' % (parent, child))


class Result(ctypes.Structure):
    _fields_ = [
        ('kind', ctypes.c_int32),
        ('has_oid', ctypes.c_int32),
        ('oid', ctypes.c_uint64),
        ('serials', ctypes.c_uint64 * 2),
        ('message', ctypes.c_void_p),
        ('data', ctypes.c_void_p),
        ('len', ctypes.c_int64),
        ('v', ctypes.c_uint64 * 3),
    ]


_u64 = ctypes.c_uint64
_i64 = ctypes.c_int64
_i32 = ctypes.c_int32
_buf = ctypes.c_char_p
_res = ctypes.POINTER(Result)

# Argument types of every export, before the trailing result pointer.
_SIGNATURES = {
    'grs_open': (_buf, _i64),
    'grs_close': (_u64,),
    'grs_new_instance': (_u64,),
    'grs_release': (_u64,),
    'grs_new_oids': (_u64,),
    'grs_size': (_u64,),
    'grs_load': (_u64, _u64),
    'grs_load_serial': (_u64, _u64, _u64),
    'grs_load_before': (_u64, _u64, _u64),
    'grs_prefetch': (_u64, _buf, _i64),
    'grs_poll': (_u64,),
    'grs_sync': (_u64,),
    'grs_last_transaction': (_u64,),
    'grs_history': (_u64, _u64, _i64),
    'grs_transactions': (_u64, _u64, _u64, _i64, _i64, _i64),
    'grs_txn_records': (_u64, _u64),
    'grs_current_from': (_u64, _u64, _i64),
    'grs_tpc_begin': (_u64, _buf, _i64, _u64, _i32),
    'grs_store': (_u64, _u64, _u64, _buf, _i64),
    'grs_restore': (_u64, _u64, _buf, _i64),
    'grs_delete_object': (_u64, _u64, _u64),
    'grs_check_current': (_u64, _u64, _u64),
    'grs_undo': (_u64, _u64),
    'grs_vote': (_u64,),
    'grs_resolve': (_u64, _buf, _i64),
    'grs_finish_lock': (_u64,),
    'grs_finish_commit': (_u64,),
    'grs_abort': (_u64,),
    'grs_load_cached': (_u64, _u64),
    'grs_cache_stats': (_u64,),
    'grs_cache_clear': (_u64,),
    'grs_bench_floor': (_u64, _buf, _i64),
    'grs_profile_start': (_buf, _i64),
    'grs_profile_stop': (),
    'grs_test_panic': (),
}

# Exports that never wait (no database, no lock held by another call): called
# with the GIL held, as handing the GIL to another thread and back costs more
# than they do.
_HOLD_GIL = frozenset(['grs_load_cached', 'grs_store'])

_KIND_LETTERS = {_u64: 'u', _i64: 'i', _i32: 'w', _buf: 'b'}

_lock = threading.Lock()
_lib = None
_pid = None
_funcs = {}     # name: the ctypes function
_direct = {}    # name: (address, shape, hold_gil) for _calls.call
_load_pair = None  # (grs_load_cached, grs_load) addresses for _calls.load


def library_path():
    """Where the Go library is: $GORELSTORAGE_LIBRARY, else beside this module."""
    override = os.environ.get(LIBRARY_ENV)
    if override:
        return override
    return os.path.join(os.path.dirname(os.path.abspath(__file__)), 'libgorelstorage.so')


def is_loaded():
    return _lib is not None


def _load():
    global _lib, _pid
    with _lock:
        if _lib is not None:
            return
        path = library_path()
        if not os.path.exists(path):
            raise GoRelStorageError(
                'the GoRelStorage engine library is missing at %s; reinstall with "pip install ." '
                '(it needs Go and a C compiler) or set %s' % (path, LIBRARY_ENV))
        lib = ctypes.CDLL(path)  # CDLL releases the GIL during every call
        held = ctypes.PyDLL(path)  # the same library; PyDLL keeps the GIL
        lib.grs_abi_version.restype = ctypes.c_int32
        lib.grs_abi_version.argtypes = ()
        version = lib.grs_abi_version()
        if version != ABI_VERSION:
            raise GoRelStorageError('%s has ABI version %d, this package needs %d; reinstall GoRelStorage'
                                    % (path, version, ABI_VERSION))
        held.grs_free_result.restype = None
        held.grs_free_result.argtypes = (_res,)
        for name, args in _SIGNATURES.items():
            fn = getattr(held if name in _HOLD_GIL else lib, name)
            fn.restype = ctypes.c_int32
            fn.argtypes = args + (_res,)
            _funcs[name] = fn
        if _calls is not None and os.environ.get(CTYPES_ENV) != '1':
            global _load_pair
            _calls.bind(_exception, lambda: ForkedProcessError(_pid, os.getpid()))
            for name, args in _SIGNATURES.items():
                shape = _calls.SHAPES.index(''.join(_KIND_LETTERS[a] for a in args))
                _direct[name] = (ctypes.cast(_funcs[name], ctypes.c_void_p).value, shape, name in _HOLD_GIL)
            _load_pair = (_direct['grs_load_cached'][0], _direct['grs_load'][0])
        _pid = os.getpid()
        _lib = held


def uses_ctypes():
    """True when calls go through ctypes rather than gorelstorage._calls."""
    if _lib is None:
        _load()
    return not _direct


def _error(r):
    message = ctypes.string_at(r.message) if r.message else b''
    return _exception(r.kind, r.oid if r.has_oid else None, r.serials[0], r.serials[1], message)


def _exception(kind, oid, serial0, serial1, message):
    """The Python exception for an engine error record."""
    message = message.decode('utf-8', 'replace') or 'unknown error'
    oid = struct.pack('>Q', oid) if oid is not None else None
    serials = (struct.pack('>Q', serial0), struct.pack('>Q', serial1))
    if kind == 1:
        return POSKeyError(oid) if oid is not None else POSKeyError(message)
    if kind == 2:
        return ConflictError(message=message, oid=oid, serials=serials)
    if kind == 3:
        return ReadConflictError(message=message, oid=oid, serials=serials)
    if kind == 4:
        return StorageTransactionError(message)
    if kind == 5:
        return ReadOnlyError(message)
    if kind == 6:
        return UndoError(message, oid)
    if kind == 7:
        return Unsupported(message)
    if kind == 9:
        return ConfigurationError(message)
    if kind == 10:
        return UnableToLockError(message=message, oid=oid)
    if kind == 11:
        return StorageClosedError(message)
    if kind == 12:
        return InternalError(message)
    if kind == 13:
        return ValueError(message)
    if kind == 14:
        return DisconnectedError(message)
    if kind == 15:
        return CommitOutcomeUnknownError(message, serials[0])
    return GoRelStorageError(message)


def call(name, *args):
    """Call export ``name``; return (data bytes or None, v0, v1, v2)."""
    if _direct:
        return _calls.call(*_direct[name], *args)  # refuses a forked child itself
    if _lib is None:
        _load()
        if _direct:
            return _calls.call(*_direct[name], *args)
    elif os.getpid() != _pid:
        raise ForkedProcessError(_pid, os.getpid())
    r = Result()
    kind = _funcs[name](*args, ctypes.byref(r))
    try:
        if kind:
            raise _error(r)
        data = ctypes.string_at(r.data, r.len) if r.data else None
        return data, r.v[0], r.v[1], r.v[2]
    finally:
        if r.message or r.data:
            _lib.grs_free_result(ctypes.byref(r))


def load(instance, oid, hold=False):
    """ZODB's load on an instance: (state, tid bytes); oid is 8 bytes. A hit in the
    shared cache is answered without releasing the GIL or reaching the database; a
    miss releases the GIL while it reads from the database, unless ``hold`` (honoured
    by the C module; the ctypes fallback always releases it)."""
    if _load_pair is not None:
        return _calls.load(*_load_pair, instance, oid, hold)
    o = struct.unpack('>Q', oid)[0] if isinstance(oid, bytes) and len(oid) == 8 else None
    if o is None:
        raise TypeError('oid must be 8 bytes, not %r' % (oid,))
    data, tid, hit, _ = call('grs_load_cached', instance, o)
    if not hit:
        data, tid, _, _ = call('grs_load', instance, o)
    return data or b'', struct.pack('>Q', tid)


@contextlib.contextmanager
def go_cpu_profile(path):
    """Write a CPU profile of the Go engine (every thread of the process) to ``path`` while the
    block runs; ``go tool pprof`` reads it."""
    p = os.fsencode(path)
    call('grs_profile_start', p, len(p))
    try:
        yield
    finally:
        call('grs_profile_stop')


# The encoding of batched arguments and results (capi/codec.go).

_NONE = 0xFFFFFFFFFFFFFFFF
_U64 = struct.Struct('<Q')


def encode(*fields):
    """Encode ints as u64 and bytes/None as length-prefixed strings."""
    out = []
    for f in fields:
        if f is None:
            out.append(_U64.pack(_NONE))
        elif isinstance(f, int):
            out.append(_U64.pack(f))
        else:
            out.append(_U64.pack(len(f)))
            out.append(f)
    return b''.join(out)


class Reader:
    """Reads what capi's encoder wrote."""

    __slots__ = ('data', 'pos')

    def __init__(self, data):
        self.data = data or b''
        self.pos = 0

    def more(self):
        return self.pos < len(self.data)

    def u64(self):
        v, = _U64.unpack_from(self.data, self.pos)
        self.pos += 8
        return v

    def bytes(self):
        n = self.u64()
        if n == _NONE:
            return None
        b = self.data[self.pos:self.pos + n]
        self.pos += n
        return b


def u64_array(values):
    """Pack ints as the uint64 array an export takes."""
    return struct.pack('<%dQ' % len(values), *values)


def u64_list(data):
    if not data:
        return []
    return list(struct.unpack('<%dQ' % (len(data) // 8), data))
