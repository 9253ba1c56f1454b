"""GoRelStorage: the ZODB storage class. ZODB glue only: the work is in Go."""
import base64
import collections
import fcntl
import json
import logging
import os
import threading
import time
import uuid
import weakref

from persistent.TimeStamp import TimeStamp
from zope.interface import alsoProvides
from zope.interface import implementer
from ZODB import POSException
from ZODB.BaseStorage import DataRecord
from ZODB.BaseStorage import TransactionRecord
from ZODB.blob import BlobFile
from ZODB.blob import is_blob_record
from ZODB.blob import rename_or_copy_blob
from ZODB.ConflictResolution import ConflictResolvingStorage
from ZODB.interfaces import IBlobStorage
from ZODB.interfaces import IBlobStorageRestoreable
from ZODB.interfaces import IExternalGC
from ZODB.interfaces import IMultiCommitStorage
from ZODB.interfaces import IMVCCAfterCompletionStorage
from ZODB.interfaces import IMVCCPrefetchStorage
from ZODB.interfaces import IMVCCStorage
from ZODB.interfaces import IStorageCurrentRecordIteration
from ZODB.interfaces import IStorageIteration
from ZODB.interfaces import IStorageRestoreable
from ZODB.interfaces import IStorageUndoable
from ZODB.interfaces import ReadVerifyingStorage
from ZODB.UndoLogCompatible import UndoLogCompatible
from ZODB.utils import p64
from ZODB.utils import u64
from zodbpickle.pickle import loads

from . import _native
from . import metrics
from .copying import Copier
from .options import Options

_MAX_TID = 0x7FFFFFFFFFFFFFFF
_ITERNEXT_PAGE = 1000
logger = logging.getLogger(__name__)


def _oid_int(oid, what='oid'):
    if not isinstance(oid, bytes) or len(oid) != 8:
        raise TypeError('%s must be 8 bytes, not %r' % (what, oid))
    return u64(oid)


def _serial_int(serial):
    if serial is None:
        return 0
    if isinstance(serial, str):  # ZODB's blob tests pass '\0' * 8
        serial = serial.encode('latin-1')
    return _oid_int(serial, 'serial')


def _extension(ext_bytes):
    return loads(ext_bytes) if ext_bytes else {}


def _txn_info(tid, user, description, extension):
    """The dict history() and undoLog() entries share: extension keys, then time and metadata."""
    info = dict(_extension(extension))
    info.update(time=TimeStamp(p64(tid)).timeTime(), user_name=user, description=description)
    return info


class _Database:
    """What all instances of one opened database share."""

    def __init__(self, adapter, options):
        config = options.engine_dict()
        config['adapter'] = adapter.engine_name
        config['adapter_options'] = adapter.engine_dict()
        # RelStorage's switch for a ZEO cache trace file in cache-local-dir.
        config['cache_trace'] = os.environ.get('ZEO_CACHE_TRACE', '')
        handle, opened = _native.open_storage(json.dumps(config).encode('utf-8'))
        self.handle = handle
        self.name = opened.name
        self.sort_key = opened.sort_key
        _log_warnings(opened.warnings)
        self.adapter = adapter
        self.options = options
        self.reads_in_process = getattr(adapter, 'reads_in_process', False)
        self.blob_temp_dir = os.path.join(config['blob_dir'], 'tmp') if config['blob_dir'] else None
        self.closed = False
        self._oids = []  # OIDs the engine handed over, 8-byte strings, the next one last
        self._oid_lock = threading.Lock()
        # Closed when collected without close(): every connection it opened goes back.
        self._finalizer = weakref.finalize(self, _release_quietly, _native.close_storage, handle)
        self._finalizer.atexit = False

    def new_oid(self):
        # list.pop is atomic: the OIDs in hand need no lock. Threads that took turns on the
        # lock for each one (two threads allocating at once, through the GIL's hand-overs)
        # waited 10-23 us a call instead of 1-1.5.
        try:
            return self._oids.pop()
        except IndexError:  # none left, or the storage is closed
            pass
        with self._oid_lock:
            if self.closed:
                raise _native.StorageClosedError('the storage is closed')
            if not self._oids:
                self._oids = [p64(o) for o in reversed(_native.new_oids(self.handle))]
            return self._oids.pop()

    def zap_all(self):
        """Empty the database; the OIDs handed over in advance are forgotten (they start again)."""
        with self._oid_lock:
            if self.closed:
                raise _native.StorageClosedError('the storage is closed')
            self._oids = []
            _native.zap_all(self.handle)

    def close(self):
        if not self.closed:
            self.closed = True
            self._finalizer.detach()
            self._oids = []
            _log_warnings(_native.close_storage(self.handle))


