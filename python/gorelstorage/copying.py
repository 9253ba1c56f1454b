"""Copying transactions between storages, blobs with them (``copyTransactionsFrom``,
``gorelstorage convert``)."""
import os
import shutil
import tempfile

from ZODB import POSException
from ZODB.blob import is_blob_record
from ZODB.interfaces import IBlobStorage
from ZODB.interfaces import IBlobStorageRestoreable
from ZODB.utils import oid_repr
from ZODB.utils import readable_tid_repr


def takes_blobs(storage):
    """Whether restoreBlob can be given files (storages declare it when they have a blob
    directory)."""
    return IBlobStorageRestoreable.providedBy(storage)


class Copier:
    """Restores transactions of ``source`` into ``destination`` with their tids, one
    destination transaction each; counts what it copied."""

    def __init__(self, source, destination):
        self.source, self.destination = source, destination
        self.source_blobs = IBlobStorage.providedBy(source)
        self.destination_blobs = takes_blobs(destination)
        self.transactions = self.records = self.bytes = self.blobs = self.blob_bytes = 0

    def copy(self, trans):
        d = self.destination
        d.tpc_begin(trans, trans.tid, trans.status)
        try:
            records = data = blobs = blob_bytes = 0
            for r in trans:
                records += 1
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
        self.records += records
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
