package postgres

import (
	"context"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
	"github.com/jackc/pgx/v5"
)

// RelStorage 4.x's PostgreSQL schema. Table, column, constraint and index
// names and types are RelStorage's exactly (pg_dump of both shows the same
// objects); RelStorage's stored functions are not created, except the
// trigger function blob_chunk needs to free its large objects.
var schemaHP = []string{
	`CREATE TABLE transaction (
		tid BIGINT NOT NULL PRIMARY KEY,
		packed BOOLEAN NOT NULL DEFAULT FALSE,
		is_empty BOOLEAN NOT NULL DEFAULT FALSE,
		username BYTEA NOT NULL,
		description BYTEA NOT NULL,
		extension BYTEA
	)`,
	`CREATE TABLE object_state (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL REFERENCES transaction CHECK (tid > 0),
		prev_tid BIGINT NOT NULL REFERENCES transaction,
		md5 CHAR(32),
		state_size BIGINT NOT NULL CHECK (state_size >= 0),
		state BYTEA,
		CONSTRAINT object_state_pk PRIMARY KEY (zoid, tid)
	)`,
	`CREATE INDEX object_state_tid ON object_state (tid)`,
	`CREATE INDEX object_state_prev_tid ON object_state (prev_tid)`,
	`CREATE TABLE current_object (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL,
		FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid)
	)`,
	`CREATE INDEX current_object_tid ON current_object (tid)`,
	`CREATE VIEW current_object_state AS
		SELECT zoid, tid, state FROM object_state JOIN current_object USING (zoid, tid)`,
	`CREATE TABLE blob_chunk (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		chunk_num BIGINT NOT NULL,
		chunk OID NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, tid, chunk_num),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid) ON DELETE CASCADE
	)`,
	`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid, tid)`,
	`CREATE TABLE object_ref (
		zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		to_zoid BIGINT NOT NULL,
		PRIMARY KEY (tid, zoid, to_zoid)
	)`,
	`CREATE TABLE object_refs_added (
		tid BIGINT NOT NULL PRIMARY KEY
	)`,
	`CREATE TABLE pack_state (
		tid BIGINT NOT NULL,
		zoid BIGINT NOT NULL,
		PRIMARY KEY (tid, zoid)
	)`,
	`CREATE TABLE pack_state_tid (
		tid BIGINT NOT NULL PRIMARY KEY
	)`,
	`INSERT INTO transaction (tid, username, description)
		VALUES (0, 'system'::bytea, 'special transaction for object creation'::bytea)`,
}

var schemaHF = []string{
	`CREATE TABLE object_state (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL CHECK (tid > 0),
		state_size BIGINT NOT NULL CHECK (state_size >= 0),
		state BYTEA
	)`,
	`CREATE INDEX object_state_tid ON object_state (tid)`,
	`CREATE TABLE blob_chunk (
		zoid BIGINT NOT NULL,
		chunk_num BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		chunk OID NOT NULL,
		CONSTRAINT blob_chunk_pk PRIMARY KEY (zoid, chunk_num),
		CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid) REFERENCES object_state (zoid) ON DELETE CASCADE
	)`,
	`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid)`,
	`CREATE TABLE object_ref (
		zoid BIGINT NOT NULL,
		to_zoid BIGINT NOT NULL,
		tid BIGINT NOT NULL,
		PRIMARY KEY (zoid, to_zoid)
	)`,
	`CREATE TABLE object_refs_added (
		zoid BIGINT NOT NULL PRIMARY KEY,
		tid BIGINT NOT NULL
	)`,
}

