package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// loadConn is one connection of the read pool. A snapshot is an open WAL
// read transaction: it starts at BEGIN and is fixed by the first read.
type loadConn struct {
	conn        *sql.Conn
	q           *queries
	keepHistory bool
	inTxn       bool
	stmts       map[string]*sql.Stmt
	one         oneStmt // current's statement, on the driver connection
	many        oneStmt // currentMany's
}

func (c *loadConn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if s, ok := c.stmts[query]; ok {
		return s, nil
	}
	s, err := c.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	if c.stmts == nil {
		c.stmts = map[string]*sql.Stmt{}
	}
	c.stmts[query] = s
	return s, nil
}

func (c *loadConn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	s, err := c.stmt(ctx, q)
	if err != nil {
		return nil, err
	}
	return s.QueryContext(ctx, args...)
}

func (c *loadConn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	s, err := c.stmt(ctx, q)
	if err != nil {
		// Surface the prepare error through Row.Scan.
		return c.conn.QueryRowContext(ctx, q, args...)
	}
	return s.QueryRowContext(ctx, args...)
}

func (c *loadConn) Begin(ctx context.Context) error {
	c.End()
	if _, err := c.conn.ExecContext(ctx, "BEGIN DEFERRED"); err != nil {
		return err
	}
	c.inTxn = true
	return nil
}

func (c *loadConn) End() {
	if c.inTxn {
		c.conn.ExecContext(context.Background(), "ROLLBACK")
		c.inTxn = false
	}
}

func (c *loadConn) Close() error {
	c.End()
	for _, s := range c.stmts {
		s.Close()
	}
	c.conn.Raw(func(any) error {
		for _, st := range []oneStmt{c.one, c.many} {
			if st != nil {
				st.Close()
			}
		}
		return nil
	})
	c.one, c.many = nil, nil
	return c.conn.Close()
}

// Current reads the current revisions of oids (those that exist), through
// the driver directly, not database/sql (its per-query and per-row work cost
// about 1 us of 4 a load). One oid, a cold read's hot path, is one primary-key
// read; more, a prefetch's, are one statement whose parameter is the oids as
// a JSON array (json_each), each looked up by primary key: a prefetch of 500
// objects of 1.5 kB takes 1.8-1.9 us an object as one statement against
// 2.7-3.0 as 500 reads (BenchmarkCurrentMany, BenchmarkCurrentOneByOne),
// where an IN list would be a statement to parse every time. The statements belong to the driver
// connection c.conn holds for its lifetime.
func (c *loadConn) Current(ctx context.Context, oids []uint64) ([]adapter.Revision, error) {
	out := make([]adapter.Revision, 0, len(oids))
	err := c.conn.Raw(func(dc any) error {
		if len(oids) > 1 {
			if c.many == nil {
				st, err := sqlrow.Prepare(ctx, dc, c.q.currentMany)
				if err != nil {
					return err
				}
				c.many = st.(oneStmt)
			}
			var row [3]driver.Value
			return eachRow(ctx, c.many, oids, row[:], func() error {
				r, err := revisionOf(row)
				if err == nil {
					out = append(out, r)
				}
				return err
			})
		}
		if c.one == nil {
			st, err := sqlrow.Prepare(ctx, dc, c.q.current)
			if err != nil {
				return err
			}
			c.one = st.(oneStmt)
		}
		for _, oid := range oids {
			r, found, err := c.readOne(ctx, oid)
			if err != nil {
				return err
			}
			if found {
				out = append(out, r)
			}
		}
		return nil
	})
	return out, err
}

// jsonOids writes oids as a JSON array, the parameter of the statements that
// read many objects through json_each.
func jsonOids(oids []uint64) string {
	b := make([]byte, 0, 2+len(oids)*8)
	b = append(b, '[')
	for i, oid := range oids {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, oid, 10)
	}
	return string(append(b, ']'))
}

