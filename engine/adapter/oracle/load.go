package oracle

import (
	"context"
	"database/sql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// sqlReadOnly starts a snapshot: every query of a read-only transaction
// sees the database as it was when the transaction began.
const sqlReadOnly = `SET TRANSACTION READ ONLY`

// loadConn reads through one read-only transaction per snapshot, started
// with the snapshot's first query.
type loadConn struct {
	session
	pendingSnapshot bool
}

// loadConn's pending snapshot: Begin marks it, the first query starts it.
func (c *loadConn) Begin(ctx context.Context) error {
	c.end()
	c.pendingSnapshot = true
	return nil
}

// End ends the snapshot at once, so an idle ZODB connection holds no
// read-only transaction open on the server.
func (c *loadConn) End() {
	c.pendingSnapshot = false
	c.end()
}

func (c *loadConn) Close() error {
	c.pendingSnapshot = false
	c.release()
	return nil
}

// prepare starts the pending snapshot.
func (c *loadConn) prepare(ctx context.Context) error {
	if !c.pendingSnapshot {
		return nil
	}
	c.pendingSnapshot = false
	return c.begin(ctx, c.d.load, &sql.TxOptions{ReadOnly: true}, sqlReadOnly)
}

// query runs the statements in the snapshot (or, outside one, on the latest state).
func (c *loadConn) query(ctx context.Context, scan func(*sql.Rows) error, stmts ...stmt) error {
	if err := c.prepare(ctx); err != nil {
		return err
	}
	for _, st := range stmts {
		if err := c.rows(ctx, st, scan); err != nil {
			return c.d.wrap(err)
		}
	}
	return nil
}

func (c *loadConn) LastTID(ctx context.Context) (uint64, error) {
	var tid int64
	err := c.query(ctx, func(r *sql.Rows) error { return r.Scan(&tid) }, stmt{text: c.d.q.lastTID()})
	return uint64(tid), err
}

// BeginPoll starts a snapshot and reads its newest tid and the changes
// after `after` with one query.
func (c *loadConn) BeginPoll(ctx context.Context, after uint64, limit int) (uint64, []adapter.Change, error) {
	if err := c.Begin(ctx); err != nil {
		return 0, nil, err
	}
	var last uint64
	var changes []adapter.Change
	err := c.query(ctx, func(r *sql.Rows) error {
		var oid, tid int64
		if err := r.Scan(&oid, &tid); err != nil {
			return err
		}
		if oid == pollMarker {
			last = uint64(tid)
		} else {
			changes = append(changes, adapter.Change{OID: uint64(oid), TID: uint64(tid)})
		}
		return nil
	}, c.d.q.poll(after, 1<<63-1, limit))
	return last, changes, err
}

func scanChange(out *[]adapter.Change) func(*sql.Rows) error {
	return func(r *sql.Rows) error { return sqlrow.ScanChange(r, out) }
}

func (c *loadConn) Changes(ctx context.Context, after, upTo uint64, limit int) ([]adapter.Change, error) {
	var out []adapter.Change
	err := c.query(ctx, scanChange(&out), c.d.q.changes(after, upTo, limit))
	return out, err
}

func scanRevision(out *[]adapter.Revision) func(*sql.Rows) error {
	return func(r *sql.Rows) error { return sqlrow.ScanRevision(r, out) }
}

func (c *loadConn) Current(ctx context.Context, oids []uint64) ([]adapter.Revision, error) {
	out := make([]adapter.Revision, 0, len(oids))
	err := c.query(ctx, scanRevision(&out), c.d.q.current(oids)...)
	return out, err
}

func (c *loadConn) Revision(ctx context.Context, oid, tid uint64) ([]byte, bool, error) {
	var state []byte
	found := false
	err := c.query(ctx, func(r *sql.Rows) error {
		found = true
		return r.Scan(&state)
	}, c.d.q.revision(oid, tid))
	return state, found, err
}

func (c *loadConn) Before(ctx context.Context, oid, before uint64) (adapter.Revision, uint64, bool, bool, error) {
	rev := adapter.Revision{OID: oid}
	var tid, end int64
	found := false
	err := c.query(ctx, func(r *sql.Rows) error {
		found = true
		return r.Scan(&tid, &rev.State, &end)
	}, c.d.q.before(oid, before))
	if err != nil || found {
		rev.TID = uint64(tid)
		return rev, uint64(end), found, found, err
	}
	var n int64
	err = c.query(ctx, func(r *sql.Rows) error { return r.Scan(&n) }, c.d.q.exists(oid))
	return rev, 0, false, n > 0, err
}

func (c *loadConn) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
	var out []adapter.HistoryEntry
	keep := c.d.settings.KeepHistory
	err := c.query(ctx, func(r *sql.Rows) error {
		var h adapter.HistoryEntry
		var tid, packed int64
		var err error
		if keep {
			err = r.Scan(&tid, &h.Size, &packed, &h.User, &h.Description, &h.Extension)
		} else {
			err = r.Scan(&tid, &h.Size)
		}
		h.TID, h.Packed = uint64(tid), packed == 1
		out = append(out, h)
		return err
	}, c.d.q.history(oid, size))
	return out, err
}

func (c *loadConn) Transactions(ctx context.Context, q adapter.TxnQuery) ([]adapter.TxnInfo, error) {
	var out []adapter.TxnInfo
	keep := c.d.settings.KeepHistory
	err := c.query(ctx, func(r *sql.Rows) error {
		var t adapter.TxnInfo
		var tid, packed int64
		var err error
		if keep {
			err = r.Scan(&tid, &packed, &t.User, &t.Description, &t.Extension)
		} else {
			err = r.Scan(&tid)
		}
		t.TID, t.Packed = uint64(tid), packed == 1
		out = append(out, t)
		return err
	}, c.d.q.transactions(q))
	return out, err
}

func (c *loadConn) TxnRecords(ctx context.Context, tid uint64) ([]adapter.Revision, error) {
	var out []adapter.Revision
	err := c.query(ctx, scanRevision(&out), c.d.q.txnRecords(tid))
	return out, err
}

func (c *loadConn) CurrentFrom(ctx context.Context, start uint64, limit int) ([]adapter.Revision, error) {
	var out []adapter.Revision
	err := c.query(ctx, scanRevision(&out), c.d.q.currentFrom(start, limit))
	return out, err
}
