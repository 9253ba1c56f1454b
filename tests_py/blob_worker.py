"""Commits blobs until killed, for test_blobs' kill -9 test: each blob's SHA-256 is committed
with it, and each committed key is printed.
Arguments: tests directory, database name, location, blob-dir, shared (1/0), round."""
import hashlib
import os
import random
import sys

import ZODB
from BTrees.OOBTree import OOBTree
from ZODB.blob import Blob

sys.path.insert(0, sys.argv[1])
from databases import DATABASES  # noqa: E402


def main():
    name, location, blob_dir, shared, round_ = sys.argv[2:7]
    storage = DATABASES[name].open_go(location, False, blob_dir=blob_dir, shared_blob_dir=shared == '1')
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        if 'hashes' not in conn.root():
            conn.root()['hashes'] = OOBTree()
    for i in range(1000):
        data = os.urandom(random.randint(1, 3 << 20))
        key = 'r%s-%d' % (round_, i)
        with db.transaction() as conn:
            conn.root()[key] = Blob(data)
            conn.root()['hashes'][key] = hashlib.sha256(data).hexdigest()
        print(key, flush=True)


if __name__ == '__main__':
    main()