// eachRow runs q, a statement of the oids as one JSON array, and calls fn
// after reading each row into row.
func eachRow(ctx context.Context, q oneStmt, oids []uint64, row []driver.Value, fn func() error) error {
	rows, err := q.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: jsonOids(oids)}})
	if err != nil {
		return err
	}
	defer rows.Close()
	for {
		switch err := rows.Next(row); err {
		case io.EOF:
			return nil
		case nil:
			if err := fn(); err != nil {
				return err
			}
		default:
			return err
		}
	}
}

// rowOf runs q, a statement of one oid, and reads its first row into row;
// found is false when it has none.
func rowOf(ctx context.Context, q oneStmt, oid uint64, row []driver.Value) (found bool, err error) {
	rows, err := q.QueryContext(ctx, []driver.NamedValue{{Ordinal: 1, Value: int64(oid)}})
	if err != nil {
		return false, err
	}
	defer rows.Close()
	switch err := rows.Next(row); err {
	case io.EOF:
		return false, nil
	case nil:
		return true, nil
	default:
		return false, err
	}
}

// readOne runs the prepared load statement for oid.
func (c *loadConn) readOne(ctx context.Context, oid uint64) (adapter.Revision, bool, error) {
	var row [3]driver.Value
	if found, err := rowOf(ctx, c.one, oid, row[:]); !found {
		return adapter.Revision{}, false, err
	}
	r, err := revisionOf(row)
	return r, err == nil, err
}

// revisionOf reads a row of zoid, tid and state.
func revisionOf(row [3]driver.Value) (adapter.Revision, error) {
	zoid, ok1 := row[0].(int64)
	tid, ok2 := row[1].(int64)
	var state []byte // nil: NULL, the creation was undone
	switch v := row[2].(type) {
	case []byte: // the driver copies blobs out of SQLite's memory
		state = v
		if state == nil {
			state = []byte{}
		}
	case string:
		state = []byte(v)
	case nil:
	default:
		ok1 = false
	}
	if !ok1 || !ok2 {
		return adapter.Revision{}, fmt.Errorf("sqlite3: unexpected load row types %T %T %T", row[0], row[1], row[2])
	}
	return adapter.Revision{OID: uint64(zoid), TID: uint64(tid), State: state}, nil
}

// oneStmt is what a go-sqlite3 statement offers.
type oneStmt interface {
	driver.Stmt
	driver.StmtQueryContext
}

func (c *loadConn) LastTID(ctx context.Context) (uint64, error) {
	var tid uint64
	err := c.queryRow(ctx, c.q.lastTID).Scan(&tid)
	return tid, err
}

func (c *loadConn) Changes(ctx context.Context, after, upTo uint64, limit int) ([]adapter.Change, error) {
	rows, err := c.query(ctx, c.q.changes, int64(after), int64(upTo), limit)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []adapter.Change
	for rows.Next() {
		var ch adapter.Change
		if err := rows.Scan(&ch.OID, &ch.TID); err != nil {
			return nil, err
		}
		out = append(out, ch)
	}
	return out, rows.Err()
}

