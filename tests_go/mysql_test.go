package tests_go

import (
	"database/sql"
	"encoding/json"
	"net/url"
	"os"
	"strconv"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/mysql"
)

// mysqlOptions reads GORELSTORAGE_MYSQL_URI (gomysql://user:password@host:port/db),
// which scripts/mariadb-server sets up, as the dialect's options.
func mysqlOptions() (map[string]any, bool) {
	raw := os.Getenv("GORELSTORAGE_MYSQL_URI")
	if raw == "" {
		return nil, false
	}
	u, err := url.Parse(raw)
	if err != nil {
		panic(err)
	}
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	return map[string]any{"host": u.Hostname(), "port": port, "user": u.User.Username(),
		"passwd": pw, "db": u.Path[1:]}, true
}

// mysqlDatabase is the MySQL/MariaDB entry of databases(), when a server is
// configured. Each call of options empties the database first.
func mysqlDatabase() (database, bool) {
	opts, ok := mysqlOptions()
	if !ok {
		return database{}, false
	}
	return database{
		name: "mysql",
		options: func(string) engine.Options {
			zapMySQL(opts)
			raw, _ := json.Marshal(opts)
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "mysql", raw
			o.CommitLockTimeout = 10
			return o
		},
	}, true
}

// zapMySQL drops and recreates the database.
func zapMySQL(opts map[string]any) {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = opts["user"].(string), opts["passwd"].(string)
	cfg.Net, cfg.Addr = "tcp", opts["host"].(string)+":"+strconv.Itoa(opts["port"].(int))
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		panic(err)
	}
	defer db.Close()
	name := opts["db"].(string)
	if _, err := db.Exec("DROP DATABASE IF EXISTS `" + name + "`"); err != nil {
		panic(err)
	}
	if _, err := db.Exec("CREATE DATABASE `" + name + "`"); err != nil {
		panic(err)
	}
}
