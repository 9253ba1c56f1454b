package tests_go

import (
	"encoding/json"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter/dialecttest"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/mysql"
)

// mysqlDatabase is the MySQL/MariaDB entry of databases(), when a server is
// configured. Each call of options empties the database first.
func mysqlDatabase() (database, bool) {
	srv, ok := dialecttest.MySQL("")
	if !ok {
		return database{}, false
	}
	return database{
		name: "mysql",
		options: func(string) engine.Options {
			must(srv.Zap())
			raw, _ := json.Marshal(srv.Options())
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "mysql", raw
			o.CommitLockTimeout = 10
			return o
		},
	}, true
}
