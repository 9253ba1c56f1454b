"""The zodbshootout harness's pieces: the configuration it writes opens every contender, the ZEO
server it starts serves commits, and RelStorage's database is named beside GoRelStorage's."""
import io

import pytest
import transaction
import ZConfig
from persistent.mapping import PersistentMapping

from gorelstorage.bench import shootout


def test_the_configuration_opens_every_contender(tmp_path):
    pytest.importorskip('relstorage')
    zeo, port = shootout.start_zeo(str(tmp_path))
    try:
        path = tmp_path / 'zodbshootout.conf'
        shootout.write_config(str(path), [('sqlite', None)], str(tmp_path), False, port)
        text = path.read_text()
        for name in ('gorelstorage_sqlite', 'relstorage_sqlite', 'zeo_filestorage'):
            assert '<zodb %s>' % name in text
        config, _ = ZConfig.loadConfig(_multi_schema(), str(path))
        assert len(config.databases) == 3
        for factory in config.databases:
            db = factory.open()
            try:
                tm = transaction.TransactionManager()
                conn = db.open(tm)
                conn.root()['x'] = PersistentMapping(name=factory.name)
                tm.commit()
                conn.close()
                assert db.storage._cache is not None, 'zodbshootout empties caches through _cache'
            finally:
                db.close()
    finally:
        zeo.terminate()
        zeo.wait(30)


def _multi_schema():
    """zodbshootout's schema: any number of named <zodb> sections."""
    return ZConfig.loadSchemaFile(io.StringIO(
        '<schema><import package="ZODB"/>'
        '<multisection type="ZODB.database" name="*" attribute="databases"/></schema>'))


def test_relstorage_gets_the_database_named_with_2_appended():
    assert shootout.relstorage_location('postgresql', 'host=h dbname=zodb user=u') == 'host=h dbname=zodb2 user=u'
    assert shootout.relstorage_location('mysql', 'gomysql://u:p@h:3306/zodb') == 'gomysql://u:p@h:3306/zodb2'
    with pytest.raises(ValueError, match='dbname'):
        shootout.relstorage_location('postgresql', 'host=h user=u')


def test_the_storage_ratio_takes_zodbs_own_time_away():
    assert shootout.storage_ratio(3.0, 5.0, 1.0) == 0.5
    assert shootout.storage_ratio(0.5, 5.0, 1.0) == 0.0, 'faster than MappingStorage counts as no storage time'
    assert shootout.storage_ratio(3.0, 1.0, 2.0) is None, 'undefined when RelStorage is at the floor'
    assert shootout.storage_ratio(None, 5.0, 1.0) is None


def test_zodbshootouts_failure_marks_are_told_from_timings():
    assert shootout._magic(6.66) and shootout._magic(66.6) and shootout._magic(0.0666)
    assert not shootout._magic(6.6601) and not shootout._magic(0.0123)


def test_the_blob_benchmark_moves_every_byte_beside_its_file_system_floor():
    """A small --blobs run on SQLite: each step's row has both contenders and the floor, each of
    which moved all of the step's bytes, and the storage's share."""
    pytest.importorskip('relstorage')
    from types import SimpleNamespace
    from gorelstorage.bench import blobs
    args = SimpleNamespace(rounds=1, blob_mb=1, blob_count=20, blob_kb=4)
    rows = blobs.run(args, [('sqlite', None)])
    assert [r['step'] for r in rows] == list(blobs.STEPS)
    for row in rows:
        expected = (1 << 20) if row['step'].endswith('big') else 20 * 4 << 10
        for who in ('gorelstorage', 'relstorage', blobs.FLOOR):
            moved = row[who]['mb_s'] * 1e6 * row[who]['seconds']
            assert abs(moved - expected) < 1, (row['step'], who, moved)
        assert row['storage_ratio'] is None or row['storage_ratio'] >= 0
    assert '| sqlite | read 20 x 4 kB cold |' in blobs.markdown(rows, args)


