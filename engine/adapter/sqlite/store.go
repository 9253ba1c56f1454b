package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"strings"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
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
	lockTimeout time.Duration
	chunkSize   int               // blob-chunk-size
	blobs       map[uint64]string // staged blob files by oid, written at Move
	written     int64             // bytes of states and blobs Move wrote
	ckpt        *checkpointer     // nil: every commit checkpoints as SQLite does
}

// BeginCommit takes the write lock. SQLite's busy handler sleeps 1, 2, 5,
// 10, ... ms between tries, long against another commit that holds the lock
// for a few hundred microseconds; so the connection's busy timeout is off
// while this polls, from 20 us doubling up to 1 ms, until commit-lock-timeout.
func (c *storeConn) BeginCommit(ctx context.Context) error {
	if c.inTxn {
		return fmt.Errorf("sqlite3: commit already begun")
	}
	if _, err := c.conn.ExecContext(ctx, "PRAGMA busy_timeout = 0"); err != nil {
		return err
	}
	defer c.conn.ExecContext(ctx, fmt.Sprintf("PRAGMA busy_timeout = %d", c.lockTimeout.Milliseconds()))
	deadline := time.Now().Add(c.lockTimeout)
	for wait := 20 * time.Microsecond; ; wait = min(2*wait, time.Millisecond) {
		_, err := c.conn.ExecContext(ctx, "BEGIN IMMEDIATE")
		if err == nil {
			c.inTxn = true
			return nil
		}
		if !isBusy(err) || time.Now().After(deadline) {
			return lockError("take the database write lock", err)
		}
		time.Sleep(wait)
	}
}

// LockObjects reads the current tids of the objects (SQLite's write lock,
// taken at BeginCommit, locks them all) in one statement on the driver, as
// a prefetch reads states: the oids as a JSON array, each looked up by
// primary key.
func (c *storeConn) LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error) {
	current := make(map[uint64]uint64, len(readCurrent)+len(modified))
	oids := append(append(make([]uint64, 0, len(readCurrent)+len(modified)), readCurrent...), modified...)
	if len(oids) == 0 {
		return current, nil
	}
	err := c.conn.Raw(func(dc any) error {
		st, err := sqlrow.Prepare(ctx, dc, c.q.currentTIDs)
		if err != nil {
			return err
		}
		defer st.Close()
		var row [2]driver.Value
		return eachRow(ctx, st.(oneStmt), oids, row[:], func() error {
			oid, ok1 := row[0].(int64)
			tid, ok2 := row[1].(int64)
			if !ok1 || !ok2 {
				return fmt.Errorf("sqlite3: unexpected current tid row types %T %T", row[0], row[1])
			}
			current[uint64(oid)] = uint64(tid)
			return nil
		})
	})
	return current, err
}

