package mysql

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// storeConn commits through one pooled READ COMMITTED connection whose
// innodb_lock_wait_timeout is commit-lock-timeout. A commit of fewer than
// bulkMinRows objects takes three round trips (as long as it fits in
// max_allowed_packet):
//
//  1. vote: START TRANSACTION, a shared NOWAIT lock on each readCurrent row,
//     then the modified objects' rows FOR UPDATE in oid order, which also
//     returns their current tids;
//  2. finish: the commit_row_lock row FOR UPDATE, the newest tid and the
//     server clock;
//  3. finish: the rows (multi-row INSERTs) and COMMIT.
//
// A larger one sends its rows as executions of prepared statements before
// COMMIT (bulk.go). A vote with conflicts adds one round trip to read the
// committed states.
//
// When the connection is lost while the query carrying COMMIT is out, a new
// connection finds out whether the transaction landed (commitOutcome).
type storeConn struct {
	d *dialect
	session
	moved       []*script // the writes, sent with COMMIT
	connID      int64     // the server's id of this connection, read with the commit lock
	server      string    // with replica-conf, the host:port of the connection's server, read with connID
	tid         uint64    // what Move wrote
	writes      []adapter.Write
	staged      map[uint64]bool   // oids whose blobs wait in temp_blob_chunk; nil before the first
	insertChunk *sql.Stmt         // prepared for staging, for the transaction
	insertBlobs map[int]*sql.Stmt // prepared for staging n small blobs, for the transaction
}

func (c *storeConn) BeginCommit(ctx context.Context) error {
	if c.pending || c.inTxn {
		return errors.New("mysql: commit already begun")
	}
	c.pending = true
	return nil
}

func (c *storeConn) LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error) {
	current := make(map[uint64]uint64, len(readCurrent)+len(modified))
	s := &script{}
	// One statement per readCurrent oid: when a lock is refused the
	// statement that failed names the object.
	for _, oid := range readCurrent {
		s.add(c.d.q.lockShared, int64(oid))
	}
	if len(modified) > 0 {
		s.add(c.d.q.lockModified+in(len(modified))+lockModifiedEnd, sqlrow.Int64Args(modified)...)
	}
	if s.empty() {
		s.add(`DO 0`)
	}
	done := 0 // readCurrent statements read
	err := c.query(ctx, s, func(rows *sql.Rows) error {
		r := newResultSets(rows)
		scan := func(rows *sql.Rows) error {
			var oid, tid int64
			if err := rows.Scan(&oid, &tid); err != nil {
				return err
			}
			current[uint64(oid)] = uint64(tid)
			return nil
		}
		for range readCurrent {
			if err := r.next(scan); err != nil {
				return err
			}
			done++
		}
		if len(modified) > 0 {
			return r.next(scan)
		}
		return nil
	})
	if err != nil {
		if done < len(readCurrent) && isLockFailure(err) {
			return nil, &adapter.ReadCurrentLockedError{OID: readCurrent[done]}
		}
		return nil, c.d.wrap(err)
	}
	return current, nil
}

// isLockFailure tells whether a lock was refused (NOWAIT) or timed out.
func isLockFailure(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == errLockNowait || myErr.Number == errLockWaitTimeout)
}

func (c *storeConn) States(ctx context.Context, oids []uint64) (map[uint64]adapter.Revision, error) {
	out := make(map[uint64]adapter.Revision, len(oids))
	var revs []adapter.Revision
	for start := 0; start < len(oids); start += inChunk {
		part := oids[start:min(len(oids), start+inChunk)]
		s := &script{}
		s.add(c.d.q.currentIn+in(len(part)), sqlrow.Int64Args(part)...)
		err := c.query(ctx, s, func(rows *sql.Rows) error { return newResultSets(rows).next(scanRevision(&revs)) })
		if err != nil {
			return nil, c.d.wrap(err)
		}
	}
	for _, r := range revs {
		out[r.OID] = r
	}
	return out, nil
}

