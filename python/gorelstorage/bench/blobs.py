"""``gorelstorage bench --blobs``: blobs, GoRelStorage and RelStorage side by side.

Per database and contender, each step in a new process (so that its peak memory is its own),
the database emptied first:

  write 100 MB    one transaction storing one blob of --blob-mb MB
  read 100 MB     read it back, cold: the blob files are deleted from the cache first (its
                  directories stay, as in a cache in use), so every blob is downloaded
  write 1000      one transaction storing --blob-count blobs of --blob-kb kB
  read 1000       read them back, cold

Reported: MB/s, and how much the process's peak memory grew during the step (MB). The contenders
and the floor below take turns going first between rounds; the median time of the rounds is shown.

Beside them, each round, the file system's floor: the file work no storage of this kind avoids, done
by Python alone in the same order on the same kind of directory, with no database. Writing, ZODB's
own uncommitted file (its temporary directory) filled from the source, then renamed into the cache's
layout (its directory and lock file created as both contenders create them); reading cold, the file
written to a temporary name in the cache and renamed, then read back. After the cache's files were
deleted, as before every cold read, creating files costs the file system more (ext4 without a
journal skips the inodes freed in the last half minute), so the floor is measured in those conditions
too. For the same reason no step deletes another's files: each round's blob directories stay until
the benchmark ends (when each round's directory was removed before the next contender's steps, the
small steps' floors were 0.4-1.9 s instead of 0.07-0.33 s, and moved from run to run). The storage's
share is (GoRelStorage - floor) / (RelStorage - floor).
"""
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from .contenders import CONTENDERS
from .contenders import open_storage
from .shootout import storage_ratio

STEPS = ('write_big', 'read_big', 'write_many', 'read_many')
_LABELS = {'write_big': 'write %d MB', 'read_big': 'read %d MB cold', 'write_many': 'write %d x %d kB',
           'read_many': 'read %d x %d kB cold'}


def _peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _source_file(path, size):
    """A file of size bytes, not compressible, written in 1 MB pieces."""
    block = os.urandom(1 << 20)
    with open(path, 'wb') as f:
        for done in range(0, size, len(block)):
            f.write(block[:min(len(block), size - done)])


def _sources(spec, sizes):
    """The files a write step stores, one per size, in the work directory."""
    paths = []
    for i, size in enumerate(sizes):
        path = os.path.join(spec['workdir'], 'src-%d' % i)
        _source_file(path, size)
        paths.append(path)
    return paths


def _read_all(f):
    """Read f to its end in 1 MB pieces; the bytes read."""
    n = 0
    while True:
        chunk = f.read(1 << 20)
        if not chunk:
            return n
        n += len(chunk)


# The pseudo-contender that does the file system's share of each step alone.
FLOOR = 'floor'
_FLOOR_TID = 0x03ea000000000000


