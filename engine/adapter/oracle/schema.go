package oracle

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// schemaObject is one object of RelStorage 4.x's Oracle schema and the
// statements that create it. Names are lower case, as RelStorage writes them.
type schemaObject struct {
	kind  string // table, view, sequence, package
	name  string
	ddl   []string
	hp    bool // history-preserving schema only
	hf    bool // history-free schema only
	extra bool // not required for the schema to be usable by GoRelStorage
}

// The objects, in creation order (foreign keys point backwards). Column
// types and constraints are RelStorage's: NUMBER(20) oids and tids, BLOB
// states, RAW metadata, CHAR 'Y'/'N' booleans, global temporary tables.
var schemaObjects = []schemaObject{
	{kind: "table", name: "commit_row_lock", ddl: []string{
		`CREATE TABLE commit_row_lock (tid NUMBER(20) PRIMARY KEY NOT NULL)`}},
	{kind: "table", name: "pack_lock", ddl: []string{`CREATE TABLE pack_lock (dummy CHAR)`}},
	{kind: "table", name: "transaction", hp: true, ddl: []string{
		`CREATE TABLE transaction (
			tid         NUMBER(20) NOT NULL PRIMARY KEY,
			packed      CHAR DEFAULT 'N' CHECK (packed IN ('N', 'Y')),
			is_empty    CHAR DEFAULT 'N' CHECK (is_empty IN ('N', 'Y')),
			username    RAW(500),
			description RAW(2000),
			extension   RAW(2000))`}},
	{kind: "table", name: "object_state", hp: true, ddl: []string{
		`CREATE TABLE object_state (
			zoid        NUMBER(20) NOT NULL,
			tid         NUMBER(20) NOT NULL REFERENCES transaction,
			prev_tid    NUMBER(20) NOT NULL REFERENCES transaction,
			md5         CHAR(32),
			state_size  NUMBER(20) NOT NULL,
			state       BLOB,
			CONSTRAINT object_state_pk PRIMARY KEY (zoid, tid),
			CHECK (tid > 0),
			CHECK (state_size >= 0))`,
		`CREATE INDEX object_state_tid ON object_state (tid)`,
		`CREATE INDEX object_state_prev_tid ON object_state (prev_tid)`}},
	{kind: "table", name: "object_state", hf: true, ddl: []string{
		`CREATE TABLE object_state (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			tid         NUMBER(20) NOT NULL,
			state_size  NUMBER(20) NOT NULL,
			state       BLOB,
			CHECK (tid > 0),
			CHECK (state_size >= 0))`,
		`CREATE INDEX object_state_tid ON object_state (tid)`}},
	{kind: "table", name: "blob_chunk", hp: true, ddl: []string{
		`CREATE TABLE blob_chunk (
			zoid        NUMBER(20) NOT NULL,
			tid         NUMBER(20) NOT NULL,
			chunk_num   NUMBER(20) NOT NULL,
			PRIMARY KEY (zoid, tid, chunk_num),
			chunk       BLOB)`,
		`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid, tid)`,
		`ALTER TABLE blob_chunk ADD CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid, tid)
			REFERENCES object_state (zoid, tid) ON DELETE CASCADE`}},
	{kind: "table", name: "blob_chunk", hf: true, ddl: []string{
		`CREATE TABLE blob_chunk (
			zoid        NUMBER(20) NOT NULL,
			chunk_num   NUMBER(20) NOT NULL,
			PRIMARY KEY (zoid, chunk_num),
			tid         NUMBER(20) NOT NULL,
			chunk       BLOB)`,
		`CREATE INDEX blob_chunk_lookup ON blob_chunk (zoid)`,
		`ALTER TABLE blob_chunk ADD CONSTRAINT blob_chunk_fk FOREIGN KEY (zoid)
			REFERENCES object_state (zoid) ON DELETE CASCADE`}},
	{kind: "table", name: "current_object", hp: true, ddl: []string{
		`CREATE TABLE current_object (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			tid         NUMBER(20) NOT NULL,
			FOREIGN KEY (zoid, tid) REFERENCES object_state (zoid, tid))`,
		`CREATE INDEX current_object_tid ON current_object (tid)`}},
	{kind: "table", name: "object_ref", hp: true, ddl: []string{
		`CREATE TABLE object_ref (
			zoid        NUMBER(20) NOT NULL,
			tid         NUMBER(20) NOT NULL,
			to_zoid     NUMBER(20) NOT NULL,
			PRIMARY KEY (tid, zoid, to_zoid))`}},
	{kind: "table", name: "object_ref", hf: true, ddl: []string{
		`CREATE TABLE object_ref (
			zoid        NUMBER(20) NOT NULL,
			to_zoid     NUMBER(20) NOT NULL,
			tid         NUMBER(20) NOT NULL,
			PRIMARY KEY (zoid, to_zoid))`}},
	{kind: "table", name: "object_refs_added", hp: true, ddl: []string{
		`CREATE TABLE object_refs_added (tid NUMBER(20) NOT NULL PRIMARY KEY)`}},
	{kind: "table", name: "object_refs_added", hf: true, ddl: []string{
		`CREATE TABLE object_refs_added (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			tid         NUMBER(20) NOT NULL)`}},
	{kind: "table", name: "pack_object", ddl: []string{
		`CREATE TABLE pack_object (
			zoid        NUMBER(20) PRIMARY KEY NOT NULL,
			keep        CHAR NOT NULL CHECK (keep IN ('N', 'Y')),
			keep_tid    NUMBER(20) NOT NULL,
			visited     CHAR DEFAULT 'N' NOT NULL CHECK (visited IN ('N', 'Y')))`,
		`CREATE INDEX pack_object_keep_zoid ON pack_object (keep, zoid)`}},
	{kind: "table", name: "pack_state", hp: true, ddl: []string{
		`CREATE TABLE pack_state (
			tid         NUMBER(20) NOT NULL,
			zoid        NUMBER(20) NOT NULL,
			PRIMARY KEY (tid, zoid))`}},
	{kind: "table", name: "pack_state_tid", hp: true, ddl: []string{
		`CREATE TABLE pack_state_tid (tid NUMBER(20) NOT NULL PRIMARY KEY)`}},
	{kind: "table", name: "temp_store", ddl: []string{
		`CREATE GLOBAL TEMPORARY TABLE temp_store (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			prev_tid    NUMBER(20) NOT NULL,
			md5         CHAR(32),
			state       BLOB,
			blobdata    BLOB) ON COMMIT DELETE ROWS`}},
	{kind: "table", name: "temp_blob_chunk", ddl: []string{
		`CREATE GLOBAL TEMPORARY TABLE temp_blob_chunk (
			zoid        NUMBER(20) NOT NULL,
			chunk_num   NUMBER(20) NOT NULL,
			chunk       BLOB) ON COMMIT DELETE ROWS`}},
	{kind: "table", name: "temp_pack_visit", ddl: []string{
		`CREATE GLOBAL TEMPORARY TABLE temp_pack_visit (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			keep_tid    NUMBER(20) NOT NULL)`}},
	{kind: "table", name: "temp_undo", hp: true, ddl: []string{
		`CREATE GLOBAL TEMPORARY TABLE temp_undo (
			zoid        NUMBER(20) NOT NULL PRIMARY KEY,
			prev_tid    NUMBER(20) NOT NULL)`}},
	{kind: "sequence", name: "zoid_seq", ddl: []string{`CREATE SEQUENCE zoid_seq`}},
	{kind: "view", name: "current_object_state", hp: true, ddl: []string{
		`CREATE VIEW current_object_state AS
			SELECT zoid, tid, state FROM object_state JOIN current_object USING (zoid, tid)`}},
	// RelStorage's stored procedures: GoRelStorage never calls them, but a
	// RelStorage process sharing the database does (for states up to 2000
	// bytes), and expects them when it opens with create-schema off.
	{kind: "package", name: "relstorage_op", hp: true, extra: true, ddl: opPackage(true)},
	{kind: "package", name: "relstorage_op", hf: true, extra: true, ddl: opPackage(false)},
}

