package oracle

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlpack"
)

// flavor: packed and keep are CHAR 'Y'/'N'; TRUNCATE would commit the
// write transaction; multi-row inserts are INSERT ALL.
var flavor = &adapter.Flavor{Numbered: ":", True: "'Y'", False: "'N'", Txn: "transaction",
	Empty: "TRUNCATE TABLE", InsertAll: true, MaxParams: 999, RowsFirst: true}

// OpenPack takes RelStorage's pack lock, the pack_lock table locked in a
// transaction of a connection of its own, held until Close.
func (d *dialect) OpenPack(ctx context.Context) (adapter.PackSession, error) {
	lock, err := d.store.BeginTx(ctx, &sql.TxOptions{})
	if err != nil {
		return nil, d.wrap(err)
	}
	if _, err := lock.ExecContext(ctx, sqlPackLock); err != nil {
		lock.Rollback()
		if oraCode(err) == errBusy {
			return nil, fmt.Errorf("%s: %w", d.describe, adapter.ErrPackLocked)
		}
		return nil, d.wrap(err)
	}
	release := lock.Rollback
	lockCommit := func(ctx context.Context, tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, d.q.packCommitLock())
		return d.wrap(err)
	}
	s, err := sqlpack.Open(ctx, flavor, d.packRead(), d.store, lockCommit, release)
	if err != nil {
		release()
		return nil, d.wrap(err)
	}
	s.WrapErrors(d.wrap)
	return s, nil
}

// packCommitLock takes the commit lock for a batch of a pack.
func (q queries) packCommitLock() string {
	return `SELECT tid FROM commit_row_lock ` + q.wait
}

// packRead is the pack's read pool: load, or with replica lists store (the
// pools differ only in their lists here), so that a pack reads what it
// removes on the server it removes it from, never a replica that may lag.
func (d *dialect) packRead() *sql.DB {
	if d.settings.ReplicaConf != "" || d.settings.ROReplicaConf != "" {
		return d.store
	}
	return d.load
}
