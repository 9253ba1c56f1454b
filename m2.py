import os, sys, time
from gorelstorage.bench import blobs
from gorelstorage.testing import zap
from gorelstorage import _native
db, loc = sys.argv[1], sys.argv[2]
contender = sys.argv[3]
os.makedirs('/tmp/pf/w', exist_ok=True)
zap(db, loc)
spec = {'contender': contender, 'database': db, 'location': loc, 'hp': False, 'blob_dir': '/tmp/pf/bm', 'workdir': '/tmp/pf/w'}
with _native.go_cpu_profile('/tmp/pf/m.pprof'):
    print(contender, 'write', blobs.step(spec, 'write_big', 100 << 20, 0, 0))
import shutil; shutil.rmtree('/tmp/pf/bm2', ignore_errors=True)
spec['blob_dir'] = '/tmp/pf/bm2'
print(contender, 'read', blobs.step(spec, 'read_big', 100 << 20, 0, 0))
