// Package postgres is the PostgreSQL dialect, built on pgx v5's native
// interface. It is data- and lock-compatible with RelStorage 4.x: the same
// schema, the same advisory locks (-1 commit, -2 pack, the zoid for each
// object), the same zoid_seq and the same tid rule under the commit lock, so
// RelStorage and GoRelStorage processes can commit to one database at once.
// It never calls RelStorage's stored functions.
//
// Round trips are the cost that matters here: statements that belong together
// go to the server as one pipelined batch, and many rows travel as arrays
// bound to one prepared statement (unnest), so a commit of any size takes the
// same few round trips.
package postgres

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/netconn"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

func init() {
	adapter.Register("postgresql", Open)
}

// Options is the adapter section of the engine's options.
type Options struct {
	DSN    string `json:"dsn"`    // libpq keyword/value string or postgres:// URL
	Driver string `json:"driver"` // RelStorage's driver names are accepted; pgx is always used
}

// Drivers RelStorage knows for PostgreSQL. Any of them (or "auto"/"pgx") selects pgx.
var knownDrivers = map[string]bool{"": true, "auto": true, "pgx": true, "psycopg2": true,
	"gevent psycopg2": true, "psycopg2cffi": true, "pg8000": true}

// defaultConnectTimeout bounds a connection attempt when the DSN sets none
// (libpq would wait for the operating system, minutes for an unreachable host).
const defaultConnectTimeout = 15 * time.Second

// maxIdle is the number of idle connections kept per pool.
const maxIdle = 16

type dialect struct {
	settings adapter.Settings
	describe string
	q        queries

	load  pool // REPEATABLE READ READ ONLY snapshots
	store pool // READ COMMITTED commits, lock_timeout = commit-lock-timeout

	// countRoundTrip, when set (tests), is called once per round trip.
	countRoundTrip func()
}

// Open connects to the database, checks (or creates) the schema and returns the dialect.
func Open(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
	var o Options
	if err := adapter.DecodeOptions("postgresql", s.Options, &o); err != nil {
		return nil, err
	}
	return open(ctx, s, o, nil)
}

func open(ctx context.Context, s adapter.Settings, o Options, countRoundTrip func()) (*dialect, error) {
	if !knownDrivers[o.Driver] {
		return nil, adapter.ConfigError("postgresql driver %q is not available; use auto (pgx)", o.Driver)
	}
	// An empty DSN means libpq's defaults and the PG* environment variables.
	base, err := pgx.ParseConfig(o.DSN)
	if err != nil {
		return nil, adapter.ConfigError("postgresql dsn: %v", dsnError(o.DSN))
	}
	d := &dialect{settings: s, q: newQueries(s.KeepHistory), countRoundTrip: countRoundTrip}
	if base.ConnectTimeout == 0 {
		base.ConnectTimeout = defaultConnectTimeout
	}
	if base.RuntimeParams == nil {
		base.RuntimeParams = map[string]string{}
	}
	if _, ok := base.RuntimeParams["application_name"]; !ok {
		base.RuntimeParams["application_name"] = "gorelstorage"
	}
	base.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netconn.Dial(ctx, network, addr)
		if err != nil || countRoundTrip == nil {
			return c, err
		}
		return netconn.CountRoundTrips(c, countRoundTrip), nil
	}
	d.load = pool{d: d, config: base.Copy()}
	d.store = pool{d: d, config: base.Copy()}
	// The store connections' lock waits (objects and the commit lock) are
	// bounded by commit-lock-timeout, set in the startup packet: no round trip.
	timeout := s.LockTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	d.store.config.RuntimeParams["lock_timeout"] = fmt.Sprint(timeout.Milliseconds())
	// replica-conf for both pools, ro-replica-conf instead for the load pool; each
	// pool follows its own list (a load connection may use a standby, a store one not).
	if s.ReplicaConf != "" {
		if d.store.replicas, err = replicalist.New(s.ReplicaConf, s.ReplicaTimeout, replicalist.HostPort(int(base.Port))); err != nil {
			return nil, err
		}
		d.store.writes = true
	}
	if loadConf := cmp.Or(s.ROReplicaConf, s.ReplicaConf); loadConf != "" {
		if d.load.replicas, err = replicalist.New(loadConf, s.ReplicaTimeout, replicalist.HostPort(int(base.Port))); err != nil {
			return nil, err
		}
	}
	d.describe = fmt.Sprintf("postgresql:host=%s port=%d dbname=%s user=%s", base.Host, base.Port, base.Database, base.User)

	conn, err := d.store.get(ctx)
	if err != nil {
		return nil, err
	}
	defer d.store.put(conn)
	if err := d.prepareSchema(ctx, conn); err != nil {
		conn.Close(context.Background())
		return nil, err
	}
	return d, nil
}

func (d *dialect) Describe() string { return d.describe }

// connect opens one connection; errors name the server, never the password.
func (d *dialect) connect(ctx context.Context, cfg *pgx.ConnConfig) (*pgx.Conn, error) {
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, d.connectError(err)
	}
	registerTypes(conn.TypeMap())
	return conn, nil
}

