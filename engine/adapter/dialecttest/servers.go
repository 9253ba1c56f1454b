package dialecttest

import (
	"context"
	"database/sql"
	"net/url"
	"os"
	"regexp"
	"strconv"

	"github.com/go-sql-driver/mysql"
	"github.com/jackc/pgx/v5"
)

// The database servers the tests run against, as scripts/test starts them
// and names them: GORELSTORAGE_PG_DSN (a libpq DSN) and
// GORELSTORAGE_MYSQL_URI (gomysql://user:password@host:port/db). Each has
// four databases: gorelstorage, gorelstorage_hf, gorelstorage2 and
// gorelstorage2_hf.

// PostgresDSN returns the test server's DSN for database db ("" keeps the
// one it names), and false when no server is configured.
func PostgresDSN(db string) (string, bool) {
	dsn := os.Getenv("GORELSTORAGE_PG_DSN")
	if dsn == "" {
		return "", false
	}
	if db != "" {
		dsn = regexp.MustCompile(`dbname=\S+`).ReplaceAllString(dsn, "dbname="+db)
	}
	return dsn, true
}

// ZapPostgres empties a PostgreSQL database: its public schema and every large object.
func ZapPostgres(dsn string) error {
	ctx := context.Background()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return err
	}
	defer c.Close(ctx)
	_, err = c.Exec(ctx, `DROP SCHEMA public CASCADE; CREATE SCHEMA public;
		SELECT lo_unlink(oid) FROM pg_largeobject_metadata`)
	return err
}

// MySQLServer is the test MySQL/MariaDB server and one of its databases.
type MySQLServer struct {
	Host   string
	Port   int
	User   string
	Passwd string
	DB     string
}

// MySQL returns the test server with database db ("" keeps the one the URI
// names), and false when no server is configured.
func MySQL(db string) (MySQLServer, bool) {
	raw := os.Getenv("GORELSTORAGE_MYSQL_URI")
	if raw == "" {
		return MySQLServer{}, false
	}
	u, err := url.Parse(raw)
	if err != nil {
		panic("GORELSTORAGE_MYSQL_URI: " + err.Error())
	}
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	s := MySQLServer{Host: u.Hostname(), Port: port, User: u.User.Username(), Passwd: pw, DB: u.Path[1:]}
	if db != "" {
		s.DB = db
	}
	return s, true
}

// Options are the dialect's options for the server's database.
func (s MySQLServer) Options() map[string]any {
	return map[string]any{"host": s.Host, "port": s.Port, "user": s.User, "passwd": s.Passwd, "db": s.DB}
}

// Zap drops and recreates the database.
func (s MySQLServer) Zap() error {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = s.User, s.Passwd
	cfg.Net, cfg.Addr = "tcp", s.Host+":"+strconv.Itoa(s.Port)
	db, err := sql.Open("mysql", cfg.FormatDSN())
	if err != nil {
		return err
	}
	defer db.Close()
	if _, err := db.Exec("DROP DATABASE IF EXISTS `" + s.DB + "`"); err != nil {
		return err
	}
	_, err = db.Exec("CREATE DATABASE `" + s.DB + "`")
	return err
}
