package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

const sqlZapSystemTxn = `INSERT INTO transaction (tid, username, description)
	VALUES (0, 'system', 'special transaction for object creation')`

// zapTables are emptied by Zap; TRUNCATE TABLE also starts new_oid's
// AUTO_INCREMENT again.
func zapTables(keepHistory bool) []string {
	if keepHistory {
		return []string{"pack_state_tid", "pack_state", "pack_object", "object_refs_added", "object_ref",
			"current_object", "blob_chunk", "object_state", "transaction", "new_oid"}
	}
	return []string{"pack_object", "object_refs_added", "object_ref", "blob_chunk", "object_state", "new_oid"}
}

// Zap implements adapter.Zapper under RelStorage's pack lock (refused while
// a pack runs). TRUNCATE TABLE commits by itself, so the tables are emptied
// one after the other, each waiting at most commit-lock-timeout for the
// transactions using it.
func (d *dialect) Zap(ctx context.Context) error {
	return d.withStore(ctx, func(c *sql.Conn) error {
		var got sql.NullInt64
		if err := c.QueryRowContext(ctx, sqlPackLock).Scan(&got); err != nil {
			return err
		}
		if got.Int64 != 1 {
			return fmt.Errorf("zap_all: %s: %w", d.describe, adapter.ErrPackLocked)
		}
		defer c.ExecContext(context.Background(), sqlPackRelease)
		wait := d.settings.LockTimeout
		if wait <= 0 {
			wait = 30 * time.Second
		}
		if _, err := c.ExecContext(ctx, fmt.Sprintf(`SET SESSION lock_wait_timeout = %d, foreign_key_checks = 0`,
			max(1, int(wait/time.Second)))); err != nil {
			return err
		}
		defer c.ExecContext(context.Background(), `SET SESSION lock_wait_timeout = DEFAULT, foreign_key_checks = 1`)
		for _, t := range zapTables(d.settings.KeepHistory) {
			if _, err := c.ExecContext(ctx, "TRUNCATE TABLE `"+t+"`"); err != nil {
				return fmt.Errorf("zap_all: empty %s: %w", t, err)
			}
		}
		if d.settings.KeepHistory {
			if _, err := c.ExecContext(ctx, sqlZapSystemTxn); err != nil {
				return fmt.Errorf("zap_all: %w", err)
			}
		}
		return nil
	})
}