// opPackageVersion is the version RelStorage 4.x looks for ("Version: 1.5A"
// in the package body); with another, RelStorage replaces the package.
const opPackageVersion = "1.5A"

// opPackage is the relstorage_op package with the procedures RelStorage's
// Oracle mover calls: store_temp (into its temp_store) and restore.
func opPackage(keepHistory bool) []string {
	restoreArgs, restoreBody := `zoids IN numlist, tids IN numlist, md5s IN md5list, states IN statelist`,
		`FORALL i IN zoids.FIRST .. zoids.LAST
      DELETE FROM object_state WHERE zoid = zoids(i) AND tid = tids(i);
    FORALL i IN zoids.FIRST .. zoids.LAST
      INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state)
      VALUES (zoids(i), tids(i),
        COALESCE((SELECT tid FROM current_object WHERE zoid = zoids(i)), 0),
        md5s(i), COALESCE(LENGTH(states(i)), 0), states(i));`
	if !keepHistory {
		restoreArgs, restoreBody = `zoids IN numlist, tids IN numlist, states IN statelist`,
			`FORALL i IN zoids.FIRST .. zoids.LAST
      DELETE FROM object_state WHERE zoid = zoids(i);
    FORALL i IN zoids.FIRST .. zoids.LAST
      INSERT INTO object_state (zoid, tid, state_size, state)
      VALUES (zoids(i), tids(i), COALESCE(LENGTH(states(i)), 0), states(i));`
	}
	storeArgs := `zoids IN numlist, prev_tids IN numlist, md5s IN md5list, states IN statelist`
	spec := `CREATE OR REPLACE PACKAGE relstorage_op AS
  TYPE numlist IS TABLE OF NUMBER(20) INDEX BY BINARY_INTEGER;
  TYPE md5list IS TABLE OF VARCHAR2(32) INDEX BY BINARY_INTEGER;
  TYPE statelist IS TABLE OF RAW(2000) INDEX BY BINARY_INTEGER;
  PROCEDURE store_temp(` + storeArgs + `);
  PROCEDURE restore(` + restoreArgs + `);
END relstorage_op;`
	body := `CREATE OR REPLACE PACKAGE BODY relstorage_op AS
/* Version: ` + opPackageVersion + ` (installed by GoRelStorage, callable by RelStorage) */
  PROCEDURE store_temp(` + storeArgs + `) IS
  BEGIN
    FORALL i IN zoids.FIRST .. zoids.LAST
      DELETE FROM temp_store WHERE zoid = zoids(i);
    FORALL i IN zoids.FIRST .. zoids.LAST
      INSERT INTO temp_store (zoid, prev_tid, md5, state)
      VALUES (zoids(i), prev_tids(i), md5s(i), states(i));
  END store_temp;

  PROCEDURE restore(` + restoreArgs + `) IS
  BEGIN
    ` + restoreBody + `
  END restore;
END relstorage_op;`
	return []string{spec, body}
}

