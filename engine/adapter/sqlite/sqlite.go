// Package sqlite is the embedded SQLite dialect: a data-dir holding
// main.sqlite3 (every table but new_oid) and oids.sqlite3 (the OID counter),
// laid out as RelStorage 4.x lays it out. Writers serialise on SQLite's
// database write lock, which RelStorage processes take too, so both can share
// one data-dir. WAL mode lets readers keep snapshots while a writer commits.
package sqlite

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"time"

	sqlite3 "github.com/mattn/go-sqlite3"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func init() {
	adapter.Register("sqlite3", Open)
}

// Options is the <gosqlite3> section.
type Options struct {
	DataDir string            `json:"data_dir"`
	Pragmas map[string]string `json:"pragmas"`
}

// Dialect is an open SQLite data-dir.
type Dialect struct {
	dir         string
	keepHistory bool
	readDB      *sql.DB // snapshots; query_only
	writeDB     *sql.DB // commits; BEGIN IMMEDIATE waits up to commit-lock-timeout
	lockTimeout time.Duration
	chunkSize   int     // blob-chunk-size
	oidDB       *sql.DB // oids.sqlite3, one connection
	ckpt        *checkpointer
	q           queries
}

var (
	pragmaName  = regexp.MustCompile(`^[A-Za-z_]+$`)
	pragmaValue = regexp.MustCompile(`^-?[A-Za-z0-9_.]+$`)
)