// States reads the committed states of objects whose conflicts are resolved,
// through the statement a prefetch reads with (the oids as a JSON array).
func (c *storeConn) States(ctx context.Context, oids []uint64) (map[uint64]adapter.Revision, error) {
	out := make(map[uint64]adapter.Revision, len(oids))
	if len(oids) == 0 {
		return out, nil
	}
	err := c.conn.Raw(func(dc any) error {
		st, err := sqlrow.Prepare(ctx, dc, c.q.currentMany)
		if err != nil {
			return err
		}
		defer st.Close()
		var row [3]driver.Value
		return eachRow(ctx, st.(oneStmt), oids, row[:], func() error {
			r, err := revisionOf(row)
			if err == nil {
				out[r.OID] = r
			}
			return err
		})
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
	sqlInsertStateHP = `INSERT OR REPLACE INTO object_state (zoid, tid, prev_tid, md5, state_size, state) VALUES `
	sqlUpsertCurrent = `INSERT INTO current_object (zoid, tid) VALUES `
	onConflictZoid   = ` ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid`
	sqlUpsertStateHF = `INSERT OR REPLACE INTO object_state (zoid, tid, state_size, state) VALUES `
	sqlDeleteHF      = `DELETE FROM object_state WHERE zoid = ?`
)

// rowsPerInsert is how many rows one multi-row INSERT carries: the write
// lock is held while they go in, and one statement per row cost 4 us each.
const rowsPerInsert = 100

// insertRows runs insert + "(?, ...), ..." + suffix for every row of args
// (width values each), rowsPerInsert rows per statement.
func (c *storeConn) insertRows(ctx context.Context, insert, suffix string, width int, args []any) error {
	stmts := map[int]*sql.Stmt{}
	defer func() {
		for _, s := range stmts {
			s.Close()
		}
	}()
	for len(args) > 0 {
		n := min(len(args)/width, rowsPerInsert)
		s, ok := stmts[n]
		if !ok {
			var err error
			if s, err = c.conn.PrepareContext(ctx, insert+valuesList(n, width)+suffix); err != nil {
				return err
			}
			stmts[n] = s
		}
		if _, err := s.ExecContext(ctx, args[:n*width]...); err != nil {
			return err
		}
		args = args[n*width:]
	}
	return nil
}

// valuesList returns "(?, ?), (?, ?)" for rows rows of width values.
func valuesList(rows, width int) string {
	row := "(" + strings.Repeat("?, ", width-1) + "?)"
	return strings.Repeat(row+", ", rows-1) + row
}

func (c *storeConn) Move(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	var err error
	if c.keepHistory {
		err = c.moveHP(ctx, tid, meta, writes)
	} else {
		err = c.moveHF(ctx, tid, writes)
	}
	if err != nil {
		return err
	}
	for _, w := range writes {
		c.written += int64(len(w.State))
	}
	return c.moveBlobs(ctx, tid, writes)
}

func (c *storeConn) moveHP(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if _, err := c.conn.ExecContext(ctx, sqlInsertTxn, int64(tid), meta.Packed, len(writes) == 0,
		sqlrow.NonNil(meta.User), sqlrow.NonNil(meta.Description), sqlrow.NonNil(meta.Extension)); err != nil {
		return fmt.Errorf("insert transaction %d: %w", tid, err)
	}
	states := make([]any, 0, 6*len(writes))
	current := make([]any, 0, 2*len(writes))
	for _, w := range writes {
		var sum any // NULL without state
		if w.MD5 != nil {
			sum = string(w.MD5)
		}
		states = append(states, int64(w.OID), int64(tid), int64(w.PrevTID), sum, len(w.State), w.State)
		current = append(current, int64(w.OID), int64(tid))
	}
	if err := c.insertRows(ctx, sqlInsertStateHP, "", 6, states); err != nil {
		return fmt.Errorf("insert states: %w", err)
	}
	if err := c.insertRows(ctx, sqlUpsertCurrent, onConflictZoid, 2, current); err != nil {
		return fmt.Errorf("update current_object: %w", err)
	}
	return nil
}

func (c *storeConn) moveHF(ctx context.Context, tid uint64, writes []adapter.Write) error {
	states := make([]any, 0, 4*len(writes))
	for _, w := range writes {
		if w.State == nil {
			// Foreign keys are not enforced: the blob goes explicitly.
			if _, err := c.conn.ExecContext(ctx, sqlDeleteChunksHF, int64(w.OID)); err != nil {
				return fmt.Errorf("delete oid %d: %w", w.OID, err)
			}
			if _, err := c.conn.ExecContext(ctx, sqlDeleteHF, int64(w.OID)); err != nil {
				return fmt.Errorf("delete oid %d: %w", w.OID, err)
			}
			continue
		}
		states = append(states, int64(w.OID), int64(tid), len(w.State), w.State)
	}
	if err := c.insertRows(ctx, sqlUpsertStateHF, "", 4, states); err != nil {
		return fmt.Errorf("write states: %w", err)
	}
	return nil
}

func (c *storeConn) Commit(ctx context.Context) error {
	if !c.inTxn {
		return fmt.Errorf("sqlite3: commit without a transaction")
	}
	if err := c.ckpt.commit(ctx, c.conn, c.written); err != nil {
		c.Rollback()
		return err
	}
	c.inTxn, c.blobs, c.written = false, nil, 0
	return nil
}

// MovesMany implements adapter.MultiMover: Move writes at once, in the
// write transaction.
func (c *storeConn) MovesMany() {}

func (c *storeConn) Rollback() {
	c.blobs, c.written = nil, 0
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
