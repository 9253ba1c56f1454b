"""The shared pickle cache seen from Python: statistics, emptying it, its options, and the
persistent cache file (cache-local-dir) across restarts and processes."""
import json
import logging
import os
import stat
import subprocess
import sys

import pytest
import ZODB.config
from ZODB.Connection import TransactionMetaData
from ZODB.utils import p64

import gorelstorage
from gorelstorage import GoRelStorage
from gorelstorage import SQLite3

WORKER = os.path.join(os.path.dirname(__file__), 'cache_worker.py')
OBJECTS = 100


def _state(oid, version=0):
    return b'state of %d, version %d ' % (oid, version) + b'x' * 200


def _open(tmp_path, **options):
    return GoRelStorage(SQLite3(str(tmp_path / 'data')), **options)


def _fill(storage, count=OBJECTS):
    """Commit oids 0..count-1 (the first new_oid is 1; oid 0 is committed too)."""
    oids = [0] + [int.from_bytes(storage.new_oid(), 'big') for _ in range(count - 1)]
    assert oids == list(range(count))
    t = TransactionMetaData()
    storage.tpc_begin(t)
    for oid in oids:
        storage.store(p64(oid), None, _state(oid), '', t)
    storage.tpc_vote(t)
    storage.tpc_finish(t)


def _load_all(storage, count=OBJECTS):
    storage.poll_invalidations()
    return [storage.load(p64(oid))[0] for oid in range(count)]


