package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// storeConn commits through one pooled READ COMMITTED connection whose
// lock_timeout is commit-lock-timeout. A commit takes three round trips
// whatever its size:
//
//  1. vote: BEGIN, readCurrent shared locks, exclusive locks on the modified
//     objects (advisory, by zoid, in zoid order, as RelStorage takes them),
//     and their current tids, read after the locks;
//  2. finish: the commit lock (advisory -1), the newest tid, the server clock
//     and the transaction's id;
//  3. finish: the rows (arrays bound to one INSERT each) and COMMIT.
//
// A vote with conflicts adds one round trip to read the committed states.
// When the connection is lost after COMMIT was sent, the transaction's id
// tells a new connection whether it committed (commitOutcome).
type storeConn struct {
	d *dialect
	session
	moved *pgx.Batch        // the writes, sent with COMMIT
	xid   int64             // txid_current() of the write transaction, read with the commit lock
	pid   uint32            // the server process running it
	blobs map[uint64]uint32 // large objects staged in the write transaction, by oid
}

func (c *storeConn) BeginCommit(ctx context.Context) error {
	if c.pending || c.inTxn {
		return errors.New("postgresql: commit already begun")
	}
	c.pending = true
	return nil
}

// run sends a batch inside the write transaction, starting it if it has not started.
func (c *storeConn) run(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error) error {
	return c.send(ctx, queue, read, c.classify)
}

// classify turns a failed readCurrent lock into a read conflict on its oid.
func (c *storeConn) classify(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "22P02" {
		if i := strings.Index(pgErr.Message, readCurrentMarker); i >= 0 {
			digits := strings.TrimRight(pgErr.Message[i+len(readCurrentMarker):], `"`)
			if oid, perr := strconv.ParseUint(digits, 10, 64); perr == nil {
				return &adapter.ReadCurrentLockedError{OID: oid}
			}
		}
	}
	return c.d.wrap(c.conn, err)
}

func (c *storeConn) LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error) {
	current := make(map[uint64]uint64, len(readCurrent)+len(modified))
	all := make([]int64, 0, len(readCurrent)+len(modified))
	all = append(append(all, int64s(readCurrent)...), int64s(modified)...)
	err := c.run(ctx, func(b *pgx.Batch) {
		if len(readCurrent) > 0 {
			b.Queue(sqlLockShared, int64s(readCurrent))
		}
		if len(modified) > 0 {
			b.Queue(c.d.q.lockObjects, int64s(modified))
		}
		// A statement of its own: in READ COMMITTED it sees what was
		// committed before the locks were granted.
		b.Queue(c.d.q.currentTIDs, all)
	}, func(br pgx.BatchResults) error {
		if len(readCurrent) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		if len(modified) > 0 {
			if _, err := br.Exec(); err != nil {
				return err
			}
		}
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var oid, tid int64
			if err := rows.Scan(&oid, &tid); err != nil {
				return err
			}
			current[uint64(oid)] = uint64(tid)
		}
		return rows.Err()
	})
	return current, err
}

func (c *storeConn) States(ctx context.Context, oids []uint64) (map[uint64]adapter.Revision, error) {
	out := make(map[uint64]adapter.Revision, len(oids))
	err := c.run(ctx, func(b *pgx.Batch) { b.Queue(c.d.q.currentAny, int64s(oids)) }, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var oid, tid int64
			var state []byte
			if err := rows.Scan(&oid, &tid, &state); err != nil {
				return err
			}
			out[uint64(oid)] = adapter.Revision{OID: uint64(oid), TID: uint64(tid), State: state}
		}
		return rows.Err()
	})
	return out, err
}

// LockCommit takes RelStorage's commit lock, advisory lock -1, then reads
// the newest tid and the server's clock in a second statement, which sees
// every transaction committed before the lock was granted.
func (c *storeConn) LockCommit(ctx context.Context) (uint64, time.Time, error) {
	var last int64
	var now time.Time
	c.xid = 0
	err := c.run(ctx, func(b *pgx.Batch) {
		b.Queue(sqlCommitLock)
		b.Queue(`SELECT (` + c.d.q.lastTID + `), clock_timestamp(), txid_current()`)
	}, func(br pgx.BatchResults) error {
		if _, err := br.Exec(); err != nil {
			return err
		}
		return br.QueryRow().Scan(&last, &now, &c.xid)
	})
	if err == nil {
		c.pid = c.conn.PgConn().PID()
	}
	return uint64(last), now, err
}

