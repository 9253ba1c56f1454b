import os, sys, time, resource, shutil
from gorelstorage.bench import blobs
from gorelstorage.testing import zap
db, loc, c = sys.argv[1], sys.argv[2], sys.argv[3]
zap(db, loc); shutil.rmtree('/tmp/pf/cpu', ignore_errors=True)
spec = {'contender': c, 'database': db, 'location': loc, 'hp': False, 'blob_dir': '/tmp/pf/cpu', 'workdir': '/tmp/pf/w'}
for step in ('write_big', 'read_big'):
    if step == 'read_big': blobs._drop_blob_files('/tmp/pf/cpu')
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    secs = blobs.step(spec, step, 100 << 20, 0, 0)[0]
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    print(c, db, step, 'timed %.2f s' % secs, 'process CPU %.2f s (whole step incl. setup)' % ((r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)))
