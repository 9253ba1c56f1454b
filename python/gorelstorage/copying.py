"""Copying transactions between storages, blobs with them (``copyTransactionsFrom``,
``gorelstorage convert``)."""
import itertools
import os
import shutil
import tempfile

from ZODB import POSException
from ZODB.blob import is_blob_record
from ZODB.interfaces import IBlobStorage
from ZODB.interfaces import IBlobStorageRestoreable
from ZODB.interfaces import IStorageCurrentRecordIteration
from ZODB.utils import oid_repr
from ZODB.utils import readable_tid_repr


def takes_blobs(storage):
    """Whether restoreBlob can be given files (storages declare it when they have a blob
    directory)."""
    return IBlobStorageRestoreable.providedBy(storage)


# A batch of the bulk path holds at most this much (it is sent when either is reached; a
# transaction bigger than the batch goes on its own, through tpc_begin ... tpc_finish).
BATCH_BYTES = 8 << 20
BATCH_RECORDS = 10000


class Copier:
    """Restores transactions of ``source`` into ``destination`` with their tids; counts what
    it copied. Into GoRelStorage, transactions without blobs go in batches, many per database
    transaction (``_restore_batch``); others, and every transaction into another storage, one
    destination transaction each."""

    def __init__(self, source, destination):
        self.source, self.destination = source, destination
        self.source_blobs = IBlobStorage.providedBy(source)
        self.destination_blobs = takes_blobs(destination)
        self.transactions = self.records = self.bytes = self.blobs = self.blob_bytes = 0
        self._bulk = getattr(destination, '_restore_batch', None)
        self._batch, self._batch_bytes, self._batch_records = [], 0, 0

    def copy_all(self, transactions):
        """Copies every transaction of the iterable, in order. When one fails, those before
        it are copied (the batch gathered is sent first)."""
        try:
            self._copy_all(transactions)
        except BaseException:
            self.flush()
            raise
        self.flush()

    def _copy_all(self, transactions):
        for trans in transactions:
            if self._bulk is None:
                self.copy(trans)
                continue
            records, seen, size = iter(trans), [], 0
            whole = False
            for r in records:
                seen.append(r)
                if self._blob_file(r, trans) is not None or size > BATCH_BYTES:
                    whole = True  # a blob, or too big for a batch: the whole way
                    break
                size += len(r.data or b'')
            if whole:
                self.flush()
                self.copy(trans, itertools.chain(seen, records))  # the rest is read as it goes
                continue
            records = [(r.oid, r.data) for r in seen]
            if self._batch and (self._batch_bytes + size > BATCH_BYTES
                                or self._batch_records + len(records) > BATCH_RECORDS):
                self.flush()
            self._batch.append((trans, records, size))
            self._batch_bytes += size
            self._batch_records += len(records)

    def can_copy_current(self):
        """Whether copy_current applies: a history-free GoRelStorage destination, and a source
        that lists its current records (IStorageCurrentRecordIteration)."""
        return (self._bulk is not None and not self.destination.supportsUndo()
                and IStorageCurrentRecordIteration.providedBy(self.source))

    def copy_current(self):
        """RelStorage's history-free fast path: only the source's current records, each with
        its own tid, in batches (one database transaction each); those with a blob one by one.
        Counted as records; ``transactions`` counts the database transactions."""
        batch, size = [], 0
        oid = None
        while True:
            current, tid, data, oid = _next_record(self.source, oid)
            if data is not None:
                r = _CurrentRecord(current, tid, data)
                if self._blob_file(r, r) is not None:
                    self.copy(_CurrentTxn(tid), [r])
                else:
                    batch.append(r)
                    size += len(data)
            if batch and (oid is None or size > BATCH_BYTES or len(batch) >= BATCH_RECORDS):
                self._send_current(batch)
                batch, size = [], 0
            if oid is None:
                return

    def _send_current(self, records):
        by_tid = {}
        for r in records:
            by_tid.setdefault(r.tid, []).append((r.oid, r.data))
        self._bulk([(_CurrentTxn(tid), by_tid[tid]) for tid in sorted(by_tid)])
        self.transactions += 1
        self.records += len(records)
        self.bytes += sum(len(r.data) for r in records)

    def flush(self):
        """Sends the batch gathered so far."""
        if not self._batch:
            return
        batch, self._batch, self._batch_bytes, self._batch_records = self._batch, [], 0, 0
        self._bulk([(t, records) for t, records, _ in batch])
        for _, records, size in batch:
            self.transactions += 1
            self.records += len(records)
            self.bytes += size

    def copy(self, trans, records=None):
        """Copies one transaction through tpc_begin ... tpc_finish (its records: those given,
        else the transaction's own)."""
        d = self.destination
        d.tpc_begin(trans, trans.tid, trans.status)
        try:
            count = data = blobs = blob_bytes = 0
            for r in trans if records is None else records:
                count += 1
                data += len(r.data or b'')
                source = self._blob_file(r, trans)
                if source is None:
                    d.restore(r.oid, r.tid, r.data, '', r.data_txn, trans)
                    continue
                fd, copy = tempfile.mkstemp(prefix='copy-', dir=d.temporaryDirectory())
                os.close(fd)
                try:
                    shutil.copyfile(source, copy)
                    blob_bytes += os.path.getsize(copy)
                    d.restoreBlob(r.oid, r.tid, r.data, copy, r.data_txn, trans)
                finally:
                    if os.path.exists(copy):  # restoreBlob takes it over when it succeeds
                        os.remove(copy)
                blobs += 1
            d.tpc_vote(trans)
            d.tpc_finish(trans)
        except BaseException:
            d.tpc_abort(trans)
            raise
        self.transactions += 1
        self.records += count
        self.bytes += data
        self.blobs += blobs
        self.blob_bytes += blob_bytes

    def _blob_file(self, r, trans):
        """The source's file of r's blob; None for a record without one."""
        if not (self.source_blobs and r.data and is_blob_record(r.data)):
            return None
        try:
            path = self.source.loadBlob(r.oid, r.tid)
        except POSException.POSKeyError:
            return None  # a blob record whose file is gone: copied as a record, as ZODB does
        if not self.destination_blobs:
            raise POSException.Unsupported(
                'transaction %s: object %s has a blob, and the destination keeps no blobs '
                '(give it a blob-dir)' % (readable_tid_repr(trans.tid), oid_repr(r.oid)))
        return path


def _next_record(source, oid):
    """record_iternext's (oid, tid, data, next oid or None); data None when the source has
    nothing more."""
    try:
        oid, tid, data, following = source.record_iternext(oid)
    except (IndexError, StopIteration, ValueError):  # an empty storage
        return None, None, None, None
    return oid, tid, data, following


class _CurrentRecord:
    """A current record from record_iternext, shaped as an iterator's record."""
    __slots__ = ('oid', 'tid', 'data', 'data_txn')

    def __init__(self, oid, tid, data):
        self.oid, self.tid, self.data, self.data_txn = oid, tid, data, None


class _CurrentTxn:
    """The transaction metadata a history-free copy restores current records under."""
    status, user, description, extension_bytes = ' ', b'', b'', b''

    def __init__(self, tid):
        self.tid = tid
