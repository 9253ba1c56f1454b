package mysql

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlpack"
)

var flavor = &adapter.Flavor{True: "TRUE", False: "FALSE", Txn: "transaction", Empty: "TRUNCATE TABLE", Analyze: "ANALYZE TABLE",
	MaxParams: 60000, RowsFirst: true, JoinDelete: true, ByTID: "FORCE INDEX (object_state_tid)"}

// OpenPack takes RelStorage's pack lock (GET_LOCK on "<database>.pack", not
// waiting) on a connection of its own, held until Close.
func (d *dialect) OpenPack(ctx context.Context) (adapter.PackSession, error) {
	lock, err := d.store.Conn(ctx)
	if err != nil {
		return nil, d.wrap(err)
	}
	var got sql.NullInt64
	if err := lock.QueryRowContext(ctx, sqlPackLock).Scan(&got); err != nil {
		lock.Close()
		return nil, d.wrap(err)
	}
	if got.Int64 != 1 {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", d.describe, adapter.ErrPackLocked)
	}
	release := func() error {
		_, err := lock.ExecContext(context.Background(), sqlPackRelease)
		lock.Close()
		return err
	}
	lockCommit := func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, sqlCommitLock)
		if err != nil {
			return d.wrap(err)
		}
		return rows.Close()
	}
	s, err := sqlpack.Open(ctx, flavor, d.packRead, d.store, lockCommit, release)
	if err != nil {
		release()
		return nil, d.wrap(err)
	}
	// InnoDB's foreign key checks, a third of the time of a pack's deletes,
	// are off on its write connection: each batch removes the rows that
	// refer to a revision (current_object, blob_chunk) before the revision,
	// and only transactions no revision refers to.
	if err := s.Set(ctx, "SET SESSION foreign_key_checks = 0", "SET SESSION foreign_key_checks = 1"); err != nil {
		s.Close()
		return nil, d.wrap(err)
	}
	s.WrapErrors(d.wrap)
	s.SetLoader(d.loadInt64s)
	s.EnableWorkers(d.store)
	return s, nil
}