// LockCommit takes RelStorage's commit lock, the commit_row_lock row FOR
// UPDATE, then reads the newest tid and the server's UTC clock in a second
// statement, which sees every transaction committed before the lock was granted.
func (c *storeConn) LockCommit(ctx context.Context) (uint64, time.Time, error) {
	var last int64
	var now string
	s := &script{}
	s.add(sqlCommitLock)
	s.add(`SELECT (` + c.d.q.lastTID + `), ` + sqlServerNow + `, CONNECTION_ID()`)
	err := c.query(ctx, s, func(rows *sql.Rows) error {
		r := newResultSets(rows)
		if err := r.next(func(*sql.Rows) error { return nil }); err != nil {
			return err
		}
		return r.next(func(rows *sql.Rows) error { return rows.Scan(&last, &now, &c.connID) })
	})
	if err != nil {
		return 0, time.Time{}, c.d.wrap(err)
	}
	if c.d.replicas != nil {
		c.server = replicalist.EntryOf(c.conn)
	}
	t, err := time.ParseInLocation("2006-01-02 15:04:05.999999", now, time.UTC)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("mysql: cannot read the server clock %q: %w", now, err)
	}
	return uint64(last), t, nil
}

// Move builds the writes; Commit sends them with COMMIT, in one round trip
// unless they exceed max_allowed_packet, in which case they are split into
// as many queries as needed, or are many (bulkWrites), in which case they go
// as prepared executions first.
func (c *storeConn) Move(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if !c.inTxn {
		return errors.New("mysql: move outside a write transaction")
	}
	b := &batcher{limit: c.d.maxQuery}
	size := 0
	for _, w := range writes {
		size += len(w.State)
	}
	bulk := bulkWrites(len(writes), size)
	if c.d.settings.KeepHistory {
		b.statement(sqlInsertTxn, int64(tid), meta.Packed, len(writes) == 0,
			sqlrow.NonNil(meta.User), sqlrow.NonNil(meta.Description), sqlrow.NonNil(meta.Extension))
		states := make([][]any, len(writes))
		current := make([][]any, len(writes))
		for i, w := range writes {
			var md5 any
			if w.MD5 != nil {
				md5 = string(w.MD5)
			}
			states[i] = []any{int64(w.OID), int64(tid), int64(w.PrevTID), md5, len(w.State), w.State}
			current[i] = []any{int64(w.OID), int64(tid)}
		}
		b.rowsOf(bulk, sqlInsertStatesHP, "(?, ?, ?, ?, ?, ?)", "", states)
		b.rowsOf(bulk, sqlInsertCurrent, "(?, ?)", c.d.q.currentHPEnd, current)
	} else {
		var states [][]any
		del := []uint64{}
		for _, w := range writes {
			if w.State == nil {
				del = append(del, w.OID)
				continue
			}
			states = append(states, []any{int64(w.OID), int64(tid), len(w.State), w.State})
		}
		b.rowsOf(bulk, c.d.q.upsertHF, "(?, ?, ?, ?)", c.d.q.upsertHFEnd, states)
		for start := 0; start < len(del); start += inChunk {
			part := del[start:min(len(del), start+inChunk)]
			b.statement(sqlDeleteHF+in(len(part)), sqlrow.Int64Args(part)...)
		}
	}
	c.moveBlobs(b, tid, writes)
	c.moved = append(c.moved, b.done()...) // after an earlier Move's (RestoreBatch)
	c.tid, c.writes = tid, writes
	return nil
}

// MovesMany implements adapter.MultiMover: Moves add scripts that Commit
// sends; a lost COMMIT is judged by the last Move's tid and writes.
func (c *storeConn) MovesMany() {}

func (c *storeConn) Commit(ctx context.Context) error {
	if !c.inTxn {
		return errors.New("mysql: commit without a transaction")
	}
	scripts := c.moved
	c.moved = nil
	if len(scripts) == 0 {
		scripts = []*script{{}}
	}
	if scripts[len(scripts)-1].prepared != "" {
		scripts = append(scripts, &script{})
	}
	scripts[len(scripts)-1].add("COMMIT")
	for i, s := range scripts {
		var err error
		if s.prepared != "" {
			err = c.execPrepared(ctx, s)
		} else {
			err = c.query(ctx, s, nil)
		}
		if err != nil {
			// COMMIT went out with the last query only.
			uncertain := i == len(scripts)-1 && isDisconnect(err)
			tid, writes := c.tid, c.writes
			c.Rollback()
			if uncertain {
				return c.d.commitOutcome(ctx, c.server, c.connID, tid, writes, c.d.wrap(err))
			}
			return c.d.wrap(err)
		}
	}
	c.inTxn = false
	c.tid, c.writes = 0, nil
	c.endStaging()
	return nil
}

func (c *storeConn) Rollback() {
	c.moved, c.tid, c.writes = nil, 0, nil
	c.endStaging()
	c.rollback()
}