func scanRevisions(rows *sql.Rows, out []adapter.Revision) ([]adapter.Revision, error) {
	defer rows.Close()
	for rows.Next() {
		var r adapter.Revision
		if err := rows.Scan(&r.OID, &r.TID, &r.State); err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

const (
	sqlRevision  = `SELECT state FROM object_state WHERE zoid = ? AND tid = ?`
	sqlBefore    = `SELECT tid, state FROM object_state WHERE zoid = ? AND tid < ? ORDER BY tid DESC LIMIT 1`
	sqlNextAfter = `SELECT COALESCE(MIN(tid), 0) FROM object_state WHERE zoid = ? AND tid > ?`
	sqlExists    = `SELECT COUNT(*) FROM object_state WHERE zoid = ?`
	sqlHistoryHP = `SELECT o.tid, o.state_size, t.packed, t.username, t.description, t.extension
		FROM object_state o JOIN "transaction" t ON t.tid = o.tid
		WHERE o.zoid = ? ORDER BY o.tid DESC LIMIT ?`
	sqlHistoryHF  = `SELECT tid, state_size FROM object_state WHERE zoid = ?`
	sqlTxnRecords = `SELECT zoid, tid, state FROM object_state WHERE tid = ? ORDER BY zoid`
)

func (c *loadConn) Revision(ctx context.Context, oid, tid uint64) ([]byte, bool, error) {
	var state []byte
	err := c.queryRow(ctx, sqlRevision, int64(oid), int64(tid)).Scan(&state)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, false, nil
	}
	return state, err == nil, err
}

func (c *loadConn) Before(ctx context.Context, oid, before uint64) (adapter.Revision, uint64, bool, bool, error) {
	rev := adapter.Revision{OID: oid}
	err := c.queryRow(ctx, sqlBefore, int64(oid), int64(before)).Scan(&rev.TID, &rev.State)
	if errors.Is(err, sql.ErrNoRows) {
		var n int
		if err := c.queryRow(ctx, sqlExists, int64(oid)).Scan(&n); err != nil {
			return rev, 0, false, false, err
		}
		return rev, 0, false, n > 0, nil
	}
	if err != nil {
		return rev, 0, false, false, err
	}
	var end uint64
	if err := c.queryRow(ctx, sqlNextAfter, int64(oid), int64(rev.TID)).Scan(&end); err != nil {
		return rev, 0, false, false, err
	}
	return rev, end, true, true, nil
}

func (c *loadConn) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
	var out []adapter.HistoryEntry
	if !c.keepHistory {
		var h adapter.HistoryEntry
		err := c.queryRow(ctx, sqlHistoryHF, int64(oid)).Scan(&h.TID, &h.Size)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, nil
		}
		return append(out, h), err
	}
	rows, err := c.query(ctx, sqlHistoryHP, int64(oid), size)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var h adapter.HistoryEntry
		if err := rows.Scan(&h.TID, &h.Size, &h.Packed, &h.User, &h.Description, &h.Extension); err != nil {
			return nil, err
		}
		out = append(out, h)
	}
	return out, rows.Err()
}

func (c *loadConn) Transactions(ctx context.Context, q adapter.TxnQuery) ([]adapter.TxnInfo, error) {
	var sqlText string
	if c.keepHistory {
		sqlText = `SELECT tid, packed, username, description, extension FROM "transaction" WHERE tid > 0 AND tid >= ? AND tid <= ?`
		if q.SkipPacked {
			sqlText += ` AND packed = 0`
		}
	} else {
		sqlText = `SELECT DISTINCT tid, 0, x'', x'', x'' FROM object_state WHERE tid >= ? AND tid <= ?`
	}
	if q.NewestFirst {
		sqlText += ` ORDER BY tid DESC`
	} else {
		sqlText += ` ORDER BY tid`
	}
	sqlText += ` LIMIT ? OFFSET ?`
	rows, err := c.query(ctx, sqlText, int64(q.Start), int64(q.Stop), q.Limit, q.Offset)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []adapter.TxnInfo
	for rows.Next() {
		var t adapter.TxnInfo
		if err := rows.Scan(&t.TID, &t.Packed, &t.User, &t.Description, &t.Extension); err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

func (c *loadConn) TxnRecords(ctx context.Context, tid uint64) ([]adapter.Revision, error) {
	rows, err := c.query(ctx, sqlTxnRecords, int64(tid))
	if err != nil {
		return nil, err
	}
	return scanRevisions(rows, nil)
}

func (c *loadConn) CurrentFrom(ctx context.Context, start uint64, limit int) ([]adapter.Revision, error) {
	rows, err := c.query(ctx, c.q.currentFrom, int64(start), limit)
	if err != nil {
		return nil, err
	}
	return scanRevisions(rows, nil)
}
