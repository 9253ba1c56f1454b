package mysql

import (
	"context"
	"database/sql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// loadConn reads through one REPEATABLE READ transaction started READ ONLY
// WITH CONSISTENT SNAPSHOT.
type loadConn struct {
	d *dialect
	session
}

// Begin starts a snapshot with the next query; a snapshot still open ends
// in that query too.
func (c *loadConn) Begin(ctx context.Context) error {
	c.pending = true
	return nil
}

// EndsWithNextBegin: Begin ends the open snapshot itself (LateEnder).
func (c *loadConn) EndsWithNextBegin() {}

// End ends the snapshot at once. The instance calls it when no new snapshot
// (whose Begin would end this one) follows within a few milliseconds, so an
// idle ZODB connection never holds one open on the server for long (that
// would hold back InnoDB's purge).
func (c *loadConn) End() { c.rollback() }

func (c *loadConn) Close() error {
	c.release()
	return nil
}

// run sends a script in the snapshot, starting it if it has not started.
func (c *loadConn) run(ctx context.Context, s *script, read func(*resultSets) error) error {
	err := c.query(ctx, s, func(rows *sql.Rows) error { return read(newResultSets(rows)) })
	return c.d.wrap(err)
}

// rows runs one statement in the snapshot and scans each row with scan.
func (c *loadConn) rows(ctx context.Context, stmt string, args []any, scan func(*sql.Rows) error) error {
	s := &script{}
	s.add(stmt, args...)
	return c.run(ctx, s, func(r *resultSets) error { return r.next(scan) })
}

func (c *loadConn) LastTID(ctx context.Context) (uint64, error) {
	var tid int64
	err := c.rows(ctx, c.d.q.lastTID, nil, func(r *sql.Rows) error { return r.Scan(&tid) })
	return uint64(tid), err
}

// BeginPoll starts a snapshot and reads its newest tid and the changes
// after `after` in one round trip.
func (c *loadConn) BeginPoll(ctx context.Context, after uint64, limit int) (uint64, []adapter.Change, error) {
	last, changes, _, _, err := c.beginPoll(ctx, after, limit, 0, false)
	return last, changes, err
}

// BeginPollLoad is BeginPoll with oid's current revision read in the same
// round trip, in the new snapshot.
func (c *loadConn) BeginPollLoad(ctx context.Context, after uint64, limit int, oid uint64) (
	uint64, []adapter.Change, adapter.Revision, bool, error) {
	return c.beginPoll(ctx, after, limit, oid, true)
}

// beginPoll is BeginPoll, and BeginPollLoad when load is set.
func (c *loadConn) beginPoll(ctx context.Context, after uint64, limit int, oid uint64, load bool) (
	uint64, []adapter.Change, adapter.Revision, bool, error) {
	if err := c.Begin(ctx); err != nil {
		return 0, nil, adapter.Revision{}, false, err
	}
	var last int64
	var changes []adapter.Change
	var revs []adapter.Revision
	s := &script{}
	s.add(c.d.q.lastTID)
	s.add(c.d.q.changes, int64(after), int64(1<<63-1), limit)
	if load {
		s.add(c.d.q.current, int64(oid))
	}
	err := c.run(ctx, s, func(r *resultSets) error {
		changes, revs = changes[:0], revs[:0]
		if err := r.next(func(rows *sql.Rows) error { return rows.Scan(&last) }); err != nil {
			return err
		}
		if err := r.next(scanChange(&changes)); err != nil || !load {
			return err
		}
		return r.next(scanRevision(&revs))
	})
	if err != nil || len(revs) == 0 {
		return uint64(last), changes, adapter.Revision{}, false, err
	}
	return uint64(last), changes, revs[0], true, nil
}

func scanChange(out *[]adapter.Change) func(*sql.Rows) error {
	return func(r *sql.Rows) error { return sqlrow.ScanChange(r, out) }
}

func (c *loadConn) Changes(ctx context.Context, after, upTo uint64, limit int) ([]adapter.Change, error) {
	var out []adapter.Change
	err := c.rows(ctx, c.d.q.changes, []any{int64(after), sqlrow.BoundTID(upTo), limit}, scanChange(&out))
	return out, err
}

func scanRevision(out *[]adapter.Revision) func(*sql.Rows) error {
	return func(r *sql.Rows) error { return sqlrow.ScanRevision(r, out) }
}

// inChunk is the most oids one IN list carries.
const inChunk = 10000

func (c *loadConn) Current(ctx context.Context, oids []uint64) ([]adapter.Revision, error) {
	out := make([]adapter.Revision, 0, len(oids))
	if len(oids) == 1 {
		err := c.rows(ctx, c.d.q.current, []any{int64(oids[0])}, scanRevision(&out))
		return out, err
	}
	for start := 0; start < len(oids); start += inChunk {
		part := oids[start:min(len(oids), start+inChunk)]
		if err := c.rows(ctx, c.d.q.currentIn+in(len(part)), sqlrow.Int64Args(part), scanRevision(&out)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *loadConn) Revision(ctx context.Context, oid, tid uint64) ([]byte, bool, error) {
	var state []byte
	found := false
	err := c.rows(ctx, sqlRevision, []any{int64(oid), int64(tid)}, func(r *sql.Rows) error {
		found = true
		return r.Scan(&state)
	})
	return state, found, err
}

func (c *loadConn) Before(ctx context.Context, oid, before uint64) (adapter.Revision, uint64, bool, bool, error) {
	rev := adapter.Revision{OID: oid}
	var tid, end int64
	found, exists := false, false
	s := &script{}
	s.add(sqlBefore, int64(oid), sqlrow.BoundTID(before))
	s.add(sqlExists, int64(oid))
	err := c.run(ctx, s, func(r *resultSets) error {
		if err := r.next(func(rows *sql.Rows) error {
			found = true
			return rows.Scan(&tid, &rev.State, &end)
		}); err != nil {
			return err
		}
		return r.next(func(rows *sql.Rows) error { return rows.Scan(&exists) })
	})
	rev.TID = uint64(tid)
	return rev, uint64(end), found, exists, err
}

func (c *loadConn) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
	var out []adapter.HistoryEntry
	if !c.d.settings.KeepHistory {
		err := c.rows(ctx, sqlHistoryHF, []any{int64(oid)}, func(r *sql.Rows) error {
			var h adapter.HistoryEntry
			var tid int64
			if err := r.Scan(&tid, &h.Size); err != nil {
				return err
			}
			h.TID = uint64(tid)
			out = append(out, h)
			return nil
		})
		return out, err
	}
	err := c.rows(ctx, sqlHistoryHP, []any{int64(oid), size}, func(r *sql.Rows) error {
		var h adapter.HistoryEntry
		var tid int64
		if err := r.Scan(&tid, &h.Size, &h.Packed, &h.User, &h.Description, &h.Extension); err != nil {
			return err
		}
		h.TID = uint64(tid)
		out = append(out, h)
		return nil
	})
	return out, err
}

func (c *loadConn) Transactions(ctx context.Context, q adapter.TxnQuery) ([]adapter.TxnInfo, error) {
	var text string
	if c.d.settings.KeepHistory {
		text = `SELECT tid, packed, username, description, COALESCE(extension, '') FROM transaction
			WHERE tid > 0 AND tid >= ? AND tid <= ?`
		if q.SkipPacked {
			text += ` AND NOT packed`
		}
	} else {
		text = `SELECT DISTINCT tid, 0, '', '', '' FROM object_state WHERE tid >= ? AND tid <= ?`
	}
	if q.NewestFirst {
		text += ` ORDER BY tid DESC`
	} else {
		text += ` ORDER BY tid`
	}
	text += ` LIMIT ? OFFSET ?`
	limit := q.Limit
	if limit <= 0 {
		limit = 1<<31 - 1
	}
	var out []adapter.TxnInfo
	err := c.rows(ctx, text, []any{int64(q.Start), sqlrow.BoundTID(q.Stop), limit, q.Offset}, func(r *sql.Rows) error {
		var t adapter.TxnInfo
		var tid int64
		if err := r.Scan(&tid, &t.Packed, &t.User, &t.Description, &t.Extension); err != nil {
			return err
		}
		t.TID = uint64(tid)
		out = append(out, t)
		return nil
	})
	return out, err
}

func (c *loadConn) TxnRecords(ctx context.Context, tid uint64) ([]adapter.Revision, error) {
	var out []adapter.Revision
	err := c.rows(ctx, sqlTxnRecords, []any{int64(tid)}, scanRevision(&out))
	return out, err
}

func (c *loadConn) CurrentFrom(ctx context.Context, start uint64, limit int) ([]adapter.Revision, error) {
	var out []adapter.Revision
	err := c.rows(ctx, c.d.q.currentFrom, []any{int64(start), limit}, scanRevision(&out))
	return out, err
}
