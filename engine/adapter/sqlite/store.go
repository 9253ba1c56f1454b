package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// storeConn commits through one connection of the write pool. BEGIN
// IMMEDIATE takes SQLite's database write lock, which is both the per-object
// and the commit lock here: from vote to finish no other writer, in this
// process or another (RelStorage included), can commit.
type storeConn struct {
	conn        *sql.Conn
	q           *queries
	keepHistory bool
	inTxn       bool
}

func (c *storeConn) BeginCommit(ctx context.Context) error {
	if c.inTxn {
		return fmt.Errorf("sqlite3: commit already begun")
	}
	if _, err := c.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return lockError("take the database write lock", err)
	}
	c.inTxn = true
	return nil
}

func (c *storeConn) LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error) {
	current := make(map[uint64]uint64, len(readCurrent)+len(modified))
	read := func(oids []uint64) error {
		return chunks(oids, func(part []uint64) error {
			in, args := inList(part)
			rows, err := c.conn.QueryContext(ctx, c.q.currentTIDIn+in, args...)
			if err != nil {
				return err
			}
			defer rows.Close()
			for rows.Next() {
				var oid, tid uint64
				if err := rows.Scan(&oid, &tid); err != nil {
					return err
				}
				current[oid] = tid
			}
			return rows.Err()
		})
	}
	if err := read(readCurrent); err != nil {
		return nil, err
	}
	return current, read(modified)
}

func (c *storeConn) States(ctx context.Context, oids []uint64) (map[uint64]adapter.Revision, error) {
	out := make(map[uint64]adapter.Revision, len(oids))
	err := chunks(oids, func(part []uint64) error {
		in, args := inList(part)
		rows, err := c.conn.QueryContext(ctx, c.q.currentIn+in, args...)
		if err != nil {
			return err
		}
		revs, err := scanRevisions(rows, nil)
		for _, r := range revs {
			out[r.OID] = r
		}
		return err
	})
	return out, err
}

// LockCommit: the write lock taken at vote is the commit lock. SQLite has no
// server clock; the engine uses the client's, as RelStorage does.
func (c *storeConn) LockCommit(ctx context.Context) (uint64, time.Time, error) {
	var tid uint64
	err := c.conn.QueryRowContext(ctx, c.q.lastTID).Scan(&tid)
	return tid, time.Time{}, err
}

const (
	sqlInsertTxn = `INSERT INTO "transaction" (tid, packed, is_empty, username, description, extension)
		VALUES (?, ?, ?, ?, ?, ?)`
	sqlInsertStateHP = `INSERT OR REPLACE INTO object_state (zoid, tid, prev_tid, md5, state_size, state)
		VALUES (?, ?, ?, ?, ?, ?)`
	sqlUpsertCurrent = `INSERT INTO current_object (zoid, tid) VALUES (?, ?)
		ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid`
	sqlUpsertStateHF = `INSERT OR REPLACE INTO object_state (zoid, tid, state_size, state) VALUES (?, ?, ?, ?)`
	sqlDeleteHF      = `DELETE FROM object_state WHERE zoid = ?`
)

func (c *storeConn) Move(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if c.keepHistory {
		return c.moveHP(ctx, tid, meta, writes)
	}
	return c.moveHF(ctx, tid, writes)
}

func (c *storeConn) moveHP(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if _, err := c.conn.ExecContext(ctx, sqlInsertTxn, int64(tid), meta.Packed, len(writes) == 0,
		adapter.NonNil(meta.User), adapter.NonNil(meta.Description), adapter.NonNil(meta.Extension)); err != nil {
		return fmt.Errorf("insert transaction %d: %w", tid, err)
	}
	ins, err := c.conn.PrepareContext(ctx, sqlInsertStateHP)
	if err != nil {
		return err
	}
	defer ins.Close()
	cur, err := c.conn.PrepareContext(ctx, sqlUpsertCurrent)
	if err != nil {
		return err
	}
	defer cur.Close()
	for _, w := range writes {
		var sum any // NULL without state
		if w.MD5 != nil {
			sum = string(w.MD5)
		}
		if _, err := ins.ExecContext(ctx, int64(w.OID), int64(tid), int64(w.PrevTID), sum, len(w.State), w.State); err != nil {
			return fmt.Errorf("insert state of oid %d: %w", w.OID, err)
		}
		if _, err := cur.ExecContext(ctx, int64(w.OID), int64(tid)); err != nil {
			return fmt.Errorf("update current oid %d: %w", w.OID, err)
		}
	}
	return nil
}

func (c *storeConn) moveHF(ctx context.Context, tid uint64, writes []adapter.Write) error {
	up, err := c.conn.PrepareContext(ctx, sqlUpsertStateHF)
	if err != nil {
		return err
	}
	defer up.Close()
	for _, w := range writes {
		if w.State == nil {
			_, err = c.conn.ExecContext(ctx, sqlDeleteHF, int64(w.OID))
		} else {
			_, err = up.ExecContext(ctx, int64(w.OID), int64(tid), len(w.State), w.State)
		}
		if err != nil {
			return fmt.Errorf("write oid %d: %w", w.OID, err)
		}
	}
	return nil
}

func (c *storeConn) Commit(ctx context.Context) error {
	if !c.inTxn {
		return fmt.Errorf("sqlite3: commit without a transaction")
	}
	_, err := c.conn.ExecContext(ctx, "COMMIT")
	if err != nil {
		c.Rollback()
		return err
	}
	c.inTxn = false
	return nil
}

func (c *storeConn) Rollback() {
	if c.inTxn {
		c.conn.ExecContext(context.Background(), "ROLLBACK")
		c.inTxn = false
	}
}

const (
	sqlUndoTxn  = `SELECT packed FROM "transaction" WHERE tid = ?`
	sqlUndoPlan = `SELECT u.zoid, c.tid, cs.md5, u.md5, u.prev_tid, p.state
		FROM object_state u
		JOIN current_object c ON c.zoid = u.zoid
		JOIN object_state cs ON cs.zoid = c.zoid AND cs.tid = c.tid
		LEFT JOIN object_state p ON p.zoid = u.zoid AND p.tid = u.prev_tid
		WHERE u.tid = ?
		ORDER BY u.zoid`
)

func (c *storeConn) UndoPlan(ctx context.Context, tid uint64) ([]adapter.UndoItem, bool, error) {
	var packed bool
	err := c.conn.QueryRowContext(ctx, sqlUndoTxn, int64(tid)).Scan(&packed)
	if err == sql.ErrNoRows || (err == nil && packed) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	rows, err := c.conn.QueryContext(ctx, sqlUndoPlan, int64(tid))
	if err != nil {
		return nil, false, err
	}
	defer rows.Close()
	var items []adapter.UndoItem
	for rows.Next() {
		var it adapter.UndoItem
		var curMD5, undoneMD5 sql.NullString
		if err := rows.Scan(&it.OID, &it.CurrentTID, &curMD5, &undoneMD5, &it.PrevTID, &it.PrevState); err != nil {
			return nil, false, err
		}
		if curMD5.Valid {
			it.CurrentMD5 = []byte(curMD5.String)
		}
		if undoneMD5.Valid {
			it.UndoneMD5 = []byte(undoneMD5.String)
		}
		items = append(items, it)
	}
	return items, true, rows.Err()
}

func (c *storeConn) Close() error {
	c.Rollback()
	return c.conn.Close()
}
