"""The only module that knows GoRelStorage's C ABI.

It loads the Go library on first use (never at import: a Go runtime does not
survive fork), refuses calls from a forked child, turns error records into
ZODB exceptions and copies returned bytes once into Python objects. Calls go
through the C module gorelstorage._calls when it was built (a fraction of a
ctypes call's cost), else through ctypes; GORELSTORAGE_CTYPES=1 forces ctypes.
"""
import collections
import contextlib
import ctypes
import functools
import json
import os
import struct
import sys
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

ABI_VERSION = 8
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


class BlobNotFoundError(POSKeyError):
    """The database (or the shared blob directory) has no blob for this object and
    transaction. Its message names both."""

    def __str__(self):
        return self.args[1] if len(self.args) > 1 else POSKeyError.__str__(self)


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
    'grs_store_many': (_u64, _buf, _i64),
    'grs_restore': (_u64, _u64, _buf, _i64),
    'grs_delete_object': (_u64, _u64, _u64),
    'grs_check_current_many': (_u64, _buf, _i64),
    'grs_undo': (_u64, _u64),
    'grs_vote': (_u64,),
    'grs_resolve': (_u64, _buf, _i64),
    'grs_finish_lock': (_u64,),
    'grs_finish_commit': (_u64,),
    'grs_abort': (_u64,),
    'grs_store_blob': (_u64, _u64, _u64, _buf, _i64, _buf, _i64),
    'grs_restore_blob': (_u64, _u64, _buf, _i64, _buf, _i64),
    'grs_load_blob': (_u64, _u64, _u64),
    'grs_load_blob_cached': (_u64, _u64, _u64),
    'grs_blob_wait_pruning': (_u64,),
    'grs_blob_prune': (_buf, _i64, _i64),
    'grs_blob_lookup': (_u64, _buf, _i64, _u64, _i32),
    'grs_load_cached': (_u64, _u64),
    'grs_cache_stats': (_u64,),
    'grs_cache_clear': (_u64,),
    'grs_bench_floor': (_u64, _buf, _i64),
    'grs_profile_start': (_buf, _i64),
    'grs_profile_stop': (),
    'grs_test_panic': (),
    'grs_references': (_buf, _i64),
    'grs_pack': (_u64, _buf, _i64),
    'grs_pack_progress': (_u64,),
    'grs_zap_all': (_u64,),
    'grs_restore_batch': (_u64, _buf, _i64),
}

# Exports that never wait (no database, no lock held by another call): called
# with the GIL held, as handing the GIL to another thread and back costs more
# than they do.
_HOLD_GIL = frozenset(['grs_load_cached', 'grs_store_many', 'grs_check_current_many', 'grs_load_blob_cached'])

_KIND_LETTERS = {_u64: 'u', _i64: 'i', _i32: 'w', _buf: 'b'}

_lock = threading.Lock()
_lib = None
_pid = None
_funcs = {}     # name: the ctypes function
_direct = {}    # name: (address, shape, hold_gil) for _calls.call
_load_pair = None  # (grs_load_cached, grs_load) addresses for _calls.load
_cooperative = None  # under gevent: f(function, args) running it in gevent's thread pool


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
        global _cooperative, call
        _cooperative = _gevent_dispatcher()
        if _cooperative is not None:
            call = _cooperative_call
        _pid = os.getpid()
        _lib = held


def _gevent_dispatcher():
    """When gevent has patched the standard library (before the first storage opens), a
    function that runs engine calls in threads of a gevent ThreadPool (up to
    $GORELSTORAGE_GEVENT_THREADS, 256 by default: a call waiting for a lock that another
    greenlet's next call releases must not wait for a thread); else None."""
    monkey = sys.modules.get('gevent.monkey')
    if monkey is None or not monkey.is_module_patched('socket'):
        return None
    import gevent
    from gevent.threadpool import ThreadPool
    try:
        from gevent._hub_local import get_hub_if_exists
    except ImportError:  # older gevent
        from gevent.hub import _get_hub as get_hub_if_exists
    size = int(os.environ.get('GORELSTORAGE_GEVENT_THREADS', '256'))
    pools = {}

    def dispatch(function, args):
        hub = get_hub_if_exists()
        if hub is None or gevent.getcurrent() is hub:
            return function(*args)  # a thread without a hub (a pool's own), or the hub itself
        pool = pools.get(hub)
        if pool is None:
            pool = pools[hub] = ThreadPool(size, hub=hub)
        return pool.apply(function, args)
    return dispatch