func (d *dialect) connectError(err error) error {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "28P01", "28000": // invalid_password, invalid_authorization_specification
			return adapter.ConfigError("%s: authentication failed: %v", d.describe, err)
		case "3D000": // invalid_catalog_name
			return adapter.ConfigError("%s: the database does not exist: %v", d.describe, err)
		}
	}
	return fmt.Errorf("%s: %w: %w", d.describe, adapter.ErrUnreachable, err)
}

func (d *dialect) OpenLoad(ctx context.Context) (adapter.LoadConn, error) {
	c, err := d.load.get(ctx)
	if err != nil {
		return nil, err
	}
	return &loadConn{d: d, session: session{pool: &d.load, conn: c, begin: sqlBeginLoad}}, nil
}

func (d *dialect) OpenStore(ctx context.Context) (adapter.StoreConn, error) {
	c, err := d.store.get(ctx)
	if err != nil {
		return nil, err
	}
	return &storeConn{d: d, session: session{pool: &d.store, conn: c, begin: sqlBeginStore}}, nil
}

// withStore runs fn on a pooled store connection outside any transaction,
// retrying once on a fresh connection if the pooled one turns out broken
// (the server restarted while it sat idle).
func (d *dialect) withStore(ctx context.Context, fn func(*pgx.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := d.store.get(ctx)
		if err != nil {
			return err
		}
		err = fn(c)
		broken := isDisconnect(c, err)
		d.store.put(c)
		if err != nil && broken && attempt == 0 {
			continue
		}
		return d.wrap(c, err)
	}
}

// NewOIDs takes blocks values of zoid_seq in one query: value n stands for
// OIDs n*16-15 .. n*16.
func (d *dialect) NewOIDs(ctx context.Context, blocks int) ([]uint64, error) {
	var values []uint64
	err := d.withStore(ctx, func(c *pgx.Conn) error {
		values = values[:0]
		rows, err := c.Query(ctx, `SELECT nextval('zoid_seq') FROM generate_series(1, $1::int)`, max(blocks, 1))
		if err != nil {
			return err
		}
		var n int64
		_, err = pgx.ForEachRow(rows, []any{&n}, func() error {
			values = append(values, uint64(n))
			return nil
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("allocate oids: %w", err)
	}
	return schema.OIDBlocks(values), nil
}

// SetMinOID raises zoid_seq so that oid is never issued again, as RelStorage
// does: setval only when the sequence is behind.
func (d *dialect) SetMinOID(ctx context.Context, oid uint64) error {
	n := int64((oid + 15) / 16)
	return d.withStore(ctx, func(c *pgx.Conn) error {
		_, err := c.Exec(ctx, `SELECT CASE WHEN $1::bigint > nextval('zoid_seq') THEN setval('zoid_seq', $1::bigint) ELSE 0 END`, n)
		return err
	})
}

// Size counts the current objects, exactly while the planner's estimate is
// under a million rows (RelStorage always returns the estimate, which is 0
// until the table is analysed; a count is cheap at that size), and returns
// the database's size in bytes.
func (d *dialect) Size(ctx context.Context) (int64, int64, error) {
	var objects, bytes int64
	table := "current_object"
	if !d.settings.KeepHistory {
		table = "object_state"
	}
	err := d.withStore(ctx, func(c *pgx.Conn) error {
		return c.QueryRow(ctx, `SELECT CASE WHEN est < 1000000 THEN (SELECT count(*) FROM `+table+`) ELSE est END,
			pg_database_size(current_database())
			FROM (SELECT COALESCE((SELECT reltuples::bigint FROM pg_class WHERE oid = '`+table+`'::regclass), 0) AS est) e`).
			Scan(&objects, &bytes)
	})
	return objects, bytes, err
}

func (d *dialect) Close() error {
	d.load.close()
	d.store.close()
	return nil
}

// isDisconnect tells whether err means the connection is gone: the socket
// failed, or the server is shutting down or restarting.
func isDisconnect(c *pgx.Conn, err error) bool {
	if err == nil {
		return false
	}
	if c != nil && c.IsClosed() {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return strings.HasPrefix(pgErr.Code, "08") || strings.HasPrefix(pgErr.Code, "57P")
	}
	var netErr net.Error
	return errors.As(err, &netErr) || errors.Is(err, net.ErrClosed)
}

// wrap classifies a database error for the engine.
func (d *dialect) wrap(c *pgx.Conn, err error) error {
	if err == nil {
		return nil
	}
	if isDisconnect(c, err) {
		return fmt.Errorf("%s: %w: %v", d.describe, adapter.ErrDisconnected, err)
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "55P03": // lock_not_available: lock_timeout expired
			return fmt.Errorf("%w: %v", adapter.ErrLockTimeout, err)
		case "40P01": // deadlock_detected
			return fmt.Errorf("%w: %v", adapter.ErrDeadlock, err)
		case "40001": // serialization_failure
			return fmt.Errorf("%w: %v", adapter.ErrDeadlock, err)
		}
	}
	return err
}