// Open opens (and creates, when allowed) the data-dir.
func Open(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
	var o Options
	if err := adapter.DecodeOptions("sqlite3", s.Options, &o); err != nil {
		return nil, err
	}
	if o.DataDir == "" {
		return nil, adapter.ConfigError("sqlite3: data-dir is required")
	}
	dir, err := filepath.Abs(o.DataDir)
	if err != nil {
		return nil, adapter.ConfigError("sqlite3: data-dir %q: %v", o.DataDir, err)
	}
	pragmas, err := checkPragmas(o.Pragmas)
	if err != nil {
		return nil, err
	}
	if err := ensureDir(dir, s.ReadOnly); err != nil {
		return nil, err
	}
	if err := claimDir(dir); err != nil {
		return nil, err
	}
	d := &Dialect{dir: dir, keepHistory: s.KeepHistory, q: newQueries(s.KeepHistory), chunkSize: s.BlobChunkSize}
	main := filepath.Join(dir, "main.sqlite3")
	d.lockTimeout = s.LockTimeout
	timeoutMS := s.LockTimeout.Milliseconds()
	d.readDB = openDB(main, url.Values{"_busy_timeout": {"10000"}}, append(pragmas, "query_only = 1"))
	if !s.ReadOnly {
		d.writeDB = openDB(main, url.Values{"_busy_timeout": {fmt.Sprint(timeoutMS)}, "_txlock": {"immediate"}}, pragmas)
		d.oidDB = openDB(filepath.Join(dir, "oids.sqlite3"), url.Values{"_busy_timeout": {"60000"}},
			[]string{"journal_mode = off", "synchronous = off"})
		d.oidDB.SetMaxOpenConns(1)
	}
	if err := d.prepare(ctx, s); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func ensureDir(dir string, readOnly bool) error {
	if st, err := os.Stat(dir); err == nil {
		if !st.IsDir() {
			return adapter.ConfigError("sqlite3: data-dir %s is not a directory", dir)
		}
		return nil
	}
	parent := filepath.Dir(dir)
	if _, err := os.Stat(parent); err != nil {
		return adapter.ConfigError("sqlite3: cannot create data-dir %s: its parent directory %s does not exist", dir, parent)
	}
	if readOnly {
		return adapter.ConfigError("sqlite3: data-dir %s does not exist and the storage is read-only", dir)
	}
	if err := os.Mkdir(dir, 0o755); err != nil && !os.IsExist(err) {
		return fmt.Errorf("sqlite3: create data-dir: %w", err)
	}
	return nil
}

func checkPragmas(p map[string]string) ([]string, error) {
	// RelStorage's defaults; WAL is required for concurrent readers and a writer.
	// But cache_spill is on (RelStorage turns it off): a transaction larger
	// than the page cache, a big blob's, spills to the WAL instead of holding
	// every page it wrote in memory until COMMIT.
	base := map[string]string{"journal_mode": "wal", "synchronous": "1", "cache_spill": "1",
		"journal_size_limit": "10485760"}
	for k, v := range p {
		k = strings.ToLower(k)
		if !pragmaName.MatchString(k) || !pragmaValue.MatchString(v) {
			return nil, adapter.ConfigError("sqlite3: invalid pragma %q = %q", k, v)
		}
		switch k {
		case "journal_mode", "busy_timeout", "query_only":
			continue // required by the storage; RelStorage ignores these too
		}
		base[k] = v
	}
	keys := make([]string, 0, len(base))
	for k := range base {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	// journal_mode goes first: some pragmas (page_size) only apply before WAL is on.
	out := []string{}
	for _, k := range keys {
		if k != "journal_mode" {
			out = append(out, k+" = "+base[k])
		}
	}
	return append(out, "journal_mode = wal"), nil
}

// openDB returns a pool whose connections run the pragmas when they open.
func openDB(path string, params url.Values, pragmas []string) *sql.DB {
	dsn := "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + params.Encode()
	drv := &sqlite3.SQLiteDriver{ConnectHook: func(c *sqlite3.SQLiteConn) error {
		for _, p := range pragmas {
			if _, err := c.Exec("PRAGMA "+p, nil); err != nil {
				return fmt.Errorf("PRAGMA %s: %w", p, err)
			}
		}
		return nil
	}}
	return sql.OpenDB(connector{drv: drv, dsn: dsn})
}

type connector struct {
	drv *sqlite3.SQLiteDriver
	dsn string
}

func (c connector) Connect(context.Context) (driver.Conn, error) { return c.drv.Open(c.dsn) }
func (c connector) Driver() driver.Driver                        { return c.drv }

func (d *Dialect) prepare(ctx context.Context, s adapter.Settings) error {
	db := d.writeDB
	if db == nil {
		db = d.readDB
	}
	if err := db.PingContext(ctx); err != nil {
		return fmt.Errorf("sqlite3: open %s: %w", d.dir, err)
	}
	if err := prepareSchema(ctx, db, s, d.Describe()); err != nil {
		return err
	}
	if d.oidDB != nil {
		if err := d.prepareOIDs(ctx); err != nil {
			return fmt.Errorf("sqlite3: OID database: %w", err)
		}
	}
	if d.writeDB != nil {
		var err error
		if d.ckpt, err = newCheckpointer(ctx, d.writeDB); err != nil {
			return err
		}
	}
	return nil
}

// Describe implements adapter.Dialect.
func (d *Dialect) Describe() string { return "sqlite3:" + d.dir }

// Embedded implements adapter.Embedded: the database is in this process.
func (d *Dialect) Embedded() {}

var _ adapter.Embedded = (*Dialect)(nil)

// Close implements adapter.Dialect.
func (d *Dialect) Close() error {
	d.ckpt.close()
	var errs []error
	for _, db := range []*sql.DB{d.readDB, d.writeDB, d.oidDB} {
		if db != nil {
			errs = append(errs, db.Close())
		}
	}
	releaseDir(d.dir)
	return errors.Join(errs...)
}

// Size implements adapter.Dialect.
func (d *Dialect) Size(ctx context.Context) (int64, int64, error) {
	var n int64
	if err := d.readDB.QueryRowContext(ctx, d.q.count).Scan(&n); err != nil {
		return 0, 0, err
	}
	var size int64
	for _, f := range []string{"main.sqlite3", "main.sqlite3-wal", "oids.sqlite3"} {
		if st, err := os.Stat(filepath.Join(d.dir, f)); err == nil {
			size += st.Size()
		}
	}
	return n, size, nil
}

// OpenLoad implements adapter.Dialect.
func (d *Dialect) OpenLoad(ctx context.Context) (adapter.LoadConn, error) {
	c, err := d.readDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &loadConn{conn: c, q: &d.q, keepHistory: d.keepHistory}, nil
}

// OpenStore implements adapter.Dialect.
func (d *Dialect) OpenStore(ctx context.Context) (adapter.StoreConn, error) {
	if d.writeDB == nil {
		return nil, errors.New("sqlite3: the storage is read-only")
	}
	c, err := d.writeDB.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &storeConn{conn: c, q: &d.q, keepHistory: d.keepHistory, lockTimeout: d.lockTimeout,
		chunkSize: d.chunkSize, ckpt: d.ckpt}, nil
}

// isBusy tells whether err is SQLite's "database is locked".
func isBusy(err error) bool {
	var se sqlite3.Error
	return errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked)
}

func lockError(what string, err error) error {
	if isBusy(err) {
		return fmt.Errorf("%s: %w: %v", what, adapter.ErrLockTimeout, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}