def uses_ctypes():
    """True when calls go through ctypes rather than gorelstorage._calls."""
    if _lib is None:
        _load()
    return not _direct


def _error(r):
    message = ctypes.string_at(r.message) if r.message else b''
    return _exception(r.kind, r.oid if r.has_oid else None, r.serials[0], r.serials[1], message)


# The engine's error kinds (engine/errors.go, KindPOSKey = 1 ...), by name; a test
# checks that both lists agree.
KINDS = {
    'POSKey': 1, 'Conflict': 2, 'ReadConflict': 3, 'Transaction': 4, 'ReadOnly': 5, 'Undo': 6,
    'Unsupported': 7, 'Storage': 8, 'Config': 9, 'LockTimeout': 10, 'Closed': 11, 'Internal': 12,
    'InvalidArgument': 13, 'Disconnected': 14, 'CommitUnknown': 15,
}
_KIND_NAMES = {v: k for k, v in KINDS.items()}

# What each kind raises: f(message, oid or None, (serial0, serial1)).
_RAISES = {
    'POSKey': lambda m, oid, s: _poskey(m, oid),
    'Conflict': lambda m, oid, s: ConflictError(message=m, oid=oid, serials=s),
    'ReadConflict': lambda m, oid, s: ReadConflictError(message=m, oid=oid, serials=s),
    'Transaction': lambda m, oid, s: StorageTransactionError(m),
    'ReadOnly': lambda m, oid, s: ReadOnlyError(m),
    'Undo': lambda m, oid, s: UndoError(m, oid),
    'Unsupported': lambda m, oid, s: Unsupported(m),
    'Storage': lambda m, oid, s: GoRelStorageError(m),
    'Config': lambda m, oid, s: ConfigurationError(m),
    'LockTimeout': lambda m, oid, s: UnableToLockError(message=m, oid=oid),
    'Closed': lambda m, oid, s: StorageClosedError(m),
    'Internal': lambda m, oid, s: InternalError(m),
    'InvalidArgument': lambda m, oid, s: ValueError(m),
    'Disconnected': lambda m, oid, s: DisconnectedError(m),
    'CommitUnknown': lambda m, oid, s: CommitOutcomeUnknownError(m, s[0]),
}


def _poskey(message, oid):
    """ZODB's POSKeyError(oid), carrying the engine's message as .message."""
    e = POSKeyError(oid) if oid is not None else POSKeyError(message)
    e.message = message
    return e


def _exception(kind, oid, serial0, serial1, message):
    """The Python exception for an engine error record."""
    message = message.decode('utf-8', 'replace') or 'unknown error'
    oid = struct.pack('>Q', oid) if oid is not None else None
    serials = (struct.pack('>Q', serial0), struct.pack('>Q', serial1))
    raises = _RAISES.get(_KIND_NAMES.get(kind), _RAISES['Storage'])
    return raises(message, oid, serials)


def _cooperative_call(name, *args):
    """call under gevent: a call that may wait runs in a thread of gevent's pool, and the
    event loop goes on meanwhile."""
    if name in _HOLD_GIL:
        return _call(name, *args)
    return _cooperative(_call, (name,) + args)


def _call(name, *args):
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


# What every export goes through; under gevent, _load makes it _cooperative_call.
call = _call


def load(instance, oid, hold=False):
    """ZODB's load on an instance: (state, tid bytes); oid is 8 bytes. A hit in the
    shared cache is answered without releasing the GIL or reaching the database; a
    miss releases the GIL while it reads from the database, unless ``hold`` (honoured
    by the C module; the ctypes fallback always releases it)."""
    if _load_pair is not None and _cooperative is None:
        return _calls.load(*_load_pair, instance, hold, oid)
    o = struct.unpack('>Q', oid)[0] if isinstance(oid, bytes) and len(oid) == 8 else None
    if o is None:
        raise TypeError('oid must be 8 bytes, not %r' % (oid,))
    data, tid, hit, _ = call('grs_load_cached', instance, o)
    if not hit:
        data, tid, _, _ = call('grs_load', instance, o)
    return data or b'', struct.pack('>Q', tid)


def loader(instance, hold=False):
    """``load(oid, version='')`` bound to an instance, as :func:`load`: the C module's own
    function where it is in use (a cache hit then runs no Python code), else a function
    calling :func:`load`. A released instance's loader raises StorageClosedError."""
    if _load_pair is not None and _cooperative is None:
        return functools.partial(_calls.load, *_load_pair, instance, bool(hold))
    return lambda oid, version='': load(instance, oid, hold)


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


