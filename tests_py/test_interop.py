"""GoRelStorage and RelStorage 4.x share databases: either opens what the other wrote,
and both can commit to one database at the same time."""
import sqlite3

import ZODB
from BTrees.OOBTree import OOBTree
from persistent.mapping import PersistentMapping

from test_multiprocess import read_counters
from test_multiprocess import run_workers


def _write(storage, key, n):
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        tree = OOBTree()
        for i in range(n):
            tree[i] = PersistentMapping(value=i, writer=key)
        conn.root()[key] = tree
    db.close()


def _read(storage, key):
    db = ZODB.DB(storage)
    with db.transaction() as conn:
        tree = conn.root()[key]
        values = [(k, v['value'], v['writer']) for k, v in tree.items()]
    db.close()
    return values


def test_each_opens_what_the_other_wrote(database, keep_history):
    _write(database.make_relstorage(keep_history), 'from_relstorage', 300)
    assert _read(database.make(keep_history), 'from_relstorage') == [(i, i, 'from_relstorage') for i in range(300)]
    _write(database.make(keep_history), 'from_go', 300)
    assert _read(database.make_relstorage(keep_history), 'from_go') == [(i, i, 'from_go') for i in range(300)]
    # And RelStorage keeps writing after GoRelStorage did: OIDs are not reissued.
    _write(database.make_relstorage(keep_history), 'again', 50)
    assert len(_read(database.make(keep_history), 'from_go')) == 300
    assert len(_read(database.make(keep_history), 'again')) == 50


def test_database_created_by_gorelstorage_opens_in_relstorage(database, keep_history):
    _write(database.make(keep_history), 'first', 20)
    assert _read(database.make_relstorage(keep_history), 'first') == [(i, i, 'first') for i in range(20)]
    if keep_history:
        rs = database.make_relstorage(keep_history)
        try:
            assert [e['description'] for e in rs.undoLog(0, 2)] == [b'', b'initial database creation']
        finally:
            rs.close()


def test_both_commit_to_one_database_at_once(database, keep_history):
    mode = 'hp' if keep_history else 'hf'
    location = database.location(keep_history)
    increments = 40
    outputs = run_workers(database.name, location, mode, ['go', 'relstorage', 'go', 'relstorage'], increments)
    expected = [4 * increments, 8 * increments]
    assert read_counters('go', database.name, location, mode) == expected
    assert read_counters('relstorage', database.name, location, mode) == expected
    assert sum(o[2] + o[3] for o in outputs) > 0, 'the processes ran into each other'


def _schema(path):
    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        schema = {}
        for name in names:
            schema[name] = {
                'columns': conn.execute('PRAGMA table_info("%s")' % name).fetchall(),
                'indexes': sorted(
                    (idx[1], idx[2], tuple(c[2] for c in conn.execute('PRAGMA index_info("%s")' % idx[1])))
                    for idx in conn.execute('PRAGMA index_list("%s")' % name)),
                'foreign_keys': conn.execute('PRAGMA foreign_key_list("%s")' % name).fetchall(),
            }
        rows = {}
        for table in ('transaction', 'commit_row_lock'):
            if table in schema:
                rows[table] = conn.execute('SELECT * FROM "%s" WHERE tid = 0' % table).fetchall()
        return schema, rows
    finally:
        conn.close()


def test_sqlite_schema_is_relstorages(tmp_path, keep_history):
    from databases import SQLiteDatabase
    go_db, rs_db = SQLiteDatabase(str(tmp_path / 'go')), SQLiteDatabase(str(tmp_path / 'rs'))
    tmp_path.joinpath('go').mkdir()
    tmp_path.joinpath('rs').mkdir()
    go_db.make(keep_history).close()
    rs_db.make_relstorage(keep_history).close()
    go_schema = _schema(go_db.location(keep_history) + '/main.sqlite3')
    rs_schema = _schema(rs_db.location(keep_history) + '/main.sqlite3')
    assert go_schema == rs_schema
