import os, sys, shutil
from gorelstorage.bench import blobs
from gorelstorage.testing import zap
db, loc = sys.argv[1], sys.argv[2]
for c in ('gorelstorage', 'relstorage', 'gorelstorage', 'relstorage'):
    zap(db, loc); shutil.rmtree('/tmp/pf/smw', ignore_errors=True)
    spec = {'contender': c, 'database': db, 'location': loc, 'hp': False, 'blob_dir': '/tmp/pf/smw', 'workdir': '/tmp/pf/w'}
    w = blobs.step(spec, 'write_many', 0, 1000, 50000)[0]
    blobs._drop_blob_files('/tmp/pf/smw')
    r = blobs.step(spec, 'read_many', 0, 1000, 50000)[0]
    print(db, c, 'write %.3f read %.3f' % (w, r))
