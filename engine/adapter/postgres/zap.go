package postgres

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

const (
	// The large objects go first, a thousand a transaction: TRUNCATE fires
	// no trigger, and one lock per object in a single transaction could
	// exhaust the server's lock table. Only existing ones: a run cut short
	// and repeated finds some gone.
	sqlZapLargeObjects = `SELECT count(lo_unlink(oid)) FROM (SELECT oid FROM pg_largeobject_metadata
		WHERE oid IN (SELECT chunk FROM blob_chunk) LIMIT 1000) lo`
	sqlZapPackLock  = `SELECT pg_try_advisory_xact_lock(-2)`
	sqlZapResetOIDs = `ALTER SEQUENCE zoid_seq RESTART WITH 1`
	sqlZapSystemTxn = `INSERT INTO transaction (tid, username, description)
		VALUES (0, 'system'::bytea, 'special transaction for object creation'::bytea)`
)

// zapTables are emptied by Zap, in both modes where they exist.
func zapTables(keepHistory bool) []string {
	if keepHistory {
		return []string{"transaction", "object_state", "current_object", "blob_chunk", "object_ref",
			"object_refs_added", "pack_object", "pack_state", "pack_state_tid"}
	}
	return []string{"object_state", "blob_chunk", "object_ref", "object_refs_added", "pack_object"}
}

// Zap implements adapter.Zapper: the large objects, then the tables in one
// transaction under the commit lock and RelStorage's pack lock (refused
// while a pack runs), waiting at most commit-lock-timeout for other
// sessions' reads of the tables to end.
func (d *dialect) Zap(ctx context.Context) error {
	return d.withStore(ctx, func(c *pgx.Conn) error {
		for {
			var n int64
			if err := c.QueryRow(ctx, sqlZapLargeObjects).Scan(&n); err != nil {
				return fmt.Errorf("zap_all: free the blobs' large objects: %w", err)
			}
			if n == 0 {
				break
			}
		}
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			var free bool
			if err := tx.QueryRow(ctx, sqlZapPackLock).Scan(&free); err != nil {
				return err
			}
			if !free {
				return fmt.Errorf("zap_all: %w", adapter.ErrPackLocked)
			}
			if _, err := tx.Exec(ctx, sqlCommitLock); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `TRUNCATE TABLE `+strings.Join(zapTables(d.settings.KeepHistory), ", ")); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, sqlZapResetOIDs); err != nil {
				return err
			}
			if d.settings.KeepHistory {
				if _, err := tx.Exec(ctx, sqlZapSystemTxn); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("zap_all: the blobs' large objects are freed, the tables not emptied (run zap_all again): %w", err)
		}
		return nil
	})
}