// UndoPlan reads the plan holding RelStorage's pack lock, as RelStorage
// does, so an undo never runs while a pack does.
func (c *storeConn) UndoPlan(ctx context.Context, tid uint64) ([]adapter.UndoItem, bool, error) {
	var locked sql.NullInt64
	var packed, found bool
	var items []adapter.UndoItem
	s := &script{}
	s.add(sqlPackLock)
	s.add(sqlUndoTxn, int64(tid))
	s.add(sqlUndoPlan, int64(tid))
	s.add(sqlPackRelease)
	err := c.query(ctx, s, func(rows *sql.Rows) error {
		r := newResultSets(rows)
		if err := r.next(func(rows *sql.Rows) error { return rows.Scan(&locked) }); err != nil {
			return err
		}
		if err := r.next(func(rows *sql.Rows) error { found = true; return rows.Scan(&packed) }); err != nil {
			return err
		}
		return r.next(func(rows *sql.Rows) error {
			it, err := sqlrow.ScanUndoItem(rows)
			items = append(items, it)
			return err
		})
	})
	if err != nil {
		// The release at the end of the script did not run.
		if locked.Int64 == 1 && c.conn != nil {
			if rerr := c.exec(context.Background(), sqlPackRelease); rerr != nil {
				c.discard()
			}
		}
		return nil, false, c.d.wrap(err)
	}
	if locked.Int64 != 1 {
		return nil, false, errors.New("a pack or undo operation is in progress")
	}
	if !found || packed {
		return nil, false, nil
	}
	return items, true, nil
}

func (c *storeConn) Close() error {
	c.moved, c.tid, c.writes = nil, 0, nil
	c.endStaging()
	c.release()
	return nil
}

// batcher splits statements into scripts that each fit in one query.
type batcher struct {
	limit   int
	scripts []*script
	cur     *script
}

func (b *batcher) room(size int) *script {
	if b.cur == nil || (!b.cur.empty() && b.cur.size+size+2 > b.limit) {
		b.cur = &script{}
		b.scripts = append(b.scripts, b.cur)
	}
	return b.cur
}

// statement adds a whole statement.
func (b *batcher) statement(stmt string, args ...any) {
	size := len(stmt)
	for _, a := range args {
		size += paramLen(a)
	}
	b.room(size).add(stmt, args...)
}

// rows starts a multi-row statement: head, then rows separated by commas, then tail.
func (b *batcher) rows(head, tail string) *rowStatement {
	return &rowStatement{b: b, head: head, tail: tail}
}

func (b *batcher) done() []*script { return b.scripts }

// rowsOf adds rows of a multi-row statement: as prepared executions (bulk),
// or in the text of the scripts.
func (b *batcher) rowsOf(bulk bool, head, values, tail string, rows [][]any) {
	if len(rows) == 0 {
		return
	}
	if bulk {
		b.bulk(head, values, tail, rows)
		return
	}
	r := b.rows(head, tail)
	for _, args := range rows {
		r.row(values, args...)
	}
	r.end()
}

// rowStatement accumulates the rows of one INSERT, starting a new INSERT
// when the next row would make the query too long.
type rowStatement struct {
	b          *batcher
	head, tail string
	text       []byte
	args       []any // the parameters appendQuery left for the driver
	rows       int
	size       int
}

func (r *rowStatement) row(values string, args ...any) {
	mark := len(r.text)
	if r.rows > 0 {
		r.text = append(r.text, ", "...)
	}
	text, rest := appendQuery(r.text, values, args)
	size := len(text) - mark
	for _, a := range rest {
		size += paramLen(a)
	}
	if r.rows > 0 && len(r.head)+r.size+size+len(r.tail)+2 > r.b.limit-r.used() {
		r.text = text[:mark]
		r.end()
		r.row(values, args...)
		return
	}
	r.text = text
	r.args = append(r.args, rest...)
	r.rows++
	r.size += size
}

// used is what the current script already holds, if this statement would join it.
func (r *rowStatement) used() int {
	if r.b.cur == nil {
		return 0
	}
	return r.b.cur.size
}

func (r *rowStatement) end() {
	if r.rows == 0 {
		return
	}
	stmt := make([]byte, 0, len(r.head)+len(r.text)+len(r.tail))
	stmt = append(append(append(stmt, r.head...), r.text...), r.tail...)
	r.b.room(len(r.head)+r.size+len(r.tail)).addText(stmt, r.args)
	r.text, r.args, r.rows, r.size = r.text[:0], nil, 0, 0
}