def test_several_rounds_report_the_median_of_their_medians_and_the_ratios_range():
    rounds = [
        {'MappingStorage': {'add': 1.0}, 'gorelstorage_sqlite': {'add': 2.0}, 'relstorage_sqlite': {'add': 5.0}},
        {'MappingStorage': {'add': 1.0}, 'gorelstorage_sqlite': {'add': 4.0}, 'relstorage_sqlite': {'add': 5.0}},
        {'MappingStorage': {'add': 1.0}, 'gorelstorage_sqlite': {'add': 3.0, 'tpc': 1.0},
         'relstorage_sqlite': {'add': 3.0}},
    ]
    combined = shootout.combine(rounds)
    assert combined['gorelstorage_sqlite'] == {'add': 3.0, 'tpc': 1.0}, 'a workload one round has keeps its value'
    assert combined['relstorage_sqlite']['add'] == 5.0
    run = {'clients': 1, 'kind': 'threads', 'databases': ['sqlite'], 'medians': combined, 'rounds': rounds,
           'failed': [], 'errors': []}
    assert shootout.ratio_range(run, 'sqlite', 'add') == (0.25, 1.0)
    assert shootout.ratio_range(run, 'sqlite', 'tpc') is None, 'RelStorage never ran it'
    table = shootout.markdown({'objects': 500, 'mode': 'hf', 'runs': [run]})
    assert 'medians of 3 runs' in table
    assert '| add | 1000.000 | - | 5000.000 | 3000.000 | 0.60 | 0.50 ok | 0.25-1.00 |' in table


def test_time_inside_the_storage_is_counted_and_zodb_sees_the_same_storage(tmp_path):
    """gorelstorage bench's TimedStorage: ZODB treats it as the storage it wraps (GoRelStorage is
    still an IMVCCStorage, MappingStorage still gets ZODB's adapter), the workloads run, and the
    time counted inside the storage is some of the workload's time, not more, not none."""
    import time
    import ZODB
    from ZODB.MappingStorage import MappingStorage
    from ZODB.mvccadapter import MVCCAdapter
    from gorelstorage import GoRelStorage
    from gorelstorage import SQLite3
    from gorelstorage.bench import inside
    for storage, mvcc in ((GoRelStorage(SQLite3(str(tmp_path / 'data'))), True), (MappingStorage(), False)):
        timed = inside.TimedStorage(storage)
        db = ZODB.DB(timed)
        try:
            assert db.storage is timed
            assert isinstance(db._mvcc_storage, inside.TimedStorage) == mvcc
            assert isinstance(db._mvcc_storage, MVCCAdapter) != mvcc
            with db.transaction() as conn:
                conn.root()['m'] = PersistentMapping((i, PersistentMapping(x=i)) for i in range(200))
            inside.reset()
            start = time.perf_counter()
            conn = db.open()
            conn.cacheMinimize()
            assert sum(v['x'] for v in conn.root()['m'].values()) == sum(range(200))
            conn.close()
            elapsed = time.perf_counter() - start
            assert 0 < inside.seconds() < elapsed
            assert len(db.storage) == len(storage)
        finally:
            db.close()


def test_two_client_threads_read_cold_without_emptying_each_others_prefetch(tmp_path):
    """Client threads share the storage's cache, and each cold read starts by emptying it: every
    client empties it before any reads, so the states a client prefetched answer its reads, and a
    prefetch_cold round reads from the database each client's objects once (and the few objects
    above them), not again after the other client's emptying."""
    import threading
    import ZODB
    from gorelstorage.bench import workloads
    from gorelstorage.bench.contenders import open_storage
    from gorelstorage.bench.inside import TimedStorage
    n, reps, clients = 200, 4, 2
    spec = {'contender': 'gorelstorage', 'database': 'sqlite', 'hp': False, 'location': str(tmp_path / 'data')}
    workloads.populate(spec, clients)
    db = ZODB.DB(TimedStorage(open_storage(spec)), pool_size=clients + 2)
    arriving = [None] * clients
    marks = []  # (workload, states read from the database so far), once per barrier
    barrier = threading.Barrier(clients, action=lambda: marks.append(
        (arriving[0], db.storage.cache_stats()['stores'])))
    errors = []

    def client(i):
        def wait(w):
            arriving[i] = w
            barrier.wait()
        try:
            workloads.run_client(db, i, n, 300, reps, wait)
        except BaseException as e:
            errors.append(e)
            barrier.abort()
    try:
        threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        db.close()
    assert not errors
    start = next(k for k, (w, _) in enumerate(marks) if w == 'prefetch_cold')
    end = next(k for k in range(start, len(marks)) if marks[k][0] is None)
    read = marks[end][1] - marks[start][1]
    # Per round and client: its n objects, its mapping, the root and the mapping above them.
    assert clients * n * reps <= read <= clients * (n + 3) * reps