# The transaction _restore_batch holds the instance with.
_RESTORING = object()


def _txn_meta(transaction):
    """(user, description, extension) of a transaction (or a transaction record) as bytes."""
    ext = getattr(transaction, 'extension_bytes', None)
    if ext is None:
        from ZODB.Connection import TransactionMetaData
        ext = TransactionMetaData(extension=getattr(transaction, 'extension', None)).extension_bytes
    return _as_bytes(transaction.user), _as_bytes(transaction.description), ext


def _release_quietly(release, handle):
    """A finalizer's call: release an engine handle whose Python object was collected
    without being closed. It may run on any thread, or in a forked child; it never raises."""
    try:
        release(handle)
    except Exception as e:  # the handle is gone already, or this is a forked child
        logger.debug('%s of a collected handle: %s', release.__name__, e)


def _log_warnings(warnings):
    for w in warnings:
        logger.warning('%s', w)


class _CacheView:
    """``storage._cache``: the process-wide pickle cache under the names RelStorage's storage
    cache answers to."""
    __slots__ = ('_storage',)

    def __init__(self, storage):
        self._storage = storage

    def clear(self, load_persistent=True):
        """Empty the cache (``load_persistent`` is RelStorage's, about its cache file: the
        cache file here is read only when a storage opens)."""
        self._storage.clear_cache()

    def stats(self):
        s = self._storage.cache_stats()
        looked = s['hits'] + s['misses']
        return {'hits': s['hits'], 'misses': s['misses'], 'sets': s['stores'],
                'ratio': s['hits'] / looked if looked else 0.0}

    def __len__(self):
        return self._storage.cache_stats()['entries']


@implementer(IMVCCStorage, IMVCCAfterCompletionStorage, IMVCCPrefetchStorage, IMultiCommitStorage,
             IStorageRestoreable, IStorageIteration, IStorageCurrentRecordIteration, ReadVerifyingStorage,
             IExternalGC)
