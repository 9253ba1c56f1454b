package postgres

import (
	"context"
	"slices"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// loadConn reads through one REPEATABLE READ READ ONLY transaction: the
// snapshot is fixed by its first statement.
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
// would hold back VACUUM).
func (c *loadConn) End() { c.rollback() }

func (c *loadConn) Close() error {
	c.release()
	return nil
}

// run sends a batch in the snapshot, starting it if it has not started.
func (c *loadConn) run(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	return c.send(ctx, queue, read, func(err error) error { return c.d.wrap(c.conn, err) })
}

// query runs one statement in the snapshot and scans each row with scan.
func (c *loadConn) query(ctx context.Context, sql string, args []any, scan func(pgx.Rows) error) error {
	return c.run(ctx, func(b *pgx.Batch) { b.Queue(sql, args...) }, func(br pgx.BatchResults) error {
		return eachRow(br, scan)
	})
}

// eachRow reads the next result of a batch, scanning each row with scan.
func eachRow(br pgx.BatchResults, scan func(pgx.Rows) error) error {
	rows, err := br.Query()
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

func (c *loadConn) LastTID(ctx context.Context) (uint64, error) {
	var tid int64
	err := c.query(ctx, c.d.q.lastTID, nil, func(r pgx.Rows) error { return r.Scan(&tid) })
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
	err := c.run(ctx, func(b *pgx.Batch) {
		b.Queue(c.d.q.lastTID)
		b.Queue(c.d.q.changes, int64(after), int64(1<<63-1), limit)
		if load {
			b.Queue(c.d.q.current, int64(oid))
		}
	}, func(br pgx.BatchResults) error {
		changes, revs = changes[:0], revs[:0]
		if err := br.QueryRow().Scan(&last); err != nil {
			return err
		}
		var err error
		if changes, err = collectChanges(br.Query()); err != nil || !load {
			return err
		}
		return eachRow(br, scanRevision(&revs))
	})
	if err != nil || len(revs) == 0 {
		return uint64(last), changes, adapter.Revision{}, false, err
	}
	return uint64(last), changes, revs[0], true, nil
}

func collectChanges(rows pgx.Rows, err error) ([]adapter.Change, error) {
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []adapter.Change
	for rows.Next() {
		var oid, tid int64
		if err := rows.Scan(&oid, &tid); err != nil {
			return nil, err
		}
		out = append(out, adapter.Change{OID: uint64(oid), TID: uint64(tid)})
	}
	return out, rows.Err()
}

func (c *loadConn) Changes(ctx context.Context, after, upTo uint64, limit int) ([]adapter.Change, error) {
	var out []adapter.Change
	err := c.query(ctx, c.d.q.changes, []any{int64(after), int64(upTo), limit}, func(r pgx.Rows) error {
		return sqlrow.ScanChange(r, &out)
	})
	return out, err
}

func scanRevision(out *[]adapter.Revision) func(pgx.Rows) error {
	return func(r pgx.Rows) error { return sqlrow.ScanRevision(r, out) }
}

func (c *loadConn) Current(ctx context.Context, oids []uint64) ([]adapter.Revision, error) {
	out := make([]adapter.Revision, 0, len(oids))
	if len(oids) == 1 {
		err := c.query(ctx, c.d.q.current, []any{int64(oids[0])}, scanRevision(&out))
		return out, err
	}
	// Each oid once: the history-preserving statement joins from the array.
	ids := int64s(oids)
	slices.Sort(ids)
	err := c.query(ctx, c.d.q.currentAny, []any{slices.Compact(ids)}, scanRevision(&out))
	return out, err
}

func (c *loadConn) Revision(ctx context.Context, oid, tid uint64) ([]byte, bool, error) {
	var state []byte
	found := false
	err := c.query(ctx, sqlRevision, []any{int64(oid), int64(tid)}, func(r pgx.Rows) error {
		found = true
		return r.Scan(&state)
	})
	return state, found, err
}

func (c *loadConn) Before(ctx context.Context, oid, before uint64) (adapter.Revision, uint64, bool, bool, error) {
	rev := adapter.Revision{OID: oid}
	var tid, end int64
	found, exists := false, false
	err := c.run(ctx, func(b *pgx.Batch) {
		b.Queue(sqlBefore, int64(oid), int64(before))
		b.Queue(sqlExists, int64(oid))
	}, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		for rows.Next() {
			found = true
			if err := rows.Scan(&tid, &rev.State, &end); err != nil {
				rows.Close()
				return err
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&exists)
	})
	rev.TID = uint64(tid)
	return rev, uint64(end), found, exists, err
}

func (c *loadConn) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
	var out []adapter.HistoryEntry
	if !c.d.settings.KeepHistory {
		err := c.query(ctx, sqlHistoryHF, []any{int64(oid)}, func(r pgx.Rows) error {
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
	err := c.query(ctx, sqlHistoryHP, []any{int64(oid), size}, func(r pgx.Rows) error {
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
	var sqlText string
	if c.d.settings.KeepHistory {
		sqlText = `SELECT tid, packed, username, description, COALESCE(extension, ''::bytea) FROM transaction
			WHERE tid > 0 AND tid >= $1 AND tid <= $2`
		if q.SkipPacked {
			sqlText += ` AND NOT packed`
		}
	} else {
		sqlText = `SELECT DISTINCT tid, false, ''::bytea, ''::bytea, ''::bytea FROM object_state WHERE tid >= $1 AND tid <= $2`
	}
	if q.NewestFirst {
		sqlText += ` ORDER BY tid DESC`
	} else {
		sqlText += ` ORDER BY tid`
	}
	sqlText += ` LIMIT $3 OFFSET $4`
	var out []adapter.TxnInfo
	err := c.query(ctx, sqlText, []any{int64(q.Start), sqlrow.BoundTID(q.Stop), q.Limit, q.Offset}, func(r pgx.Rows) error {
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
	err := c.query(ctx, sqlTxnRecords, []any{int64(tid)}, scanRevision(&out))
	return out, err
}

func (c *loadConn) CurrentFrom(ctx context.Context, start uint64, limit int) ([]adapter.Revision, error) {
	var out []adapter.Revision
	err := c.query(ctx, c.d.q.currentFrom, []any{int64(start), limit}, scanRevision(&out))
	return out, err
}