// Move queues the writes; Commit sends them with COMMIT in one round trip.
func (c *storeConn) Move(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if !c.inTxn {
		return errors.New("postgresql: move outside a write transaction")
	}
	b := &pgx.Batch{}
	if c.d.settings.KeepHistory {
		b.Queue(sqlInsertTxn, int64(tid), meta.Packed, len(writes) == 0,
			sqlrow.NonNil(meta.User), sqlrow.NonNil(meta.Description), sqlrow.NonNil(meta.Extension))
		if len(writes) > 0 {
			oids := make([]int64, len(writes))
			prev := make([]int64, len(writes))
			sums := make([]*string, len(writes))
			states := make(byteaArray, len(writes))
			var created, existing []int64 // current_object rows to insert, to upsert
			for i, w := range writes {
				oids[i], prev[i], states[i] = int64(w.OID), int64(w.PrevTID), w.State
				if w.MD5 != nil {
					s := string(w.MD5)
					sums[i] = &s
				}
				if w.PrevTID == 0 {
					created = append(created, oids[i])
				} else {
					existing = append(existing, oids[i])
				}
			}
			b.Queue(sqlInsertStatesHP, int64(tid), oids, prev, sums, states)
			if len(created) > 0 {
				b.Queue(sqlInsertCurrent, int64(tid), created)
			}
			if len(existing) > 0 {
				b.Queue(sqlUpsertCurrent, int64(tid), existing)
			}
		}
	} else {
		// Objects without a row at lock time are inserted (nothing else can create
		// them: their oids were issued to this transaction, or a restore's duplicate
		// fails here), the others, locked since the vote, upserted.
		var newOIDs, upOIDs, delOIDs []int64
		var newStates, upStates byteaArray
		for _, w := range writes {
			switch {
			case w.State == nil:
				delOIDs = append(delOIDs, int64(w.OID))
			case w.PrevTID == 0:
				newOIDs = append(newOIDs, int64(w.OID))
				newStates = append(newStates, w.State)
			default:
				upOIDs = append(upOIDs, int64(w.OID))
				upStates = append(upStates, w.State)
			}
		}
		if len(newOIDs) > 0 {
			b.Queue(sqlInsertStatesHF, int64(tid), newOIDs, newStates)
		}
		if len(upOIDs) > 0 {
			b.Queue(sqlUpsertStatesHF, int64(tid), upOIDs, upStates)
		}
		if len(delOIDs) > 0 {
			b.Queue(sqlDeleteHF, delOIDs)
		}
	}
	if err := c.queueBlobs(b, tid, writes); err != nil {
		return err
	}
	c.moved = b
	return nil
}

func (c *storeConn) Commit(ctx context.Context) error {
	if !c.inTxn {
		return errors.New("postgresql: commit without a transaction")
	}
	b := c.moved
	if b == nil {
		b = &pgx.Batch{}
	}
	c.moved = nil
	n := b.Len()
	b.Queue("COMMIT")
	br := c.conn.SendBatch(ctx, b)
	var err error
	for i := 0; i <= n && err == nil; i++ {
		var tag pgconn.CommandTag
		tag, err = br.Exec()
		if err == nil && i == n && tag.String() != "COMMIT" {
			err = fmt.Errorf("postgresql: the transaction was rolled back (%s)", tag)
		}
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		lost := isDisconnect(c.conn, err)
		server := serverConfig(c.pool.config, c.conn) // the outcome is the server's that ran it
		c.Rollback()
		if lost && c.xid != 0 {
			return c.d.commitOutcome(ctx, server, c.xid, c.pid, c.classify(err))
		}
		return c.classify(err)
	}
	c.inTxn, c.blobs = false, nil
	return nil
}

func (c *storeConn) Rollback() {
	c.moved, c.blobs = nil, nil
	c.rollback()
}

// UndoPlan holds RelStorage's pack lock shared until the undo's transaction
// ends: no pack runs while an undo reads and copies what the pack removes.
func (c *storeConn) UndoPlan(ctx context.Context, tid uint64) ([]adapter.UndoItem, bool, error) {
	var packed, found, unlocked bool
	var items []adapter.UndoItem
	err := c.run(ctx, func(b *pgx.Batch) {
		b.Queue(sqlUndoPackLock)
		b.Queue(sqlUndoTxn, int64(tid))
		b.Queue(sqlUndoPlan, int64(tid))
	}, func(br pgx.BatchResults) error {
		var locked bool
		if err := br.QueryRow().Scan(&locked); err != nil {
			return err
		}
		if !locked {
			unlocked = true
			return nil
		}
		err := br.QueryRow().Scan(&packed)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil // Close reads the plan's empty result
		}
		if err != nil {
			return err
		}
		found = true
		rows, err := br.Query()
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			it, err := sqlrow.ScanUndoItem(rows)
			if err != nil {
				return err
			}
			items = append(items, it)
		}
		return rows.Err()
	})
	if unlocked && err == nil {
		err = errors.New("a pack is in progress")
	}
	if err != nil || !found || packed {
		return nil, false, err
	}
	return items, true, nil
}