class GoRelStorage(UndoLogCompatible, ConflictResolvingStorage):
    """A ZODB storage keeping pickles in a relational database, RelStorage-compatible.

    ``GoRelStorage(SQLite3('/path/to/data-dir'), keep_history=False)``; options
    take RelStorage's names. Each ZODB Connection gets its own instance from
    :meth:`new_instance`.
    """

    def __init__(self, adapter, options=None, _database=None, **kwargs):
        if _database is None:
            if options is None:
                options = Options(**kwargs)
            elif kwargs:
                options = options.copy(**kwargs)
            if not hasattr(adapter, 'engine_dict'):
                raise TypeError('adapter must be a database description such as gorelstorage.SQLite3, not %r'
                                % (adapter,))
            _database = _Database(adapter, options)
            self._is_base = True
        else:
            self._is_base = False
        self._db = _database
        self._options = _database.options
        self._instance = None
        try:
            self._instance = _native.new_instance(_database.handle)
        except BaseException:
            if self._is_base:
                _database.close()
            raise
        # A ZODB Connection dropped without close() (``with db.transaction()`` when the
        # commit raises) gives its database connections back when it is collected.
        self._finalizer = weakref.finalize(self, _release_quietly, _native.release, self._instance)
        self._finalizer.atexit = False
        # ZODB's load, bound to the instance (see load below): the engine serializes the
        # instance's calls itself, and a stale handle is refused there.
        self.load = _native.loader(self._instance, _database.reads_in_process)
        self._lock = threading.RLock()          # one native call at a time on this instance
        self._tpc_cond = threading.Condition()  # one transaction at a time
        self._transaction = None
        self._undone_oids = []
        self._read_current = {}  # oid -> serial, checkCurrentSerialInTransaction until the vote
        # (oid, serial, data) of store() calls not yet sent to the engine; None outside
        # tpc_begin .. tpc_vote, where a store is refused
        self._stores = None
        # afterCompletion was called and the poll ZODB makes right after it is due:
        # that poll's errors must not come out of a commit that succeeded.
        self._completing = False
        if self._options.keep_history:
            alsoProvides(self, IStorageUndoable)
        if self._options.blob_dir:
            alsoProvides(self, IBlobStorage, IBlobStorageRestoreable)
        self._voted_at = None  # when tpc_vote returned: the time to tpc_finish is reported
        self._iternext = None  # record_iternext's page
        try:
            self._metrics = metrics.for_storage(self, self._db.adapter.engine_name, self._options.keep_history)
        except BaseException:
            self.close()  # a storage that failed to open holds no connection
            raise

    # --- identity -------------------------------------------------------

    def __repr__(self):
        return '<%s %s at %#x>' % (type(self).__name__, self._db.name, id(self))

    def getName(self):
        return self._db.name

    def sortKey(self):
        return self._db.sort_key

    def isReadOnly(self):
        return self._options.read_only

    def supportsUndo(self):
        return self._options.keep_history

    def getSize(self):
        return self._call_db(_native.size)[1]

    def __len__(self):
        return self._call_db(_native.size)[0]

    def _call_db(self, export, *args):
        """export(the storage's handle, *args)."""
        if self._db.closed:
            raise _native.StorageClosedError('the storage is closed')
        return export(self._db.handle, *args)

    def _call(self, export, *args):
        """export(this instance's handle, *args), one call at a time."""
        if self._instance is None:
            raise _native.StorageClosedError('the storage instance is released or closed')
        with self._lock:
            return export(self._instance, *args)

    # --- instances ------------------------------------------------------

    def new_instance(self):
        return type(self)(self._db.adapter, _database=self._db)

    def release(self):
        inst, self._instance = self._instance, None
        self._finalizer.detach()
        if inst is not None:
            with self._lock:  # after the storage's close too: the handle is forgotten
                _native.release(inst)

    def close(self):
        self.release()
        if self._is_base:
            self._db.close()

    def registerDB(self, wrapper):
        ConflictResolvingStorage.registerDB(self, wrapper)

    # --- MVCC -----------------------------------------------------------

    def poll_invalidations(self):
        completing, self._completing = self._completing, False
        try:
            oids = self._call(_native.poll)
        except Exception as e:
            if not completing:
                raise
            # ZODB polls inside transaction.commit() and abort(), after the transaction
            # ended: an error here would make a transaction that committed look failed
            # (and be retried). It comes out of the next poll, at the next transaction's
            # start, if it lasts; until then ZODB's cache is emptied, as nothing tells
            # what changed.
            logger.warning('polling after the end of a transaction failed; the next transaction '
                           'polls again: %s', e)
            return None
        if self._metrics is not None:
            self._metrics.cache(self._db, self._call_db(_native.cache_stats))
        return None if oids is None else [p64(o) for o in oids]

    def sync(self, force=True):
        # ZODB's poll right after afterCompletion comes with sync(False); a
        # transaction's start syncs with True.
        self._completing = self._completing and not force
        self._call(_native.sync)

    def afterCompletion(self):
        self._call(_native.sync)
        self._completing = True

    def lastTransaction(self):
        return p64(self._call(_native.last_transaction))

    # --- loading --------------------------------------------------------

    def load(self, oid, version=''):
        """(state, tid) of oid in this instance's snapshot. Each instance hides this method
        behind ``_native.loader``'s function (``self.load``): a storage-cache hit is
        then one call into C and Go, with no Python frame and no lock of this class (the
        engine's instance serializes its own calls). tpc_finish uncovers this method while it
        runs: a load from another thread then waits for the commit to be visible."""
        with self._lock:
            if self._instance is None:
                raise _native.StorageClosedError('the storage instance is released or closed')
            return _native.load(self._instance, oid, self._db.reads_in_process)

    def getTid(self, oid):
        return self.load(oid)[1]

    def loadSerial(self, oid, serial):
        return self._call(_native.load_serial, _oid_int(oid), _oid_int(serial, 'serial')) or b''

    def loadBefore(self, oid, tid):
        found = self._call(_native.load_before, _oid_int(oid), _oid_int(tid, 'tid'))
        if found is None:
            return None
        data, start, end = found
        return data or b'', p64(start), (p64(end) if end else None)

    def prefetch(self, oids):
        self._call(_native.prefetch, [_oid_int(o) for o in oids])

    # --- the shared cache ---------------------------------------------------

    def cache_stats(self):
        """The process-wide pickle cache's statistics, shared by every instance of this database:
        ``hits``, ``misses`` (loads it could not serve), ``stores``, ``evictions``, ``entries``,
        ``bytes`` (what the entries take, with their overhead), ``limit`` (bytes, from
        cache-local-mb), ``delta_oids`` and ``delta_tids`` (what the MVCC index holds)."""
        return self._call_db(_native.cache_stats)

    def clear_cache(self):
        """Empty the process-wide pickle cache: the loads that follow reach the database (for a
        truly cold measurement). ZODB's own per-connection object caches are not touched."""
        self._call_db(_native.cache_clear)

    @property
    def _cache(self):
        """The shared cache as RelStorage's tools reach it (``storage._cache``): ``clear()``
        empties it (zodbshootout does so before its cold reads), ``stats()`` reports hits,
        misses, ratio and sets."""
        return _CacheView(self)

    def zap_all(self, reset_oid=True, slow=False):
        """Empty the database, as RelStorage's ``zap_all`` (``zodbconvert --clear`` calls it):
        every object, transaction, blob and pack row, the OID counter started again, and with
        them the caches (pickles, the blob cache's files) and, with ``shared-blob-dir``, the
        blob files. The schema stays. Refused while a transaction is in progress on this
        storage or a pack runs on the database. ``slow`` is accepted for RelStorage's callers
        and changes nothing."""
        if not reset_oid:
            raise ValueError('zap_all(reset_oid=False) is not supported: emptying the database '
                             'always starts the OIDs again')
        if self._options.read_only:
            raise POSException.ReadOnlyError()
        self._db.zap_all()

    def _driver_floor(self, oids):
        """(single, batched): nanoseconds per object to read these objects' current states
        through the Go database driver alone, one primary-key read each, then batched
        (``gorelstorage bench``'s floor)."""
        return self._call_db(_native.bench_floor, [_oid_int(o) for o in oids])

    def new_oid(self):
        if self._options.read_only:
            raise POSException.ReadOnlyError()
        return self._db.new_oid()

    # --- history, iteration ---------------------------------------------

    def history(self, oid, size=1, filter=None):
        """Up to ``size`` revisions of ``oid``, newest first, as RelStorage answers:
        ``size=None`` for all of them, a ``size`` below 1 for the newest one; with
        ``filter``, the revisions it accepts."""
        if size is not None and (isinstance(size, bool) or not isinstance(size, int)):
            raise TypeError('size must be an int or None, not %r' % (size,))
        limit = _MAX_TID if size is None or filter is not None else max(size, 1)
        out = []
        for h in self._call(_native.history, _oid_int(oid), limit):
            t = h.txn
            entry = _txn_info(t.tid, t.user, t.description, t.extension)
            entry.update(tid=p64(t.tid), serial=p64(t.tid), size=h.size)
            if filter is None or filter(entry):
                out.append(entry)
                if size is not None and len(out) >= size:
                    break
        return out

    def _transactions(self, start, stop, newest_first, skip_packed, offset, limit):
        return self._call(_native.transactions, start, stop, newest_first, skip_packed, offset, limit)

    def iterator(self, start=None, stop=None):
        return _TransactionIterator(self, start, stop)

    def record_iternext(self, next=None):
        """The current record at ``next`` (or after it; the first when None), and the oid of
        the following one (None at the end). Records are read a page ahead."""
        start = u64(next) if next else 0
        revs = self._iternext
        if not revs or revs[0].oid != start:
            revs = self._iternext = collections.deque(self._call(_native.current_from, start, _ITERNEXT_PAGE))
            if not revs:
                raise ValueError('no current record at or after oid %r' % (next,))
        rev = revs.popleft()
        if not revs:
            revs.extend(self._call(_native.current_from, rev.oid + 1, _ITERNEXT_PAGE))
        following = p64(revs[0].oid) if revs else None
        return p64(rev.oid), p64(rev.tid), rev.state, following

    def undoLog(self, first=0, last=-20, filter=None):
        if last < 0:
            last = first - last
        if not self._options.keep_history or last <= first:
            return []
        out, offset, page = [], 0, max(last, 100)
        while len(out) < last:
            rows = list(self._transactions(0, _MAX_TID, True, True, offset, page))
            for t in rows:
                d = _txn_info(t.tid, t.user, t.description, t.extension)
                d['id'] = base64.encodebytes(p64(t.tid)).rstrip(b'\n')
                if filter is None or filter(d):
                    out.append(d)
            if len(rows) < page:
                break
            offset += page
        return out[first:last]

    # --- two-phase commit -----------------------------------------------

    def _check_txn(self, transaction):
        if self._options.read_only:
            raise POSException.ReadOnlyError()
        if transaction is not self._transaction:
            raise POSException.StorageTransactionError(self, transaction)

    def tpc_begin(self, transaction, tid=None, status=' '):
        if self._options.read_only:
            raise POSException.ReadOnlyError()
        with self._tpc_cond:
            if self._transaction is transaction:
                raise POSException.StorageTransactionError(
                    'Duplicate tpc_begin calls for same transaction')
            while self._transaction is not None:
                self._tpc_cond.wait()
            self._transaction = transaction
        try:
            self._undone_oids = []
            self._read_current = {}
            self._stores = []
            self._call(_native.tpc_begin, *_txn_meta(transaction), _oid_int(tid, 'tid') if tid else 0,
                       status == 'p')
        except BaseException:
            self._end_transaction()
            raise

    def _restore_batch(self, transactions):
        """Commit whole transactions of another storage under their tids, many in one
        database transaction (copyTransactionsFrom's and ``gorelstorage convert``'s bulk
        path): ``transactions`` are (transaction record, [(oid, data)]), tids ascending.
        All of them commit, or none does (Oracle: each on its own)."""
        if self._options.read_only:
            raise POSException.ReadOnlyError()
        txns = []
        for trans, records in transactions:
            if not self._options.blob_dir:
                for oid, data in records:
                    _refuse_blob(oid, data)
            txns.append((_oid_int(trans.tid, 'tid'), trans.status == 'p', *_txn_meta(trans),
                         [(_oid_int(oid), data) for oid, data in records]))
        with self._tpc_cond:
            while self._transaction is not None:
                self._tpc_cond.wait()
            self._transaction = _RESTORING
        try:
            self._call(_native.restore_batch, txns)
        finally:
            self._end_transaction()

    def _end_transaction(self):
        self._voted_at = None
        self._stores = None
        with self._tpc_cond:
            self._transaction = None
            self._tpc_cond.notify()

    def store(self, oid, serial, data, version, transaction):
        # Gathered here and sent to the engine in one call before the vote or the next write
        # of another kind (_send_stores): a call per store cost more than the store.
        self._check_txn(transaction)
        if version:
            raise POSException.Unsupported('versions are not supported')
        if not isinstance(data, bytes):
            raise TypeError('data must be bytes, not %s' % type(data).__name__)
        if not self._options.blob_dir:
            _refuse_blob(oid, data)
        if type(oid) is not bytes or len(oid) != 8:
            _oid_int(oid)  # raises
        if type(serial) is not bytes or len(serial) != 8:
            serial = p64(_serial_int(serial))
        if self._stores is None:
            raise POSException.StorageTransactionError(
                'store: %s' % ('no transaction in progress' if self._transaction is None
                               else 'the transaction has already voted'))
        self._stores.append((oid, serial, data))

    def _send_stores(self):
        """Hand the gathered stores to the engine, before anything that depends on their order."""
        stores = self._stores
        if stores:
            self._stores = []
            self._call(_native.store_many, stores)

    def restore(self, oid, serial, data, version, prev_txn, transaction):
        self._check_txn(transaction)
        if version:
            raise POSException.Unsupported('versions are not supported')
        if data is not None and not isinstance(data, bytes):
            raise TypeError('data must be bytes or None, not %s' % type(data).__name__)
        if not self._options.blob_dir:
            _refuse_blob(oid, data)
        self._send_stores()
        self._call(_native.restore, _oid_int(oid), data)

    def deleteObject(self, oid, oldserial, transaction):
        self._check_txn(transaction)
        self._send_stores()
        self._call(_native.delete_object, _oid_int(oid), _serial_int(oldserial))

    def checkCurrentSerialInTransaction(self, oid, serial, transaction):
        # Gathered here and sent to the engine in one call before the vote, which checks them.
        self._check_txn(transaction)
        o, s = _oid_int(oid), _serial_int(serial)
        prev = self._read_current.setdefault(o, s)
        if prev != s:
            raise POSException.ReadConflictError(
                message='checkCurrentSerialInTransaction: the transaction read two revisions of this object',
                oid=oid, serials=(p64(prev), p64(s)))

    def undo(self, transaction_id, transaction):
        self._check_txn(transaction)
        if not self._options.keep_history:
            raise POSException.Unsupported('undo needs a history-preserving storage (keep-history true)')
        try:
            tid = base64.decodebytes(transaction_id + b'\n')
        except Exception:
            raise POSException.UndoError('invalid undo id %r' % (transaction_id,))
        if len(tid) != 8:
            raise POSException.UndoError('invalid undo id %r' % (transaction_id,))
        self._send_stores()
        oids = [p64(o) for o in self._call(_native.undo, u64(tid))]
        self._undone_oids.extend(oids)
        return None, oids

    def tpc_vote(self, transaction):
        self._check_txn(transaction)
        try:
            self._send_stores()
            self._stores = None  # no more stores
            if self._read_current:
                self._call(_native.check_current_many, self._read_current)
                self._read_current = {}
            conflicts, lock_wait = self._call(_native.vote)
        except (_native.UnableToLockError, POSException.ReadConflictError) as e:
            if self._metrics is not None:
                if isinstance(e, _native.UnableToLockError):
                    self._metrics.lock_failed()
                else:
                    self._metrics.read_conflict()
            raise
        metrics.log_slow('tpc_vote: locking the objects', lock_wait, self)
        resolved = []
        try:
            for c in conflicts:
                try:
                    state = self.tryToResolveConflict(p64(c.oid), p64(c.committed_tid), p64(c.old_tid),
                                                      c.new_state or b'', c.committed_state or b'')
                except POSException.ConflictError:
                    if c.undo:
                        raise POSException.UndoError('some data were modified by a later transaction',
                                                     p64(c.oid))
                    raise
                resolved.append((c.oid, c.committed_tid, state))
        finally:
            if self._metrics is not None:
                self._metrics.vote(lock_wait, len(conflicts), len(resolved))
        self._voted_at = time.perf_counter()
        if not conflicts:
            return None
        self._call(_native.resolve, resolved)
        return [p64(c.oid) for c in conflicts]

    def tpc_finish(self, transaction, f=None):
        self._check_txn(transaction)
        try:
            with self._lock:  # loads from other threads wait until the commit is visible
                bound = self.__dict__.pop('load', None)  # they go through the class's load, which takes the lock
                try:
                    tid, lock_wait = self._call(_native.finish_lock)
                    tid = p64(tid)
                    try:
                        if f is not None:
                            f(tid)
                    finally:
                        self._call(_native.finish_commit)
                finally:
                    if bound is not None:
                        self.load = bound  # the loader, or the metrics' wrapper of it
        except BaseException:
            self._abort_quietly()
            raise
        metrics.log_slow('tpc_finish: waiting for the commit lock', lock_wait, self)
        if self._voted_at is not None:
            held = time.perf_counter() - self._voted_at
            metrics.log_slow('the objects\' locks, from tpc_vote to the end of tpc_finish,', held, self)
            if self._metrics is not None:
                self._metrics.commit_lock(lock_wait)
                self._metrics.between_vote_and_finish(held)
        self._end_transaction()
        return tid

    def _abort_quietly(self):
        try:
            if self._instance is not None:
                self._call(_native.abort)
        except Exception:
            logger.exception('aborting the transaction failed; its writes were not committed')
        finally:
            self._end_transaction()

    def tpc_abort(self, transaction):
        if transaction is self._transaction:
            self._abort_quietly()

    def tpc_transaction(self):
        return self._transaction

    # --- blobs ------------------------------------------------------------

    def temporaryDirectory(self):
        """Where uncommitted blob files go: the blob directory's ``tmp``."""
        if self._db.blob_temp_dir is None:
            raise POSException.Unsupported('no blob-dir is configured')
        return self._db.blob_temp_dir

    def storeBlob(self, oid, oldserial, data, blobfilename, version, transaction):
        """store() with the blob's file, which the storage takes over."""
        self._check_txn(transaction)
        if version:
            raise POSException.Unsupported('versions are not supported')
        self._send_stores()
        self._call(_native.store_blob, _oid_int(oid), _serial_int(oldserial), data, self._take_over(blobfilename))

    def restoreBlob(self, oid, serial, data, blobfilename, prev_txn, transaction):
        """restore() with the blob's file, which the storage takes over."""
        self._check_txn(transaction)
        self._send_stores()
        self._call(_native.restore_blob, _oid_int(oid), data, self._take_over(blobfilename))

    def _take_over(self, blobfilename):
        """Move the caller's file into the blob directory's tmp (copying it, as ZODB does,
        when it is on another file system); the engine takes it from there."""
        staged = os.path.join(self.temporaryDirectory(), 'staged-' + uuid.uuid4().hex)
        try:
            rename_or_copy_blob(blobfilename, staged, chmod=False)
        except BaseException:
            if os.path.exists(staged):
                os.remove(staged)
            raise
        return os.fsencode(staged)

    def loadBlob(self, oid, serial):
        """The name of the file holding oid's blob as committed by serial; with a blob
        cache it is downloaded first when missing (and may be pruned later: open it
        with openCommittedBlobFile to keep it)."""
        if self._instance is None and self._options.blob_dir:
            # Closed: the files on disk are still served, as ZODB's storages serve them.
            path = _native.blob_lookup(os.path.abspath(self._options.blob_dir), _oid_int(oid), _serial_int(serial))
            if path is not None:
                return path
        return self._call(_native.load_blob, _oid_int(oid), _serial_int(serial))

    def openCommittedBlobFile(self, oid, serial, blob=None):
        """The blob's file, open for reading (a ZODB BlobFile when ``blob`` is given). A
        cached file stays in the cache while it is open: the open file holds a shared
        lock the cache's pruning respects."""
        for attempt in range(3):
            path = self.loadBlob(oid, serial)
            try:
                f = open(path, 'rb') if blob is None else BlobFile(path, 'r', blob)
            except FileNotFoundError:
                if attempt == 2:
                    raise
                continue  # pruned between the load and the open: fetch it again
            if self._options.shared_blob_dir:
                return f
            fcntl.flock(f.fileno(), fcntl.LOCK_SH)
            if os.fstat(f.fileno()).st_nlink:
                return f
            f.close()  # pruned while the lock was taken
        raise POSException.StorageError('blob of oid %r serial %r: the cache kept removing the file'
                                        % (oid, serial))

    # --- copying, packing -----------------------------------------------

    def copyTransactionsFrom(self, other):
        """Copy every transaction of ``other`` with its tid, blobs with them (refused when
        ``other`` has blob files and this storage has no blob-dir to take them)."""
        copier = Copier(other, self)
        if copier.can_copy_current():
            copier.copy_current()  # history-free: the current records only, as RelStorage does
        else:
            copier.copy_all(other.iterator())

    def pack(self, t, referencesf, gc=None, prepack_only=False, skip_prepack=False, check_refs=False,
             **kwargs):
        """ZODB's pack, with RelStorage's keyword arguments (``zodbpack --prepack`` passes them).

        ``t`` is a time.time() value, None (or a negative or future time) for now, or a
        TID as an integer. The references are read by the engine, as ZODB's
        ``referencesf`` reads them (zc.zlibstorage's compressed records included), so
        ``referencesf`` is not called. Returns the list of (oid, to_oid) broken references
        when ``check_refs`` is set, else None.
        """
        if kwargs:
            raise TypeError('pack() got unexpected keyword arguments %s' % ', '.join(sorted(kwargs)))
        result = self.pack_report(t, gc=gc, prepack_only=prepack_only, skip_prepack=skip_prepack,
                                  check_refs=check_refs)
        if check_refs:
            return [(p64(a), p64(b)) for a, b in result.get('broken_refs') or ()]
        return None

    def pack_report(self, t, gc=None, prepack_only=False, skip_prepack=False, check_refs=False):
        """pack(), returning what it did as a dict: ``pack_tid`` (0: nothing to pack),
        ``analyzed`` (states read for references), ``objects`` and ``garbage`` (objects
        with revisions at or before the pack time, and of them unreachable), ``removed``
        (revisions, or objects when history-free), ``kept`` (garbage that transactions
        committed during the pack reached), ``unreadable``, ``gc_skipped``,
        ``broken_refs``, ``warnings``, ``duration_sec``."""
        options = self._options
        if gc is None:
            gc = options.pack_gc
        prepack_only = bool(prepack_only or options.pack_prepack_only)
        skip_prepack = bool(skip_prepack or options.pack_skip_prepack)
        if prepack_only and skip_prepack:
            raise ValueError('Pick either prepack_only or skip_prepack.')
        config = {
            'tid': _pack_tid(t), 'gc': bool(gc), 'prepack_only': prepack_only,
            'skip_prepack': skip_prepack, 'check_refs': bool(check_refs),
        }
        data = self._call_db(_native.pack, json.dumps(config).encode('utf-8'))
        result = json.loads(data) if data else {}
        for line in result.get('log') or ():
            logger.info('%s', line)
        for u in result.get('unreadable') or ():
            logger.warning('pack: the references of oid %d in transaction %d cannot be read (%s); '
                           'they are not recorded, and the next pack reads the state again',
                           u['oid'], u['tid'], u['error'])
        _log_warnings(result.get('warnings') or ())
        return result

    def pack_progress(self):
        """Where the pack running on this database in this process is: a dict with
        ``phase`` (analyze, traverse, plan, remove, cleanup), ``done`` and ``total``
        (0 when not known); None when no pack runs."""
        return self._call_db(_native.pack_progress)


