package sqlite

import (
	"context"
	"errors"
	"fmt"
)

const sqlZapSystemTxn = `INSERT INTO "transaction" (tid, username, description)
	VALUES (0, CAST('system' AS BLOB), CAST('special transaction for object creation' AS BLOB))`

// zapTables are emptied by Zap.
func zapTables(keepHistory bool) []string {
	if keepHistory {
		return []string{"pack_state_tid", "pack_state", "pack_object", "object_refs_added", "object_ref",
			"current_object", "blob_chunk", "object_state", `"transaction"`}
	}
	return []string{"pack_object", "object_refs_added", "object_ref", "blob_chunk", "object_state"}
}

// Zap implements adapter.Zapper: the tables in one write transaction (SQLite's
// write lock is the commit lock), under the pack lock; then the OID counter.
func (d *Dialect) Zap(ctx context.Context) error {
	if d.writeDB == nil {
		return errors.New("sqlite3: the storage is read-only")
	}
	lock, err := d.packLock()
	if err != nil {
		return err
	}
	defer lock.Close()
	conn, err := d.writeDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return lockError("zap_all", err)
	}
	stmts := []string{}
	for _, t := range zapTables(d.keepHistory) {
		stmts = append(stmts, "DELETE FROM "+t)
	}
	if d.keepHistory {
		stmts = append(stmts, sqlZapSystemTxn)
	}
	stmts = append(stmts, "COMMIT")
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.ExecContext(context.Background(), "ROLLBACK")
			return fmt.Errorf("zap_all: %w (in %.40q)", err, s)
		}
	}
	if d.oidDB != nil {
		if _, err := d.oidDB.ExecContext(ctx, `UPDATE new_oid SET zoid = 0`); err != nil {
			return fmt.Errorf("zap_all: start the OIDs again: %w", err)
		}
	}
	return nil
}