func (c *storeConn) Close() error {
	c.moved = nil
	c.release()
	return nil
}

const (
	sqlInsertTxns = `INSERT INTO transaction (tid, packed, is_empty, username, description, extension)
		SELECT * FROM unnest($1::bigint[], $2::bool[], $3::bool[], $4::bytea[], $5::bytea[], $6::bytea[])`
	sqlInsertManyStatesHP = `INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state)
		SELECT zoid, tid, prev_tid, md5, COALESCE(octet_length(state), 0), state
		FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) AS w(zoid, tid, prev_tid, md5, state)`
	sqlUpsertManyCurrent = `INSERT INTO current_object (zoid, tid) SELECT * FROM unnest($1::bigint[], $2::bigint[])
		ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid`
	sqlUpsertManyStatesHF = `INSERT INTO object_state (zoid, tid, state_size, state)
		SELECT zoid, tid, octet_length(state), state FROM unnest($1::bigint[], $2::bigint[], $3::bytea[]) AS w(zoid, tid, state)
		ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid, state_size = excluded.state_size, state = excluded.state`
)

// MoveMany implements adapter.ManyMover: arrays bound to one statement per
// table for the whole batch, queued for Commit. History-free, only each
// object's last write matters.
func (c *storeConn) MoveMany(ctx context.Context, txns []adapter.MovedTxn) error {
	if !c.inTxn {
		return errors.New("postgresql: move outside a write transaction")
	}
	b := &pgx.Batch{}
	last := map[uint64]int{} // oid -> index in the flattened writes of its last write
	var flat []adapter.Write
	var tids []int64
	for _, t := range txns {
		for _, w := range t.Writes {
			last[w.OID] = len(flat)
			flat = append(flat, w)
			tids = append(tids, int64(t.Meta.TID))
		}
	}
	if c.d.settings.KeepHistory {
		n := len(txns)
		txnTIDs, packed, empty := make([]int64, n), make([]bool, n), make([]bool, n)
		users, descs, exts := make(byteaArray, n), make(byteaArray, n), make(byteaArray, n)
		for i, t := range txns {
			txnTIDs[i], packed[i], empty[i] = int64(t.Meta.TID), t.Meta.Packed, len(t.Writes) == 0
			users[i], descs[i], exts[i] = sqlrow.NonNil(t.Meta.User), sqlrow.NonNil(t.Meta.Description), sqlrow.NonNil(t.Meta.Extension)
		}
		b.Queue(sqlInsertTxns, txnTIDs, packed, empty, users, descs, exts)
		if len(flat) > 0 {
			oids, prev := make([]int64, len(flat)), make([]int64, len(flat))
			sums, states := make([]*string, len(flat)), make(byteaArray, len(flat))
			for i, w := range flat {
				oids[i], prev[i], states[i] = int64(w.OID), int64(w.PrevTID), w.State
				if w.MD5 != nil {
					s := string(w.MD5)
					sums[i] = &s
				}
			}
			b.Queue(sqlInsertManyStatesHP, oids, tids, prev, sums, states)
			curOIDs, curTIDs := make([]int64, 0, len(last)), make([]int64, 0, len(last))
			for oid, i := range last {
				curOIDs, curTIDs = append(curOIDs, int64(oid)), append(curTIDs, tids[i])
			}
			b.Queue(sqlUpsertManyCurrent, curOIDs, curTIDs)
		}
	} else {
		var upOIDs, upTIDs, delOIDs []int64
		var states byteaArray
		for oid, i := range last {
			if flat[i].State == nil {
				delOIDs = append(delOIDs, int64(oid))
			} else {
				upOIDs, upTIDs, states = append(upOIDs, int64(oid)), append(upTIDs, tids[i]), append(states, flat[i].State)
			}
		}
		if len(upOIDs) > 0 {
			b.Queue(sqlUpsertManyStatesHF, upOIDs, upTIDs, states)
		}
		if len(delOIDs) > 0 {
			b.Queue(sqlDeleteHF, delOIDs)
		}
	}
	c.moved = b
	return nil
}