# The records of the C ABI (capi/codec.go lists them), decoded into named tuples.
# Little-endian u64s, byte strings as a u64 length (all ones for None) then the bytes.

_NONE = 0xFFFFFFFFFFFFFFFF
_U64 = struct.Struct('<Q')
_PAIR = struct.Struct('<QQ')
_LEN = struct.Struct('<Q').pack

Opened = collections.namedtuple('Opened', 'name sort_key warnings')
Txn = collections.namedtuple('Txn', 'tid packed user description extension')
HistoryEntry = collections.namedtuple('HistoryEntry', 'txn size')
Revision = collections.namedtuple('Revision', 'oid tid state')
Conflict = collections.namedtuple('Conflict', 'oid committed_tid old_tid new_state committed_state undo')


def _encode(*fields):
    """Ints as u64, bytes and None as byte strings."""
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


class _Reader:
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

    def txn(self):
        return Txn(self.u64(), bool(self.u64()), self.bytes() or b'', self.bytes() or b'', self.bytes() or b'')

    def each(self, record):
        out = []
        while self.more():
            out.append(record())
        return out


def _u64_array(values):
    return struct.pack('<%dQ' % len(values), *values)


def _oids(data):
    if not data:
        return []
    return list(struct.unpack('<%dQ' % (len(data) // 8), data))


def _warnings(r):
    return [w.decode('utf-8', 'replace') for w in r.each(r.bytes)]


# The exports, as Python functions: handles and ints in, values and named records out.

def open_storage(config):
    """Open a storage from its JSON configuration (bytes): (handle, Opened)."""
    data, handle, _, _ = call('grs_open', config, len(config))
    r = _Reader(data)
    name, sort_key = r.bytes().decode('utf-8'), r.bytes().decode('utf-8')
    return handle, Opened(name, sort_key, _warnings(r))


def close_storage(handle):
    """Close a storage and every instance of it: its last warnings."""
    return _warnings(_Reader(call('grs_close', handle)[0]))


def new_instance(handle):
    return call('grs_new_instance', handle)[1]


def release(instance):
    call('grs_release', instance)


def new_oids(handle):
    """Every OID the storage holds, ascending (allocating when it holds none)."""
    return _oids(call('grs_new_oids', handle)[0])


def size(handle):
    """(objects, bytes)."""
    _, objects, nbytes, _ = call('grs_size', handle)
    return objects, nbytes


def cache_stats(handle):
    return json.loads(call('grs_cache_stats', handle)[0] or b'{}')


def cache_clear(handle):
    call('grs_cache_clear', handle)


def zap_all(handle):
    call('grs_zap_all', handle)


def bench_floor(handle, oids):
    """(single, batched) nanoseconds per object through the Go driver alone."""
    _, single, batched, _ = call('grs_bench_floor', handle, _u64_array(oids), len(oids))
    return single, batched


def poll(instance):
    """The oids changed since the last poll, or None: invalidate everything."""
    data, everything, _, _ = call('grs_poll', instance)
    return None if everything else _oids(data)


def sync(instance):
    call('grs_sync', instance)


def last_transaction(instance):
    return call('grs_last_transaction', instance)[1]


def load_serial(instance, oid, tid):
    return call('grs_load_serial', instance, oid, tid)[0]


def load_before(instance, oid, tid):
    """(state, start tid, end tid or 0), or None when oid did not exist before tid."""
    data, start, end, found = call('grs_load_before', instance, oid, tid)
    return (data, start, end) if found else None


def prefetch(instance, oids):
    if oids:
        call('grs_prefetch', instance, _u64_array(oids), len(oids))


def history(instance, oid, limit):
    r = _Reader(call('grs_history', instance, oid, limit)[0])
    return r.each(lambda: HistoryEntry(r.txn(), r.u64()))


def transactions(instance, start, stop, newest_first, skip_packed, offset, limit):
    flags = (1 if newest_first else 0) | (2 if skip_packed else 0)
    r = _Reader(call('grs_transactions', instance, start, stop, flags, offset, limit)[0])
    return r.each(r.txn)


def _revisions(data):
    r = _Reader(data)
    return r.each(lambda: Revision(r.u64(), r.u64(), r.bytes()))


def txn_records(instance, tid):
    return _revisions(call('grs_txn_records', instance, tid)[0])


def current_from(instance, start, limit):
    return _revisions(call('grs_current_from', instance, start, limit)[0])


def tpc_begin(instance, user, description, extension, restore_tid, packed):
    meta = _encode(user, description, extension)
    call('grs_tpc_begin', instance, meta, len(meta), restore_tid, 1 if packed else 0)


def store_many(instance, stores):
    """store() for every (oid, serial, data) of a list, in order, in one call: the oid and
    serial as ZODB spells them (8 bytes), data bytes."""
    parts = []
    for oid, serial, data in stores:
        parts += (oid, serial, _LEN(len(data)), data)
    buf = b''.join(parts)
    call('grs_store_many', instance, buf, len(buf))


def restore(instance, oid, data):
    """data None records an undone creation."""
    call('grs_restore', instance, oid, data, -1 if data is None else len(data))


def delete_object(instance, oid, serial):
    call('grs_delete_object', instance, oid, serial)


def check_current_many(instance, pairs):
    """checkCurrentSerialInTransaction for every (oid, serial) of a dict, in one call."""
    buf = b''.join([_PAIR.pack(o, s) for o, s in pairs.items()])
    call('grs_check_current_many', instance, buf, len(buf))


def pack(handle, config):
    """Pack with the JSON-encoded options; the JSON-encoded result."""
    return call('grs_pack', handle, config, len(config))[0]


def pack_progress(handle):
    """The running pack's progress as a dict, None when no pack runs."""
    data, running, _, _ = call('grs_pack_progress', handle)
    return json.loads(data) if running else None


def undo(instance, tid):
    return _oids(call('grs_undo', instance, tid)[0])


def vote(instance):
    """(the conflicts to resolve (then call resolve), or []; seconds the object locks took)."""
    data, count, lock_ns, _ = call('grs_vote', instance)
    if not count:
        return [], lock_ns / 1e9
    r = _Reader(data)
    return r.each(lambda: Conflict(r.u64(), r.u64(), r.u64(), r.bytes(), r.bytes(), bool(r.u64()))), lock_ns / 1e9


def resolve(instance, resolutions):
    """resolutions: (oid, committed tid, state) for every conflict vote returned."""
    buf = b''.join(_encode(oid, committed, state) for oid, committed, state in resolutions)
    call('grs_resolve', instance, buf, len(buf))


def restore_batch(instance, txns):
    """Commit whole transactions under their tids: txns are (tid, packed, user, description,
    extension, [(oid, data or None)]), tids ascending."""
    parts = []
    for tid, packed, user, description, extension, records in txns:
        parts.append(_encode(tid, 1 if packed else 0, user, description, extension, len(records)))
        parts.extend(_encode(oid, data) for oid, data in records)
    buf = b''.join(parts)
    call('grs_restore_batch', instance, buf, len(buf))


def finish_lock(instance):
    """(the transaction's tid, seconds the commit lock took)."""
    _, tid, lock_ns, _ = call('grs_finish_lock', instance)
    return tid, lock_ns / 1e9


def finish_commit(instance):
    call('grs_finish_commit', instance)


def abort(instance):
    call('grs_abort', instance)


def store_blob(instance, oid, serial, data, path):
    """store with the blob file at path (bytes), which the engine takes over."""
    call('grs_store_blob', instance, oid, serial, data, len(data), path, len(path))


def restore_blob(instance, oid, data, path):
    call('grs_restore_blob', instance, oid, data, len(data), path, len(path))


def load_blob(instance, oid, tid):
    """The path (str) of oid's blob committed by tid, downloaded into the cache if needed.
    A file already on disk is answered without releasing the GIL."""
    data, found, _, _ = call('grs_load_blob_cached', instance, oid, tid)
    if found:
        return os.fsdecode(data)
    try:
        data = call('grs_load_blob', instance, oid, tid)[0]
    except POSKeyError as e:
        raise BlobNotFoundError(e.args[0] if e.args else None, getattr(e, 'message', '')) from None
    return os.fsdecode(data)


def blob_wait_pruning(handle):
    call('grs_blob_wait_pruning', handle)


def blob_prune(path, target):
    """Prune the blob cache at path to target bytes in this process: (locked by another, bytes left, removed)."""
    p = os.fsencode(path)
    _, locked, left, removed = call('grs_blob_prune', p, len(p), target)
    return bool(locked), left, removed


def blob_lookup(blob_dir, oid, tid):
    """The path of oid's blob of tid if the blob directory holds it (no storage needed), or None."""
    d = os.fsencode(blob_dir)
    data, found, _, _ = call('grs_blob_lookup', oid, d, len(d), tid, 0)
    return os.fsdecode(data) if found else None


def references(record):
    """The engine's reading of a record's persistent references (ZODB's referencesf):
    a list of bytes; ValueError for a record it cannot read."""
    r = _Reader(call('grs_references', record, len(record))[0])
    return r.each(r.bytes)
