package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// RelStorage 4.x's MySQL schema. SHOW CREATE TABLE of every table is the
// same as for a database RelStorage created (tested), except that
// RelStorage's inline "REFERENCES transaction" on object_state's tid columns
// is left out: MySQL ignores inline references, and MariaDB 10.5+ refuses
// them because the types differ (BIGINT against BIGINT UNSIGNED).
// RelStorage's stored procedures are not created.
//
// Every statement may run again: DDL is not transactional in MySQL, so a
// creation interrupted half way is completed by the next open.
var schemaHP = []string{
	`CREATE TABLE IF NOT EXISTS transaction (
		tid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
		packed BOOLEAN NOT NULL DEFAULT FALSE,
		is_empty BOOLEAN NOT NULL DEFAULT FALSE,
		username BLOB NOT NULL,
		description BLOB NOT NULL,
		extension BLOB
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS object_state (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		prev_tid BIGINT NOT NULL,
		md5 CHAR(32) CHARACTER SET ascii,
		state_size BIGINT NOT NULL,
		state LONGBLOB,
		CONSTRAINT object_state_pk PRIMARY KEY (zoid, tid),
		KEY object_state_tid (tid),
		KEY object_state_prev_tid (prev_tid),
		CHECK (tid > 0),
		CHECK (state_size >= 0)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS blob_chunk (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		chunk_num BIGINT NOT NULL,
		chunk LONGBLOB NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, tid, chunk_num),
		KEY blob_chunk_lookup (zoid, tid),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid) ON DELETE CASCADE
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS current_object (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL,
		KEY zoid (zoid, tid),
		KEY current_object_tid (tid),
		CONSTRAINT current_object_ibfk_1 FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid)
	) ENGINE = InnoDB`,
	`CREATE OR REPLACE VIEW current_object_state AS
		SELECT zoid, tid, state FROM object_state JOIN current_object USING (zoid, tid)`,
	`CREATE TABLE IF NOT EXISTS object_ref (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		to_zoid BIGINT NOT NULL,
		PRIMARY KEY (tid, zoid, to_zoid)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS object_refs_added (
		tid BIGINT NOT NULL PRIMARY KEY
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS pack_state (
		tid BIGINT NOT NULL,
		zoid BIGINT NOT NULL,
		PRIMARY KEY (tid, zoid)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS pack_state_tid (
		tid BIGINT NOT NULL PRIMARY KEY
	) ENGINE = InnoDB`,
	`INSERT IGNORE INTO transaction (tid, username, description)
		VALUES (0, 'system', 'special transaction for object creation')`,
}

var schemaHF = []string{
	`CREATE TABLE IF NOT EXISTS object_state (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL,
		state_size BIGINT NOT NULL,
		state LONGBLOB,
		KEY object_state_tid (tid),
		CHECK (tid > 0),
		CHECK (state_size >= 0)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS blob_chunk (
		zoid BIGINT NOT NULL,
		chunk_num BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		chunk LONGBLOB NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, chunk_num),
		KEY blob_chunk_lookup (zoid),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid) REFERENCES object_state (zoid) ON DELETE CASCADE
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS object_ref (
		zoid BIGINT NOT NULL,
		to_zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		PRIMARY KEY (zoid, to_zoid)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS object_refs_added (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL
	) ENGINE = InnoDB`,
}

// schemaCommon is created in both modes, after the tables.
var schemaCommon = []string{
	`CREATE TABLE IF NOT EXISTS new_oid (
		zoid BIGINT UNSIGNED NOT NULL AUTO_INCREMENT PRIMARY KEY
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS pack_object (
		zoid BIGINT UNSIGNED NOT NULL PRIMARY KEY,
		keep BOOLEAN NOT NULL,
		keep_tid BIGINT UNSIGNED NOT NULL,
		visited BOOLEAN NOT NULL DEFAULT FALSE,
		KEY pack_object_keep_zoid (keep, zoid)
	) ENGINE = InnoDB`,
	`CREATE TABLE IF NOT EXISTS commit_row_lock (
		tid BIGINT UNSIGNED NOT NULL PRIMARY KEY
	) ENGINE = InnoDB`,
	`INSERT IGNORE INTO commit_row_lock (tid) VALUES (0)`,
}

// tablesHP and tablesHF are what a complete schema has.
var (
	tablesHP = []string{"transaction", "object_state", "blob_chunk", "current_object", "current_object_state",
		"object_ref", "object_refs_added", "pack_state", "pack_state_tid", "new_oid", "pack_object", "commit_row_lock"}
	tablesHF = []string{"object_state", "blob_chunk", "object_ref", "object_refs_added", "new_oid",
		"pack_object", "commit_row_lock"}
)

// prepareSchema verifies the schema, creating (or completing) it when allowed.
func (d *dialect) prepareSchema(ctx context.Context, c *sql.Conn) error {
	tables, err := d.tables(ctx, c)
	if err != nil {
		return d.wrap(err)
	}
	if err := d.checkMode(tables); err != nil {
		return err
	}
	missing := d.missing(tables)
	if len(missing) == 0 {
		return nil
	}
	if err := schema.RefuseSchemaCreation(d.describe, d.settings, !tables["object_state"], missing); err != nil {
		return err
	}
	if err := d.createSchema(ctx, c); err != nil {
		return d.wrap(err)
	}
	if tables, err = d.tables(ctx, c); err != nil {
		return d.wrap(err)
	}
	if missing := d.missing(tables); len(missing) > 0 {
		return schema.IncompleteSchema(d.describe, missing)
	}
	return d.checkMode(tables)
}

func (d *dialect) tables(ctx context.Context, c *sql.Conn) (map[string]bool, error) {
	rows, err := c.QueryContext(ctx, `SELECT table_name FROM information_schema.tables WHERE table_schema = DATABASE()`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, err
		}
		out[strings.ToLower(name)] = true
	}
	return out, rows.Err()
}

// checkMode refuses a database of the other history mode.
func (d *dialect) checkMode(tables map[string]bool) error {
	return schema.CheckHistoryMode(d.describe, d.settings.KeepHistory, tables["object_state"],
		tables["transaction"] || tables["current_object"])
}

func (d *dialect) missing(tables map[string]bool) []string {
	need := tablesHF
	if d.settings.KeepHistory {
		need = tablesHP
	}
	return schema.Missing(tables, need)
}

// createSchema runs every statement under a named lock, so two processes
// opening an empty database at once do not interleave their DDL.
func (d *dialect) createSchema(ctx context.Context, c *sql.Conn) error {
	var got sql.NullInt64
	if err := c.QueryRowContext(ctx, `SELECT GET_LOCK(CONCAT(DATABASE(), '.gorelstorage-schema'), 60)`).Scan(&got); err != nil {
		return err
	}
	if got.Int64 != 1 {
		return fmt.Errorf("%s: another process is creating the schema (waited 60 s for its lock)", d.describe)
	}
	defer c.ExecContext(context.Background(), `DO RELEASE_LOCK(CONCAT(DATABASE(), '.gorelstorage-schema'))`)
	stmts := schemaHF
	if d.settings.KeepHistory {
		stmts = schemaHP
	}
	for _, s := range append(append([]string(nil), stmts...), schemaCommon...) {
		if _, err := c.ExecContext(ctx, s); err != nil {
			return fmt.Errorf("create schema: %w (in %.60q)", err, s)
		}
	}
	return nil
}