def _pack_tid(t):
    """The newest tid a pack of time ``t`` may pack to, as RelStorage reads ``t``."""
    if t is None or t < 0 or (t < _TID_THRESHOLD and t >= time.time()):
        return _MAX_TID - 1
    if t > _TID_THRESHOLD:
        return int(t)
    return u64(TimeStamp(*time.gmtime(t)[:5] + (t % 60,)).raw())


# Integers above this are TIDs, not times (RelStorage's rule: a TID of July 2019).
_TID_THRESHOLD = 275085010696509852


def _refuse_blob(oid, data):
    """Without blob-dir, a blob record would be stored without its file: refuse it."""
    if data and b'ZODB.blob' in data and is_blob_record(data):
        raise POSException.Unsupported(
            'oid %s is a blob record, and this storage keeps no blobs: storing the record without '
            'its file would lose the data; configure blob-dir'
            % (u64(oid) if isinstance(oid, bytes) and len(oid) == 8 else oid,))


def _as_bytes(v):
    if v is None:
        return b''
    return v if isinstance(v, bytes) else v.encode('utf-8')


class _TransactionIterator:
    """Transactions in [start, stop] as they were when iteration began; consumable once."""

    _PAGE = 100

    def __init__(self, storage, start, stop):
        self._storage = storage
        self._start = u64(start) if start else 0
        # The view is fixed now: transactions committed while iterating are not seen.
        self._stop = min(u64(stop) if stop else _MAX_TID, self._newest_tid())
        self._page = []
        self._done = False

    def _newest_tid(self):
        rows = self._storage._transactions(0, _MAX_TID, True, False, 0, 1)
        return rows[0].tid if rows else 0

    def __iter__(self):
        return self

    def __next__(self):
        if not self._page:
            if self._done or self._start > self._stop:
                raise StopIteration
            self._page = list(self._storage._transactions(self._start, self._stop, False, False, 0, self._PAGE))
            if len(self._page) < self._PAGE:
                self._done = True
            if not self._page:
                raise StopIteration
            self._page.reverse()
        t = self._page.pop()
        self._start = t.tid + 1
        records = []
        for rev in self._storage._call(_native.txn_records, t.tid):
            rec = DataRecord(p64(rev.oid), p64(rev.tid), rev.state, None)
            rec.version = ''
            records.append(rec)
        return _Transaction(p64(t.tid), 'p' if t.packed else ' ', t.user, t.description, t.extension, records)

    def close(self):
        self._done, self._page = True, []


class _Transaction(TransactionRecord):

    def __init__(self, tid, status, user, description, extension_bytes, records):
        TransactionRecord.__init__(self, tid, status, user, description, _extension(extension_bytes))
        self.extension_bytes = extension_bytes
        self._records = records

    def __iter__(self):
        return iter(self._records)
