"""Several processes write one database at once; conflict resolution keeps every increment."""
import os
import shutil
import subprocess
import sys
import tempfile


WORKER = os.path.join(os.path.dirname(__file__), 'counter_worker.py')


def read_counters(kind, database, location, mode):
    out = subprocess.run([sys.executable, WORKER, 'read', kind, database, location, mode],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return [int(x) for x in out.stdout.split()]


def run_workers(database, location, mode, kinds, increments):
    init = subprocess.run([sys.executable, WORKER, 'init', kinds[0], database, location, mode],
                          capture_output=True, text=True, timeout=300)
    assert init.returncode == 0, init.stderr
    # Each kind opens the database once before they race: RelStorage processes
    # that all install their stored functions into a new PostgreSQL database
    # at the same moment fail with a UniqueViolation (a RelStorage limitation).
    for kind in sorted(set(kinds)):
        read_counters(kind, database, location, mode)
    barrier = tempfile.mkdtemp(prefix='barrier-')
    procs = [subprocess.Popen([sys.executable, WORKER, kind, database, location, mode, str(increments), barrier,
                               str(len(kinds))],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for kind in kinds]
    outputs = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        outputs.append([int(x) for x in out.split()])
    shutil.rmtree(barrier, ignore_errors=True)
    return outputs


def test_processes_incrementing_counters_lose_nothing(database, keep_history):
    mode = 'hp' if keep_history else 'hf'
    location = database.location(keep_history)
    workers, increments = 4, 60
    outputs = run_workers(database.name, location, mode, ['go'] * workers, increments)
    assert read_counters('go', database.name, location, mode) == [workers * increments, 2 * workers * increments]
    assert all(o[0] >= increments for o in outputs), 'each worker saw at least its own increments'
    assert sum(o[3] for o in outputs) > 0, 'the workers ran into each other and resolved conflicts'

