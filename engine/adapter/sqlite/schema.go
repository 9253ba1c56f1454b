package sqlite

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// RelStorage 4.x's SQLite schema. Table, column, constraint and index names
// and types match what RelStorage creates, so either can open the other's
// data-dir.
var schemaHP = []string{
	`CREATE TABLE commit_row_lock (tid INTEGER PRIMARY KEY NOT NULL)`,
	`CREATE TABLE "transaction" (
		tid         INTEGER PRIMARY KEY NOT NULL,
		packed      INTEGER DEFAULT FALSE NOT NULL,
		is_empty    INTEGER DEFAULT FALSE NOT NULL,
		username    BLOB NOT NULL,
		description BLOB NOT NULL,
		extension   BLOB)`,
	`CREATE TABLE object_state (
		zoid        INTEGER NOT NULL,
		tid         INTEGER NOT NULL REFERENCES "transaction",
		prev_tid    INTEGER NOT NULL REFERENCES "transaction",
		md5         BLOB,
		state_size  BIGINT NOT NULL,
		state       BLOB,
		CONSTRAINT object_state_pk PRIMARY KEY (zoid, tid),
		CHECK (tid > 0),
		CHECK (state_size >= 0))`,
	`CREATE INDEX object_state_tid ON object_state (tid)`,
	`CREATE INDEX object_state_prev_tid ON object_state (prev_tid)`,
	`CREATE TABLE blob_chunk (
		zoid        INTEGER NOT NULL,
		tid         INTEGER NOT NULL,
		chunk_num   INTEGER NOT NULL,
		chunk       BLOB NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, tid, chunk_num),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid, tid)
			REFERENCES object_state (zoid, tid) ON DELETE CASCADE)`,
	`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid, tid)`,
	`CREATE TABLE current_object (
		zoid        INTEGER NOT NULL PRIMARY KEY,
		tid         INTEGER NOT NULL,
		FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid))`,
	`CREATE INDEX current_object_tid ON current_object (tid)`,
	`CREATE TABLE object_ref (
		zoid        INTEGER NOT NULL,
		tid         INTEGER NOT NULL,
		to_zoid     INTEGER NOT NULL,
		PRIMARY KEY (tid, zoid, to_zoid))`,
	`CREATE TABLE object_refs_added (tid INTEGER NOT NULL PRIMARY KEY)`,
	`CREATE TABLE pack_object (
		zoid     INTEGER PRIMARY KEY NOT NULL,
		keep     INTEGER NOT NULL,
		keep_tid INTEGER NOT NULL,
		visited  INTEGER DEFAULT FALSE NOT NULL)`,
	`CREATE INDEX pack_object_keep_zoid ON pack_object (keep, zoid)`,
	`CREATE TABLE pack_state (
		tid  INTEGER NOT NULL,
		zoid INTEGER NOT NULL,
		PRIMARY KEY (tid, zoid))`,
	`CREATE TABLE pack_state_tid (tid INTEGER NOT NULL PRIMARY KEY)`,
	`CREATE VIEW current_object_state AS
		SELECT zoid, tid, state FROM object_state JOIN current_object USING (zoid, tid)`,
	`INSERT INTO "transaction" (tid, username, description)
		VALUES (0, CAST('system' AS BLOB), CAST('special transaction for object creation' AS BLOB))`,
	`INSERT INTO commit_row_lock (tid) VALUES (0)`,
}

var schemaHF = []string{
	`CREATE TABLE commit_row_lock (tid INTEGER PRIMARY KEY NOT NULL)`,
	`CREATE TABLE object_state (
		zoid        INTEGER NOT NULL PRIMARY KEY,
		tid         INTEGER NOT NULL,
		state_size  BIGINT NOT NULL,
		state       BLOB,
		CHECK (tid > 0),
		CHECK (state_size >= 0))`,
	`CREATE INDEX object_state_tid ON object_state (tid)`,
	`CREATE TABLE blob_chunk (
		zoid        INTEGER NOT NULL,
		chunk_num   INTEGER NOT NULL,
		tid         INTEGER NOT NULL,
		chunk       BLOB NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, chunk_num),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid)
			REFERENCES object_state (zoid) ON DELETE CASCADE)`,
	`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid)`,
	`CREATE TABLE object_ref (
		zoid        INTEGER NOT NULL,
		to_zoid     INTEGER NOT NULL,
		tid         INTEGER NOT NULL,
		PRIMARY KEY (zoid, to_zoid))`,
	`CREATE TABLE object_refs_added (
		zoid        INTEGER NOT NULL PRIMARY KEY,
		tid         INTEGER NOT NULL)`,
	`CREATE TABLE pack_object (
		zoid     INTEGER PRIMARY KEY NOT NULL,
		keep     INTEGER NOT NULL,
		keep_tid INTEGER NOT NULL,
		visited  INTEGER DEFAULT FALSE NOT NULL)`,
	`CREATE INDEX pack_object_keep_zoid ON pack_object (keep, zoid)`,
	`INSERT INTO commit_row_lock (tid) VALUES (0)`,
}

// prepareSchema creates the schema in an empty database (when allowed) and
// checks that an existing one matches the history mode, as RelStorage's
// check_compatibility does.
func prepareSchema(ctx context.Context, db *sql.DB, s adapter.Settings, describe string) error {
	tables, err := tableNames(ctx, db)
	if err != nil {
		return fmt.Errorf("read schema of %s: %w", describe, err)
	}
	if len(tables) == 0 {
		if err := schema.RefuseSchemaCreation(describe, s, true, nil); err != nil {
			return err
		}
		return createSchema(ctx, db, s.KeepHistory)
	}
	if err := schema.CheckHistoryMode(describe, s.KeepHistory, tables["object_state"],
		tables["transaction"] || tables["current_object"]); err != nil {
		return err
	}
	need := []string{"object_state", "blob_chunk", "commit_row_lock"}
	if s.KeepHistory {
		need = append(need, "transaction", "current_object")
	}
	if missing := schema.Missing(tables, need); len(missing) > 0 {
		return schema.IncompleteSchema(describe, missing)
	}
	return nil
}

func tableNames(ctx context.Context, db *sql.DB) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM sqlite_master WHERE type IN ('table', 'view')`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	names := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		names[n] = true
	}
	return names, rows.Err()
}

func createSchema(ctx context.Context, db *sql.DB, keepHistory bool) error {
	stmts := schemaHF
	if keepHistory {
		stmts = schemaHP
	}
	conn, err := db.Conn(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("create schema: %w", err)
	}
	// Another process may have created it while we waited for the lock.
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT count(*) FROM sqlite_master WHERE name = 'object_state'`).Scan(&n); err != nil {
		conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	if n > 0 {
		_, err := conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	for _, s := range stmts {
		if _, err := conn.ExecContext(ctx, s); err != nil {
			conn.ExecContext(ctx, "ROLLBACK")
			return fmt.Errorf("create schema: %w", err)
		}
	}
	_, err = conn.ExecContext(ctx, "COMMIT")
	return err
}