// schemaCommon is created in both modes, after the tables.
var schemaCommon = []string{
	`CREATE TABLE pack_object (
		zoid BIGINT NOT NULL PRIMARY KEY,
		keep BOOLEAN NOT NULL,
		keep_tid BIGINT NOT NULL,
		visited BOOLEAN NOT NULL DEFAULT FALSE
	)`,
	`CREATE INDEX pack_object_keep_false ON pack_object (zoid) WHERE keep = false`,
	`CREATE INDEX pack_object_keep_true ON pack_object (visited) WHERE keep = true`,
	`CREATE SEQUENCE zoid_seq`,
	`CREATE TABLE commit_row_lock (
		tid BIGINT NOT NULL PRIMARY KEY
	)`,
	`INSERT INTO commit_row_lock (tid) VALUES (0)`,
	// A large object lives as long as a blob_chunk row refers to it.
	`CREATE OR REPLACE FUNCTION blob_chunk_delete_trigger() RETURNS trigger
	LANGUAGE plpgsql AS $$
	BEGIN
		-- The row being deleted is still visible here: one row left means it is the last.
		IF (SELECT count(*) FROM blob_chunk WHERE chunk = OLD.chunk) <= 1 THEN
			PERFORM lo_unlink(OLD.chunk);
		END IF;
		RETURN OLD;
	END;
	$$`,
	`CREATE TRIGGER blob_chunk_delete BEFORE DELETE ON blob_chunk
		FOR EACH ROW EXECUTE FUNCTION blob_chunk_delete_trigger()`,
}

// schemaLock serialises schema creation between processes opening an empty
// database at once (RelStorage uses -1 and -2; this id is ours).
const schemaLock = -3

// prepareSchema verifies the schema, creating it when missing and allowed.
func (d *dialect) prepareSchema(ctx context.Context, c *pgx.Conn) error {
	tables, err := d.tables(ctx, c)
	if err != nil {
		return d.wrap(c, err)
	}
	if len(tables) == 0 || (!tables["object_state"] && !tables["commit_row_lock"]) {
		if err := schema.RefuseSchemaCreation(d.describe, d.settings, true, nil); err != nil {
			return err
		}
		if err := d.createSchema(ctx, c); err != nil {
			return d.wrap(c, err)
		}
		if tables, err = d.tables(ctx, c); err != nil {
			return d.wrap(c, err)
		}
	}
	return d.checkSchema(tables)
}

func (d *dialect) tables(ctx context.Context, c *pgx.Conn) (map[string]bool, error) {
	rows, err := c.Query(ctx, `SELECT c.relname FROM pg_catalog.pg_class c
		WHERE c.relkind IN ('r', 'v', 'S', 'p') AND pg_catalog.pg_table_is_visible(c.oid)`)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	out := make(map[string]bool, len(names))
	for _, n := range names {
		out[n] = true
	}
	return out, nil
}

// checkSchema refuses a database of the other history mode or an incomplete one.
func (d *dialect) checkSchema(tables map[string]bool) error {
	if err := schema.CheckHistoryMode(d.describe, d.settings.KeepHistory, tables["object_state"],
		tables["transaction"] || tables["current_object"]); err != nil {
		return err
	}
	need := []string{"object_state", "blob_chunk", "commit_row_lock", "zoid_seq"}
	if d.settings.KeepHistory {
		need = append(need, "transaction", "current_object", "current_object_state")
	}
	if missing := schema.Missing(tables, need); len(missing) > 0 {
		return schema.IncompleteSchema(d.describe, missing)
	}
	return nil
}

// createSchema creates every object in one transaction; a second process
// waiting on the lock finds the schema made and creates nothing.
func (d *dialect) createSchema(ctx context.Context, c *pgx.Conn) error {
	return pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, schemaLock); err != nil {
			return err
		}
		var exists bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('object_state') IS NOT NULL`).Scan(&exists); err != nil {
			return err
		}
		if exists {
			return nil
		}
		stmts := schemaHF
		if d.settings.KeepHistory {
			stmts = schemaHP
		}
		for _, s := range append(append([]string(nil), stmts...), schemaCommon...) {
			if _, err := tx.Exec(ctx, s); err != nil {
				return fmt.Errorf("create schema: %w (in %.60q)", err, s)
			}
		}
		return nil
	})
}