def _worker(tmp_path, cache_dir, *args):
    out = subprocess.run([sys.executable, WORKER, str(tmp_path / 'data'), cache_dir] + [str(a) for a in args],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def _cache_files(tmp_path):
    return sorted(p for p in (tmp_path / 'cache').iterdir() if p.name.endswith('.cache'))


def test_stats_count_hits_and_misses_and_clear_empties_the_cache(tmp_path):
    storage = _open(tmp_path)
    try:
        _fill(storage)
        reader = storage.new_instance()
        before = storage.cache_stats()
        assert before['entries'] == OBJECTS, 'the commit filled the cache'
        assert before['limit'] == 10 * 1000 * 1000
        assert _load_all(reader) == [_state(oid) for oid in range(OBJECTS)]
        after = storage.cache_stats()
        assert after['hits'] - before['hits'] == OBJECTS
        assert after['misses'] == before['misses']

        storage.clear_cache()
        assert storage.cache_stats()['entries'] == 0
        assert storage.cache_stats()['bytes'] == 0
        reader.sync()
        assert _load_all(reader) == [_state(oid) for oid in range(OBJECTS)]
        cold = storage.cache_stats()
        assert cold['misses'] - after['misses'] == OBJECTS, 'after clear_cache every load reached the database'
        assert cold['entries'] == OBJECTS, 'and filled the cache again'
        reader.release()
    finally:
        storage.close()


def test_relstorages_cache_attribute_empties_the_cache_as_zodbshootout_does(tmp_path):
    """zodbshootout empties a storage's cache before its cold reads through
    ``db.storage._cache.clear()``, RelStorage's spelling: the loads after it reach the
    database."""
    storage = _open(tmp_path)
    try:
        _fill(storage)
        reader = storage.new_instance()
        _load_all(reader)
        assert len(storage._cache) == OBJECTS
        stats = storage._cache.stats()
        assert stats['hits'] >= OBJECTS and stats['sets'] >= OBJECTS and 0 < stats['ratio'] <= 1
        storage._cache.clear()
        assert len(storage._cache) == 0
        reader.sync()
        misses = storage._cache.stats()['misses']
        assert _load_all(reader) == [_state(oid) for oid in range(OBJECTS)]
        assert storage._cache.stats()['misses'] - misses == OBJECTS
        reader.release()
    finally:
        storage.close()


def test_instances_of_one_database_share_one_cache(tmp_path):
    first, second = _open(tmp_path), _open(tmp_path)
    try:
        _fill(first)
        second.poll_invalidations()
        hits = second.cache_stats()['hits']
        _load_all(second)
        assert second.cache_stats()['hits'] - hits == OBJECTS, "the other storage's commit filled the shared cache"
        assert first.cache_stats() == second.cache_stats()
    finally:
        first.close()
        second.close()


def test_the_object_size_limit_and_a_disabled_cache(tmp_path):
    storage = _open(tmp_path, cache_local_object_max=100)
    try:
        _fill(storage)
        assert storage.cache_stats()['entries'] == 0, 'every state is over 100 bytes'
    finally:
        storage.close()
    storage = _open(tmp_path, cache_local_mb=0)
    try:
        _load_all(storage)
        stats = storage.cache_stats()
        assert (stats['entries'], stats['limit']) == (0, 0)
    finally:
        storage.close()


def test_compression_round_trips_through_zconfig(tmp_path):
    storage = ZODB.config.storageFromString('''
        %%import gorelstorage
        <gorelstorage>
          cache-local-mb 1
          cache-local-compression zlib
          cache-local-object-max 1000
          <gosqlite3>
            data-dir %s
          </gosqlite3>
        </gorelstorage>''' % (tmp_path / 'data'))
    try:
        _fill(storage)
        stats = storage.cache_stats()
        assert stats['limit'] == 1000 * 1000
        assert stats['entries'] == OBJECTS
        # 300 raw bytes per state (with the entry overhead, 96) compress well below that.
        assert stats['bytes'] < OBJECTS * (96 + 150)
        reader = storage.new_instance()
        assert _load_all(reader) == [_state(oid) for oid in range(OBJECTS)]
        reader.release()
    finally:
        storage.close()


@pytest.mark.parametrize('option, value, message', [
    ('cache_local_mb', -1, 'cache-local-mb must be >= 0'),
    ('cache_local_mb', 'lots', 'cache-local-mb must be a number'),
    ('cache_local_object_max', -5, 'cache-local-object-max must be >= 0'),
    ('cache_local_compression', 'lz4', 'cache-local-compression must be none or zlib'),
])
def test_bad_cache_options_are_refused_by_name(tmp_path, option, value, message):
    with pytest.raises(gorelstorage.ConfigurationError, match=message):
        _open(tmp_path, **{option: value})
    assert not (tmp_path / 'data').exists(), 'nothing was created'


def test_the_cache_file_survives_a_restart_and_only_its_owner_reads_it(tmp_path):
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    _fill(storage)
    storage.close()
    (path,) = _cache_files(tmp_path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(tmp_path / 'cache').st_mode) == 0o700

    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    try:
        assert storage.cache_stats()['entries'] == OBJECTS, 'read back at open'
        assert _load_all(storage) == [_state(oid) for oid in range(OBJECTS)]
        stats = storage.cache_stats()
        assert (stats['hits'], stats['misses']) == (OBJECTS, 0), 'a restart starts warm'
    finally:
        storage.close()


def test_objects_changed_by_another_process_meanwhile_are_dropped(tmp_path):
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    _fill(storage)
    storage.close()
    # While we are down, another process (without a cache file) changes object 7.
    _worker(tmp_path, '', 'change', 7, 'changed elsewhere')
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    try:
        assert storage.cache_stats()['entries'] == OBJECTS - 1, 'the changed object was dropped'
        states = _load_all(storage)
        assert states[7] == b'changed elsewhere'
        assert states[:7] + states[8:] == [_state(oid) for oid in range(OBJECTS) if oid != 7]
        stats = storage.cache_stats()
        assert (stats['hits'], stats['misses']) == (OBJECTS - 1, 1)
    finally:
        storage.close()


def test_corrupt_cache_file_is_ignored_with_a_warning_and_rewritten(tmp_path, caplog):
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    _fill(storage)
    storage.close()
    (path,) = _cache_files(tmp_path)
    data = path.read_bytes()
    path.write_bytes(data[:len(data) // 2])  # a half-written file

    with caplog.at_level(logging.WARNING, logger='gorelstorage.storage'):
        storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    try:
        assert any('ignoring the cache file' in r.getMessage() and str(path) in r.getMessage()
                   for r in caplog.records), caplog.text
        assert storage.cache_stats()['entries'] == 0
        assert _load_all(storage) == [_state(oid) for oid in range(OBJECTS)]
    finally:
        storage.close()
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    try:
        assert storage.cache_stats()['entries'] == OBJECTS, 'the file was rebuilt at close'
    finally:
        storage.close()


def test_two_processes_merge_their_caches_into_one_file(tmp_path):
    storage = _open(tmp_path)
    _fill(storage)
    storage.close()
    half = OBJECTS // 2
    (tmp_path / 'barrier').mkdir()
    # Both load their half, wait for each other, then close: both write the file.
    procs = [subprocess.Popen([sys.executable, WORKER, str(tmp_path / 'data'), str(tmp_path / 'cache'),
                               'load', str(first), str(last), str(tmp_path / 'barrier'), '2'],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for first, last in ((0, half), (half, OBJECTS))]
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        assert json.loads(out)['entries'] == half
    storage = _open(tmp_path, cache_local_dir=str(tmp_path / 'cache'))
    try:
        assert storage.cache_stats()['entries'] == OBJECTS, 'both processes\' objects are in the file'
        assert _load_all(storage) == [_state(oid) for oid in range(OBJECTS)]
        assert storage.cache_stats()['misses'] == 0
    finally:
        storage.close()
