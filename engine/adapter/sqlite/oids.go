package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// oids.sqlite3 holds one row: the last OID block number n issued. Block n is
// OIDs n*16-15 .. n*16 (RelStorage's layout), so OID 0, the root, is never issued.
const oidsPerBlock = 16

func (d *Dialect) prepareOIDs(ctx context.Context) error {
	conn, err := d.oidDB.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'new_oid'`).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	// A missing or lost OID file is rebuilt above every OID already stored, so
	// no OID is ever issued twice.
	var maxOID sql.NullInt64
	if err := d.writeDB.QueryRowContext(ctx, `SELECT MAX(zoid) FROM object_state`).Scan(&maxOID); err != nil {
		return err
	}
	block := (maxOID.Int64 + oidsPerBlock - 1) / oidsPerBlock
	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS new_oid (zoid INTEGER PRIMARY KEY NOT NULL)`); err != nil {
		return err
	}
	_, err = conn.ExecContext(ctx, `INSERT OR REPLACE INTO new_oid SELECT MAX(x) FROM (SELECT ? x UNION ALL SELECT MAX(zoid) FROM new_oid)`, block)
	return err
}

// NewOIDs implements adapter.Dialect.
func (d *Dialect) NewOIDs(ctx context.Context, blocks int) ([]uint64, error) {
	blocks = max(blocks, 1)
	if d.oidDB == nil {
		return nil, fmt.Errorf("sqlite3: the storage is read-only")
	}
	conn, err := d.oidDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return nil, lockError("new oids", err)
	}
	var last uint64
	err = conn.QueryRowContext(ctx, `SELECT zoid FROM new_oid`).Scan(&last)
	if err == nil {
		_, err = conn.ExecContext(ctx, `UPDATE new_oid SET zoid = zoid + ?`, blocks)
	}
	if err == nil {
		_, err = conn.ExecContext(ctx, "COMMIT")
	}
	if err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return nil, fmt.Errorf("new oids: %w", err)
	}
	values := make([]uint64, blocks)
	for i := range values {
		values[i] = last + 1 + uint64(i)
	}
	return schema.OIDBlocks(values), nil
}

// SetMinOID implements adapter.Dialect.
func (d *Dialect) SetMinOID(ctx context.Context, oid uint64) error {
	if d.oidDB == nil {
		return nil
	}
	n := (oid + oidsPerBlock - 1) / oidsPerBlock
	_, err := d.oidDB.ExecContext(ctx, `UPDATE new_oid SET zoid = ? WHERE zoid < ?`, n, n)
	return err
}