def _floor_path(blob_dir, oid):
    """Where a cache in RelStorage's layout keeps oid's blob (zeocache: <oid % 997>/<oid / 997>.<tid>.blob)."""
    return os.path.join(blob_dir, str(oid % 997), '%d.%016x.blob' % (oid // 997, _FLOOR_TID))


def _floor_step(spec, name, big, count, small):
    """The file work of one step, without a storage: (seconds, bytes moved, peak growth)."""
    blob_dir = spec['blob_dir']
    tmp_dir = os.path.join(blob_dir, 'tmp')
    os.makedirs(tmp_dir, exist_ok=True)
    sizes = [big] if name.endswith('big') else [small] * count
    if name.startswith('write'):
        sources = _sources(spec, sizes)
    block = os.urandom(1 << 20)
    os.sync()
    base = _peak()
    start = time.perf_counter()
    moved = 0
    for i, size in enumerate(sizes):
        final = _floor_path(blob_dir, i + 1)
        if name.startswith('write'):
            fd, staged = tempfile.mkstemp(dir=tmp_dir)  # ZODB's uncommitted file
            with os.fdopen(fd, 'wb') as f, open(sources[i], 'rb') as src:
                shutil.copyfileobj(src, f, 1 << 20)
            os.makedirs(os.path.dirname(final), exist_ok=True)
            os.close(os.open(os.path.join(os.path.dirname(final), '.lock'), os.O_RDWR | os.O_CREAT, 0o644))
            os.rename(staged, final)
            moved += size
            continue
        with open(final + '.tmp', 'wb') as f:  # the download
            for done in range(0, size, len(block)):
                f.write(block[:min(len(block), size - done)])
        os.rename(final + '.tmp', final)
        with open(final, 'rb') as f:
            moved += _read_all(f)
    return time.perf_counter() - start, moved, _peak() - base


def step(spec, name, big, count, small):
    """Run one step in this process: (seconds, bytes moved, peak memory growth in bytes)."""
    if spec['contender'] == FLOOR:
        return _floor_step(spec, name, big, count, small)
    import transaction
    import ZODB
    from ZODB.blob import Blob
    db = ZODB.DB(open_storage(spec))
    try:
        conn = db.open()
        root = conn.root()
        if name.startswith('write'):
            sizes = [big] if name == 'write_big' else [small] * count
            sources = _sources(spec, sizes)
            os.sync()
            base = _peak()
            start = time.perf_counter()
            for i, path in enumerate(sources):
                blob = root['%s-%d' % (name, i)] = Blob()
                with blob.open('w') as f, open(path, 'rb') as src:
                    shutil.copyfileobj(src, f, 1 << 20)
            transaction.commit()
            return time.perf_counter() - start, sum(sizes), _peak() - base
        keys = sorted(k for k in root.keys() if k.startswith('write_' + name[len('read_'):]))
        os.sync()
        base = _peak()
        start = time.perf_counter()
        moved = 0
        for key in keys:
            with root[key].open() as f:
                moved += _read_all(f)
        return time.perf_counter() - start, moved, _peak() - base
    finally:
        db.close()


def _run_step(spec, name, args):
    out = subprocess.run([sys.executable, '-m', 'gorelstorage.bench.blobs', json.dumps(spec), name,
                          str(args.blob_mb << 20), str(args.blob_count), str(args.blob_kb << 10)],
                         capture_output=True, timeout=3600)
    if out.returncode:
        raise RuntimeError(out.stderr.decode().strip().splitlines()[-1] if out.stderr else 'failed')
    return json.loads(out.stdout)


def _drop_blob_files(blob_dir):
    """Empty a cache of its blob files, keeping its directories and lock files."""
    for dirpath, _, files in os.walk(blob_dir):
        for name in files:
            if name.endswith('.blob'):
                os.remove(os.path.join(dirpath, name))


def _empty(database, location):
    from ..testing import zap
    zap(database, location)


def run(args, databases):
    workdir = tempfile.mkdtemp(prefix='gorelstorage-blob-bench-')
    results = []
    everyone = CONTENDERS + (FLOOR,)
    try:
        for database, location in databases:
            samples = {c: {s: [] for s in STEPS} for c in everyone}
            for rnd in range(args.rounds):
                first = rnd % len(everyone)
                for contender in everyone[first:] + everyone[:first]:
                    loc = location or os.path.join(workdir, 'db-' + contender)
                    if contender != FLOOR:
                        _empty(database, loc)
                    blob_dir = os.path.join(workdir, '%s-%d' % (contender, rnd))
                    for s in STEPS:
                        if s.startswith('read'):
                            _drop_blob_files(blob_dir)
                        spec = {'contender': contender, 'database': database, 'location': loc, 'hp': False,
                                'blob_dir': blob_dir, 'workdir': workdir}
                        samples[contender][s].append(_run_step(spec, s, args))
                    # The blob directory stays until the end (see the module's docstring).
            for s in STEPS:
                row = {'database': database, 'step': s}
                for c in everyone:
                    runs = sorted(samples[c][s], key=lambda r: r['seconds'])
                    mid = runs[len(runs) // 2]
                    row[c] = {'seconds': mid['seconds'], 'mb_s': mid['bytes'] / mid['seconds'] / 1e6,
                              'peak_mb': max(r['peak'] for r in runs) / 1e6}
                go, rs, floor = (row[c]['seconds'] for c in everyone)
                row['ratio'] = go / rs
                row['storage_ratio'] = storage_ratio(go, rs, floor)
                results.append(row)
                print(_line(row, args), file=sys.stderr)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _label(step, args):
    if step.endswith('big'):
        return _LABELS[step] % args.blob_mb
    return _LABELS[step] % (args.blob_count, args.blob_kb)


def _share(row):
    share = row.get('storage_ratio')
    return '-' if share is None else '%.2f' % share


def _line(row, args):
    g, r, f = row['gorelstorage'], row['relstorage'], row[FLOOR]
    return ('%s %s: GoRelStorage %.3f s %.0f MB/s (+%.0f MB), RelStorage %.3f s %.0f MB/s (+%.0f MB), '
            'file system floor %.3f s, time ratio %.2f, storage share %s') % (
        row['database'], _label(row['step'], args), g['seconds'], g['mb_s'], g['peak_mb'], r['seconds'],
        r['mb_s'], r['peak_mb'], f['seconds'], row['ratio'], _share(row))


def markdown(results, args):
    lines = ['| database | step | GoRelStorage s (MB/s) | peak +MB | RelStorage s (MB/s) | peak +MB '
             '| file system floor s | time ratio | storage share |',
             '|---|---|---:|---:|---:|---:|---:|---:|---:|']
    for row in results:
        g, r, f = row['gorelstorage'], row['relstorage'], row[FLOOR]
        lines.append('| %s | %s | %.3f (%.0f) | %.0f | %.3f (%.0f) | %.0f | %.3f | %.2f | %s |' % (
            row['database'], _label(row['step'], args), g['seconds'], g['mb_s'], g['peak_mb'], r['seconds'],
            r['mb_s'], r['peak_mb'], f['seconds'], row['ratio'], _share(row)))
    return '\n'.join(lines)


def main():
    spec, name = json.loads(sys.argv[1]), sys.argv[2]
    big, count, small = map(int, sys.argv[3:6])
    seconds, moved, peak = step(spec, name, big, count, small)
    print(json.dumps({'seconds': seconds, 'bytes': moved, 'peak': peak}))


if __name__ == '__main__':
    main()
