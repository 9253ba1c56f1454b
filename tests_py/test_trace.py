"""ZEO cache trace files, enabled as RelStorage enables them, read by ZEO's own scripts."""
import glob
import os
import re
import subprocess
import sys

import pytest
import ZODB
from persistent.mapping import PersistentMapping

import gorelstorage


def _work(tmp_path, objects=50, rounds=3):
    storage = gorelstorage.GoRelStorage(gorelstorage.SQLite3(str(tmp_path / 'data')),
                                        cache_local_dir=str(tmp_path / 'cache'))
    db = ZODB.DB(storage)
    try:
        with db.transaction() as conn:
            for i in range(objects):
                conn.root()[i] = PersistentMapping(i=i)
        for _ in range(rounds):
            with db.transaction() as conn:
                conn.cacheMinimize()
                assert sum(conn.root()[i]['i'] for i in range(objects)) == sum(range(objects))
    finally:
        db.close()


@pytest.mark.parametrize('mode', ['single', '1'])
def test_the_trace_file_is_read_by_zeos_cache_stats_and_cache_simul(tmp_path, monkeypatch, mode):
    monkeypatch.setenv('ZEO_CACHE_TRACE', mode)
    _work(tmp_path)
    traces = glob.glob(str(tmp_path / 'cache' / 'gorelstorage-trace-*.trace'))
    assert len(traces) == 1
    assert traces[0].endswith('.%d.trace' % (0 if mode == 'single' else os.getpid()))

    stats = subprocess.run([sys.executable, '-m', 'ZEO.scripts.cache_stats', traces[0]],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    codes = {int(code, 16): int(count) for count, code in re.findall(r'^\s+(\d+)\s+([0-9a-f]{2}) ', stats, re.M)}
    # The root and 50 mappings committed go in (stores); three rounds load the root and the
    # 50 mappings from the shared cache (hits); the first load of the root missed.
    assert codes[0x00] == 1
    assert codes[0x52] >= 51
    assert codes[0x22] >= 3 * 50
    assert codes.get(0x20, 0) <= 2
    assert 'Hit rate:' in stats

    simul = subprocess.run([sys.executable, '-m', 'ZEO.scripts.cache_simul', traces[0]],
                           capture_output=True, text=True, timeout=60, check=True).stdout
    assert 'HITRATE' in simul and 'LOADS' in simul


def test_no_trace_without_zeo_cache_trace(tmp_path, monkeypatch):
    monkeypatch.delenv('ZEO_CACHE_TRACE', raising=False)
    _work(tmp_path, objects=5, rounds=1)
    assert glob.glob(str(tmp_path / 'cache' / '*.trace')) == []
