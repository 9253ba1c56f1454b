package oracle

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// zapStatements empty the database in one transaction, under the pack lock
// and then the commit lock: DELETE, as TRUNCATE would commit (and release
// the locks) at the first table; the system transaction back in place.
func (q queries) zapStatements(keepHistory bool) []string {
	tables := []string{"pack_object", "object_refs_added", "object_ref", "blob_chunk", "object_state"}
	if keepHistory {
		tables = []string{"pack_state_tid", "pack_state", "pack_object", "object_refs_added", "object_ref",
			"current_object", "blob_chunk", "object_state", "transaction"}
	}
	out := []string{sqlPackLock, q.packCommitLock()}
	for _, t := range tables {
		out = append(out, "DELETE FROM "+t)
	}
	return append(out, initRows(keepHistory)[1:]...)
}

// zapSequence starts the OIDs again (DDL: after the transaction).
var zapSequence = []string{`DROP SEQUENCE zoid_seq`, `CREATE SEQUENCE zoid_seq`}

// Zap implements adapter.Zapper.
func (d *dialect) Zap(ctx context.Context) error {
	return d.withStore(ctx, func(c *sql.Conn) error {
		tx, err := c.BeginTx(ctx, &sql.TxOptions{})
		if err != nil {
			return err
		}
		for i, s := range d.q.zapStatements(d.settings.KeepHistory) {
			if _, err := tx.ExecContext(ctx, s); err != nil {
				tx.Rollback()
				if i == 0 && oraCode(err) == errBusy {
					return fmt.Errorf("zap_all: %s: %w", d.describe, adapter.ErrPackLocked)
				}
				return fmt.Errorf("zap_all: %w", err)
			}
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("zap_all: %w", err)
		}
		for _, s := range zapSequence {
			if _, err := c.ExecContext(ctx, s); err != nil {
				return fmt.Errorf("zap_all: start the OIDs again: %w", err)
			}
		}
		return nil
	})
}
