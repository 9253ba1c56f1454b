"""Several processes write one database at once; conflict resolution keeps every increment."""
import os
import subprocess
import sys
import tempfile

import pytest

from conftest import MODES

WORKER = os.path.join(os.path.dirname(__file__), 'counter_worker.py')


def read_counters(kind, data_dir, mode):
    out = subprocess.run([sys.executable, WORKER, 'read', kind, data_dir, mode],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


def run_workers(data_dir, mode, kinds, increments):
    init = subprocess.run([sys.executable, WORKER, 'init', kinds[0], data_dir, mode],
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    barrier = tempfile.mkdtemp(prefix='barrier-', dir=os.path.dirname(data_dir))
    procs = [subprocess.Popen([sys.executable, WORKER, kind, data_dir, mode, str(increments), barrier,
                               str(len(kinds))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for kind in kinds]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outputs.append([int(x) for x in out.split()])
    return outputs


@pytest.mark.parametrize('mode', sorted(MODES))
def test_processes_incrementing_counters_lose_nothing(tmp_path, mode):
    workers, increments = 4, 60
    outputs = run_workers(str(tmp_path / 'data'), mode, ['go'] * workers, increments)
    assert read_counters('go', str(tmp_path / 'data'), mode) == [workers * increments, 2 * workers * increments]
    assert all(o[0] >= increments for o in outputs), 'each worker saw at least its own increments'
    assert sum(o[3] for o in outputs) > 0, 'the workers ran into each other and resolved conflicts'