// initRows are the rows RelStorage creates with the schema: the commit
// lock's row and, history-preserving, the tid-0 transaction that
// creations point back to.
func initRows(keepHistory bool) []string {
	out := []string{`INSERT INTO commit_row_lock (tid)
		SELECT 0 FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM commit_row_lock)`}
	if keepHistory {
		out = append(out, `INSERT INTO transaction (tid, username, description)
		SELECT 0, UTL_RAW.CAST_TO_RAW('system'), UTL_RAW.CAST_TO_RAW('special transaction for object creation')
		FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM transaction WHERE tid = 0)`)
	}
	return out
}

// objectsFor lists the schema objects of one history mode.
func objectsFor(keepHistory bool) []schemaObject {
	var out []schemaObject
	for _, o := range schemaObjects {
		if (o.hp && !keepHistory) || (o.hf && keepHistory) {
			continue
		}
		out = append(out, o)
	}
	return out
}

// sqlExistingObjects lists the user's tables, views, sequences and packages.
const sqlExistingObjects = `SELECT LOWER(object_type), LOWER(object_name) FROM user_objects
	WHERE object_type IN ('TABLE', 'VIEW', 'SEQUENCE', 'PACKAGE')`

// Oracle errors creation tolerates: another process created the object first.
var alreadyExists = map[int]bool{
	955:  true, // ORA-00955: name is already used by an existing object
	1408: true, // ORA-01408: such column list already indexed
	2260: true, // ORA-02260: table can have only one primary key
	2275: true, // ORA-02275: such a referential constraint already exists
	1:    true, // ORA-00001: unique constraint violated (an init row inserted concurrently)
}

