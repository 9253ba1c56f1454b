package oracle

import (
	"context"
	"crypto/rand"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// storeConn commits through one pooled connection at READ COMMITTED, as
// RelStorage's store connections. With twophase, the write transaction is
// an XA branch (DBMS_XA) prepared when the rows are written and committed
// by Commit, as RelStorage's Oracle twophase option does with OCI.
type storeConn struct {
	session
	branch   *xid // the XA branch of the transaction (twophase)
	prepared bool
	readOnly bool // the prepared branch had nothing to commit
	tid      uint64
	writes   []adapter.Write // what Move wrote, for commitOutcome
	server   string          // with replica-conf, the entry the connection went to, for commitOutcome
}

func (c *storeConn) BeginCommit(ctx context.Context) error {
	if c.tx != nil {
		return errors.New("oracle: commit already begun")
	}
	if err := c.begin(ctx, c.d.store, &sql.TxOptions{}, ""); err != nil {
		return err
	}
	if c.d.replicas != nil {
		c.server = replicalist.EntryOf(c.conn)
	}
	if !c.d.options.Twophase {
		return nil
	}
	x := xid{gtrid: make([]byte, 16)}
	rand.Read(x.gtrid)
	if err := c.exec(ctx, xaStart(x)); err != nil {
		c.end()
		return c.d.wrap(fmt.Errorf("twophase: %w", err))
	}
	c.branch = &x
	return nil
}

func (c *storeConn) LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error) {
	current := make(map[uint64]uint64, len(readCurrent)+len(modified))
	scan := func(r *sql.Rows) error {
		var oid, tid int64
		if err := r.Scan(&oid, &tid); err != nil {
			return err
		}
		current[uint64(oid)] = uint64(tid)
		return nil
	}
	for _, oid := range readCurrent {
		if err := c.rows(ctx, c.d.q.lockReadCurrent(oid), scan); err != nil {
			if isLockFailure(err) {
				return nil, &adapter.ReadCurrentLockedError{OID: oid}
			}
			return nil, c.d.wrap(err)
		}
	}
	for _, st := range c.d.q.lockModified(modified) {
		if err := c.rows(ctx, st, scan); err != nil {
			return nil, c.d.wrap(err)
		}
	}
	return current, nil
}

func (c *storeConn) States(ctx context.Context, oids []uint64) (map[uint64]adapter.Revision, error) {
	var revs []adapter.Revision
	for _, st := range c.d.q.current(oids) {
		if err := c.rows(ctx, st, scanRevision(&revs)); err != nil {
			return nil, c.d.wrap(err)
		}
	}
	out := make(map[uint64]adapter.Revision, len(revs))
	for _, r := range revs {
		out[r.OID] = r
	}
	return out, nil
}

// LockCommit takes RelStorage's commit lock and reads the newest tid and
// the server's UTC clock, in one round trip.
func (c *storeConn) LockCommit(ctx context.Context) (uint64, time.Time, error) {
	if c.tx == nil {
		return 0, time.Time{}, errors.New("oracle: commit lock outside a write transaction")
	}
	var lockTID, last int64
	var now string
	if err := c.exec(ctx, c.d.q.commitLock(&lockTID, &last, &now)); err != nil {
		return 0, time.Time{}, c.d.wrap(err)
	}
	t, err := time.ParseInLocation(serverTimeLayout, now, time.UTC)
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("oracle: cannot read the server clock %q: %w", now, err)
	}
	return uint64(last), t, nil
}

// Move writes the rows (array DML: one round trip per statement, whatever
// the number of objects). With twophase the branch is then prepared, so
// Commit cannot fail for want of resources.
func (c *storeConn) Move(ctx context.Context, tid uint64, meta adapter.TxnInfo, writes []adapter.Write) error {
	if c.tx == nil {
		return errors.New("oracle: move outside a write transaction")
	}
	stmts, err := c.d.q.move(tid, meta, writes)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if err := c.exec(ctx, st); err != nil {
			return c.d.wrap(err)
		}
	}
	if c.branch != nil {
		var readOnly int64
		if err := c.exec(ctx, xaPrepare(*c.branch, &readOnly)); err != nil {
			return c.d.wrap(fmt.Errorf("twophase: %w", err))
		}
		c.prepared, c.readOnly = true, readOnly == 1
	}
	c.tid, c.writes = tid, writes
	return nil
}

func (c *storeConn) Commit(ctx context.Context) error {
	if c.tx == nil {
		return errors.New("oracle: commit without a transaction")
	}
	tid, writes := c.tid, c.writes
	c.tid, c.writes = 0, nil
	if c.branch != nil && c.prepared && !c.readOnly {
		if err := c.exec(ctx, xaCommit(*c.branch)); err != nil {
			c.Rollback()
			return c.d.commitErr(ctx, c.server, tid, writes, c.d.wrap(fmt.Errorf("twophase: %w", err)))
		}
	}
	err := c.tx.Commit()
	c.tx, c.branch, c.prepared, c.readOnly = nil, nil, false, false
	return c.d.commitErr(ctx, c.server, tid, writes, c.d.wrap(err))
}

// commitErr is a failed COMMIT's error. A connection lost while COMMIT was
// out leaves the outcome open: a new connection finds out whether it landed
// (commitOutcome).
func (d *dialect) commitErr(ctx context.Context, server string, tid uint64, writes []adapter.Write, err error) error {
	if errors.Is(err, adapter.ErrDisconnected) {
		return d.commitOutcome(ctx, server, tid, writes, err)
	}
	return err
}

// Rollback rolls the transaction (and its XA branch) back. When the branch
// cannot be rolled back the connection is closed; a branch left prepared
// keeps its locks until an administrator resolves it (DBA_2PC_PENDING).
func (c *storeConn) Rollback() {
	if c.branch != nil && c.tx != nil {
		if err := c.exec(context.Background(), xaRollback(*c.branch)); err != nil {
			c.tx.Rollback()
			c.tx = nil
			c.conn.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	c.branch, c.prepared, c.readOnly = nil, false, false
	c.tid, c.writes = 0, nil
	c.end()
}

// UndoPlan reads the plan holding RelStorage's pack lock, which Oracle
// releases when the transaction ends: so an undo never runs while a pack does.
func (c *storeConn) UndoPlan(ctx context.Context, tid uint64) ([]adapter.UndoItem, bool, error) {
	own := c.tx == nil
	if own {
		if err := c.begin(ctx, c.d.store, &sql.TxOptions{}, ""); err != nil {
			return nil, false, err
		}
		defer c.end()
	}
	plan := c.d.q.undoPlan(tid)
	if err := c.exec(ctx, plan[0]); err != nil {
		if oraCode(err) == errBusy {
			return nil, false, errors.New("a pack or undo operation is in progress")
		}
		return nil, false, c.d.wrap(err)
	}
	var packed int64
	found := false
	if err := c.rows(ctx, plan[1], func(r *sql.Rows) error { found = true; return r.Scan(&packed) }); err != nil {
		return nil, false, c.d.wrap(err)
	}
	if !found || packed == 1 {
		return nil, false, nil
	}
	var items []adapter.UndoItem
	err := c.rows(ctx, plan[2], func(r *sql.Rows) error {
		it, err := sqlrow.ScanUndoItem(r)
		items = append(items, it)
		return err
	})
	if err != nil {
		return nil, false, c.d.wrap(err)
	}
	return items, true, nil
}

func (c *storeConn) Close() error {
	c.Rollback()
	c.release()
	return nil
}
