package tests_go

import (
	"encoding/json"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter/dialecttest"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/postgres"
)

// postgresDatabase is the PostgreSQL entry of databases(), when a server is
// configured. Each call of options empties the database first.
func postgresDatabase() (database, bool) {
	dsn, ok := dialecttest.PostgresDSN("")
	if !ok {
		return database{}, false
	}
	return database{
		name: "postgresql",
		options: func(string) engine.Options {
			must(dialecttest.ZapPostgres(dsn))
			raw, _ := json.Marshal(map[string]any{"dsn": dsn})
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "postgresql", raw
			o.CommitLockTimeout = 10
			return o
		},
	}, true
}

// must stops a test set-up that failed.
func must(err error) {
	if err != nil {
		panic(err)
	}
}