// prepareSchema checks the schema and, with create-schema, creates what is
// missing. Oracle commits DDL at once, so creation is idempotent: every
// object is created only when absent, and losing a race to another process
// creating the same object is not an error.
func (d *dialect) prepareSchema(ctx context.Context, c *sql.Conn) error {
	have, err := d.existing(ctx, c)
	if err != nil {
		return d.wrap(err)
	}
	if err := d.checkMode(have); err != nil {
		return err
	}
	missing := missingObjects(d.settings.KeepHistory, have)
	if len(missing) == 0 {
		return nil
	}
	if err := schema.RefuseSchemaCreation(d.describe, d.settings, !have["table object_state"], missing); err != nil {
		return err
	}
	for _, o := range objectsFor(d.settings.KeepHistory) {
		if have[o.kind+" "+o.name] {
			continue
		}
		for _, s := range o.ddl {
			if err := d.execIgnoringExisting(ctx, c, s); err != nil {
				return d.wrap(fmt.Errorf("create %s %s: %w", o.kind, o.name, err))
			}
		}
	}
	for _, s := range initRows(d.settings.KeepHistory) {
		if err := d.execIgnoringExisting(ctx, c, s); err != nil {
			return d.wrap(fmt.Errorf("create schema: %w", err))
		}
	}
	if have, err = d.existing(ctx, c); err != nil {
		return d.wrap(err)
	}
	if missing := missingObjects(d.settings.KeepHistory, have); len(missing) > 0 {
		return schema.IncompleteSchema(d.describe, missing)
	}
	return nil
}

func (d *dialect) execIgnoringExisting(ctx context.Context, c *sql.Conn, s string) error {
	_, err := c.ExecContext(ctx, s)
	if err != nil && alreadyExists[oraCode(err)] {
		return nil
	}
	return err
}

// existing returns "kind name" of each object the user owns.
func (d *dialect) existing(ctx context.Context, c *sql.Conn) (map[string]bool, error) {
	rows, err := c.QueryContext(ctx, sqlExistingObjects)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var kind, name string
		if err := rows.Scan(&kind, &name); err != nil {
			return nil, err
		}
		out[kind+" "+name] = true
	}
	return out, rows.Err()
}

// missingObjects names the objects GoRelStorage needs that are absent.
func missingObjects(keepHistory bool, have map[string]bool) []string {
	var out []string
	for _, o := range objectsFor(keepHistory) {
		if !o.extra && !have[o.kind+" "+o.name] {
			out = append(out, o.name)
		}
	}
	return out
}

// checkMode refuses a database of the other history mode.
func (d *dialect) checkMode(have map[string]bool) error {
	return schema.CheckHistoryMode(d.describe, d.settings.KeepHistory, have["table object_state"],
		have["table transaction"] || have["table current_object"])
}
