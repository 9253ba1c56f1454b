package tests_go

import (
	"encoding/json"
	"os"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/postgres"
)

// pgDSN names the test server's database; scripts/pg-server sets it up.
func pgDSN() string { return os.Getenv("GORELSTORAGE_PG_DSN") }

// postgresDatabase is the PostgreSQL entry of databases(), when a server is
// configured. Each call of options empties the database first.
func postgresDatabase() (database, bool) {
	dsn := pgDSN()
	if dsn == "" {
		return database{}, false
	}
	return database{
		name: "postgresql",
		options: func(string) engine.Options {
			zapPostgres(dsn)
			raw, _ := json.Marshal(map[string]any{"dsn": dsn})
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "postgresql", raw
			o.CommitLockTimeout = 10
			return o
		},
	}, true
}

// zapPostgres drops every object in the database's public schema.
func zapPostgres(dsn string) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		panic(err)
	}
	defer c.Close(ctx)
	if _, err := c.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public;
		SELECT lo_unlink(oid) FROM pg_largeobject_metadata`); err != nil {
		panic(err)
	}
}
