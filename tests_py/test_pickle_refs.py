"""The engine's pickle reference scanner (engine/pickle, which pack reads records with)
against ZODB's referencesf: the same answer on every real and random record, and on
corrupted records the same answer or a clear error, never a crash."""
import datetime
import decimal
import io
import random
import zlib

import pytest
import ZODB
from BTrees.IOBTree import IOBTree
from BTrees.OOBTree import OOBTree
from persistent import Persistent
from persistent.list import PersistentList
from persistent.mapping import PersistentMapping
from persistent.wref import WeakRef
from ZODB.blob import Blob
from ZODB.FileStorage import FileStorage
from ZODB.MappingStorage import MappingStorage
from ZODB.serialize import referencesf
from ZODB.utils import p64
from zodbpickle import pickle as zpickle

from gorelstorage import _native


_ERROR = 'error'


def _both(record):
    """(referencesf's answer, the engine's answer); either is 'error' when it raised."""
    try:
        theirs = referencesf(record)
    except Exception:
        theirs = _ERROR
    try:
        ours = _native.references(record)
    except ValueError:
        ours = _ERROR
    return theirs, ours


class Thing:
    """A plain object stored inside a persistent one."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _real_records(tmp_path):
    """Every record of a FileStorage holding what applications store."""
    fs = FileStorage(str(tmp_path / 'data.fs'), blob_dir=str(tmp_path / 'blobs'))
    db = ZODB.DB(fs, databases={})
    other = ZODB.DB(MappingStorage(), databases=db.databases, database_name='other')
    with db.transaction() as conn:
        root = conn.root()
        root['mapping'] = PersistentMapping(a=1, b='two', c=b'three', d=None, e=3.5, f=2 ** 70)
        root['list'] = PersistentList([root['mapping'], (root['mapping'],), {'k': root['mapping']}])
        tree = root['tree'] = OOBTree()
        for i in range(300):  # enough items for buckets, which refer to each other
            tree['key%03d' % i] = PersistentMapping(i=i) if i % 10 == 0 else i
        ints = root['ints'] = IOBTree()
        for i in range(200):
            ints[i] = root['mapping']
        root['weak'] = WeakRef(root['mapping'])
        root['blob'] = Blob(b'data')
        root['thing'] = PersistentMapping(t=Thing(x=root['mapping'], when=datetime.datetime(2020, 1, 2),
                                                  d=decimal.Decimal('1.5'), s={1, 2}, fs=frozenset('ab'),
                                                  text='\u00e9t\u00e9'))
        far = conn.get_connection('other')
        x = PersistentMapping()
        far.add(x)
        far.root()['x'] = x
        root['far'] = x  # a cross-database reference
    records = []
    for txn in fs.iterator():
        for rec in txn:
            if rec.data:
                records.append(rec.data)
    db.close()
    other.close()
    return records


def test_every_real_record_reads_as_referencesf(tmp_path):
    records = _real_records(tmp_path)
    assert len(records) > 20
    for record in records:
        theirs, ours = _both(record)
        assert ours == theirs, record
        # zc.zlibstorage's form: referencesf reads it once zc.zlibstorage has inflated it.
        assert _native.references(b'.z' + zlib.compress(record)) == theirs


class _P(Persistent):
    pass


def _random_value(rng, oids, depth=0):
    kind = rng.randrange(12 if depth < 4 else 6)
    if kind == 0:
        return rng.randrange(-2 ** 40, 2 ** 40)
    if kind == 1:
        return rng.random()
    if kind == 2:
        return ''.join(rng.choice('abc\u00e9\u4e2d\n\\\'"') for _ in range(rng.randrange(6)))
    if kind == 3:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(10)))
    if kind in (4, 5):
        return ('ref', rng.choice(oids))  # a persistent reference, written by persistent_id
    if kind == 6:
        return [_random_value(rng, oids, depth + 1) for _ in range(rng.randrange(4))]
    if kind == 7:
        return tuple(_random_value(rng, oids, depth + 1) for _ in range(rng.randrange(5)))
    if kind == 8:
        return {str(i): _random_value(rng, oids, depth + 1) for i in range(rng.randrange(4))}
    if kind == 9:
        return Thing(v=_random_value(rng, oids, depth + 1))
    if kind == 10:
        return None
    return rng.choice([True, False, datetime.date(2001, 2, 3), frozenset([1, 2])])


def _random_record(rng):
    """A record as ZODB writes one, with persistent ids in every form: (oid, class), a bare
    oid, a weak reference and cross-database references, in pickle protocols 1 to 3."""
    oids = [p64(rng.randrange(1, 2 ** 20)) for _ in range(rng.randrange(1, 5))]
    forms = [lambda oid: (oid, _P), lambda oid: oid, lambda oid: ['w', (oid,)],
             lambda oid: ['m', 'other', oid, _P], lambda oid: ['n', 'other', oid]]
    chosen = {}

    def persistent_id(obj):
        if isinstance(obj, tuple) and len(obj) == 2 and obj[0] == 'ref':
            form = chosen.setdefault(obj[1], rng.choice(forms))
            return form(obj[1])
        return None

    protocol = rng.choice([1, 2, 3])
    f = io.BytesIO()
    p = zpickle.Pickler(f, protocol)
    p.persistent_id = persistent_id
    p.dump((_P, None))
    p.dump(_random_value(rng, oids))
    return f.getvalue()


def test_random_records_read_as_referencesf():
    rng = random.Random(20261201)
    mismatches = []
    for _ in range(3000):
        record = _random_record(rng)
        theirs, ours = _both(record)
        if ours != theirs:
            mismatches.append((record, theirs, ours))
    assert not mismatches, mismatches[:3]


@pytest.mark.parametrize('seed', range(3))
def test_corrupted_records_get_the_same_answer_or_an_error(tmp_path, seed):
    """Truncated, overwritten and spliced records: the engine never crashes, and whenever it
    answers while referencesf answers too, the answers agree."""
    rng = random.Random(seed)
    records = _real_records(tmp_path) + [_random_record(rng) for _ in range(200)]
    disagreements = 0
    for _ in range(2500):
        record = bytearray(rng.choice(records))
        how = rng.randrange(3)
        if how == 0:
            del record[rng.randrange(len(record)):]
        elif how == 1:
            for _ in range(rng.randrange(1, 4)):
                record[rng.randrange(len(record))] = rng.randrange(256)
        else:
            i = rng.randrange(len(record))
            record[i:i] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        theirs, ours = _both(bytes(record))
        if isinstance(theirs, list) and isinstance(ours, list) and ours != theirs:
            disagreements += 1
    assert disagreements == 0
