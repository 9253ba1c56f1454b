// Package oracle is the Oracle dialect, built on godror. It is data- and
// lock-compatible with RelStorage 4.x: the same schema (NUMBER(20) oids and
// tids, BLOB states, the zoid_seq sequence, RelStorage's relstorage_op
// package for its own processes), the same row locks (the commit_row_lock
// row FOR UPDATE for the commit, the modified objects' rows FOR UPDATE WAIT
// in oid order, FOR UPDATE NOWAIT for readCurrent since Oracle has no
// shared row locks), the pack lock (LOCK TABLE pack_lock) and the same tid
// rule under the commit lock.
//
// godror compiles without Oracle's client libraries; they are loaded when
// the first connection is made. Without them, Open fails with a message
// saying what to install.
package oracle

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/godror/godror"
	"github.com/godror/godror/dsn"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

func init() {
	adapter.Register("oracle", Open)
}

// The interfaces the engine uses, checked at compile time.
var (
	_ adapter.Dialect        = (*dialect)(nil)
	_ adapter.LoadConn       = (*loadConn)(nil)
	_ adapter.SnapshotPoller = (*loadConn)(nil)
	_ adapter.StoreConn      = (*storeConn)(nil)
)

// Options is the adapter section of the engine's options: RelStorage's
// <oracle> keys and its zodburi's twophase.
type Options struct {
	User     string `json:"user"`
	Password string `json:"password"`
	DSN      string `json:"dsn"`
	Twophase bool   `json:"twophase"`
	Driver   string `json:"driver"`
}

// Drivers RelStorage knows for Oracle. Any of them (or "auto") selects godror.
var knownDrivers = map[string]bool{"": true, "auto": true, "godror": true, "cx_Oracle": true}

// maxIdle is the number of idle connections kept per pool.
const maxIdle = 16

type dialect struct {
	settings adapter.Settings
	options  Options
	describe string
	q        queries

	load  *sql.DB // snapshots: read-only transactions
	store *sql.DB // READ COMMITTED write transactions
	// replicas is the store pool's connector with replica-conf, nil without.
	replicas *replicaConnector
}

// connector is a pool's connector: to the dsn, or with a replica list
// (path) to its choice.
func (d *dialect) connector(path string, writes bool) (driver.Connector, error) {
	if path == "" {
		return godror.NewConnector(d.options.params()), nil
	}
	return d.replicaConnector(path, writes)
}

// Open connects to the database, checks (or creates) the schema and returns the dialect.
func Open(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
	var o Options
	if err := adapter.DecodeOptions("oracle", s.Options, &o); err != nil {
		return nil, err
	}
	if err := o.check(); err != nil {
		return nil, err
	}
	d := &dialect{settings: s, options: o, describe: describe(o),
		q: newQueries(s.KeepHistory, lockSeconds(s.LockTimeout))}
	// replica-conf for both pools, ro-replica-conf instead for the load pool;
	// each pool follows its own list. The dsn option is not used then.
	load, err := d.connector(cmp.Or(s.ROReplicaConf, s.ReplicaConf), false)
	if err != nil {
		return nil, err
	}
	store, err := d.connector(s.ReplicaConf, true)
	if err != nil {
		return nil, err
	}
	if rc, ok := store.(*replicaConnector); ok {
		d.replicas = rc
		d.describe = fmt.Sprintf("oracle:replica-conf=%s user=%s", rc.List.Path(), o.User)
	}
	d.load, d.store = sql.OpenDB(load), sql.OpenDB(store)
	for _, db := range []*sql.DB{d.load, d.store} {
		db.SetMaxIdleConns(maxIdle)
	}
	if err := d.setUp(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

func (o Options) check() error {
	if !knownDrivers[o.Driver] {
		return adapter.ConfigError("oracle driver %q is not available; use auto (godror)", o.Driver)
	}
	if o.DSN == "" {
		return adapter.ConfigError("oracle: no dsn given (a TNS name, host:port/service or a connect descriptor)")
	}
	if o.User == "" {
		return adapter.ConfigError("oracle: no user given")
	}
	return nil
}

func describe(o Options) string {
	return fmt.Sprintf("oracle:dsn=%s user=%s", connectTarget(o.DSN), o.User)
}

// connectTarget is a DSN without the credentials Oracle's "user/password@"
// form may carry in front of the connect string (a connect descriptor,
// "(DESCRIPTION=...)", carries none).
func connectTarget(dsn string) string {
	if strings.HasPrefix(strings.TrimSpace(dsn), "(") {
		return dsn
	}
	if at := strings.LastIndex(dsn, "@"); at >= 0 {
		return dsn[at+1:]
	}
	return dsn
}

// lockSeconds is commit-lock-timeout as Oracle's WAIT clause counts it:
// whole seconds, 0 meaning NOWAIT.
func lockSeconds(timeout time.Duration) int {
	if timeout <= 0 {
		return 0
	}
	return max(1, int((timeout+time.Second-1)/time.Second))
}

// params are godror's connection parameters: standalone sessions (the
// database/sql pool keeps them) with UTC as the session time zone, which
// spares godror a query on each new connection.
func (o Options) params() dsn.ConnectionParams {
	var p dsn.ConnectionParams
	p.Username = o.User
	p.Password = dsn.NewPassword(o.Password)
	p.ConnectString = o.DSN
	p.StandaloneConnection = true
	p.Timezone = time.UTC
	return p
}

// setUp reaches the server and checks or creates the schema.
func (d *dialect) setUp(ctx context.Context) error {
	c, err := d.store.Conn(ctx)
	if err != nil {
		return d.connectError(err)
	}
	defer c.Close()
	return d.prepareSchema(ctx, c)
}

// clientMissing is ODPI-C's error when libclntsh cannot be loaded.
const clientMissing = "DPI-1047"

// ClientLibrariesMessage is the first part of the error opening a storage
// without Oracle's client libraries.
const ClientLibrariesMessage = "Oracle client libraries not found: install Oracle Instant Client " +
	"(Basic or Basic Light) and set LD_LIBRARY_PATH to its directory before starting Python, " +
	"or register it with ldconfig"

// connectError explains a failure to connect, without the password.
func (d *dialect) connectError(err error) error {
	if strings.Contains(err.Error(), clientMissing) {
		return adapter.ConfigError("%s (opening %s; the driver said: %v)", ClientLibrariesMessage, d.describe, err)
	}
	switch oraCode(err) {
	case 1017: // ORA-01017: invalid username/password; logon denied
		return adapter.ConfigError("%s: authentication failed: %v", d.describe, err)
	case 12154, 12514, 12505: // cannot resolve the name; unknown service or SID
		return adapter.ConfigError("%s: the data source name does not name a database: %v", d.describe, err)
	}
	return fmt.Errorf("%s: %w: %w", d.describe, adapter.ErrUnreachable, err)
}

func (d *dialect) Describe() string { return d.describe }

func (d *dialect) OpenLoad(ctx context.Context) (adapter.LoadConn, error) {
	c, err := d.load.Conn(ctx)
	if err != nil {
		return nil, d.connectError(err)
	}
	return &loadConn{session: session{d: d, conn: c}}, nil
}

func (d *dialect) OpenStore(ctx context.Context) (adapter.StoreConn, error) {
	c, err := d.store.Conn(ctx)
	if err != nil {
		return nil, d.connectError(err)
	}
	return &storeConn{session: session{d: d, conn: c}}, nil
}

// withStore runs fn on a pooled store connection outside any transaction
// (godror commits each statement), retrying on another connection when the
// pooled one turns out dead.
func (d *dialect) withStore(ctx context.Context, fn func(*sql.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := d.store.Conn(ctx)
		if err != nil {
			return d.connectError(err)
		}
		err = fn(c)
		c.Close()
		if err != nil && isDisconnect(err) && attempt <= maxIdle {
			continue
		}
		return d.wrap(err)
	}
}

// NewOIDs takes one zoid_seq value: value n stands for OIDs n*16-15 .. n*16.
// One block per call (a multi-row NEXTVAL query is not tested against a server).
func (d *dialect) NewOIDs(ctx context.Context, _ int) ([]uint64, error) {
	var n int64
	err := d.withStore(ctx, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, sqlNextOID).Scan(&n)
	})
	if err != nil {
		return nil, fmt.Errorf("allocate oids: %w", err)
	}
	return schema.OIDBlock(uint64(n)), nil
}

// SetMinOID makes sure zoid_seq never issues a value covering oid again.
// The ALTER SEQUENCE statements commit at once, so they run on a
// connection of their own, never inside a commit.
func (d *dialect) SetMinOID(ctx context.Context, oid uint64) error {
	want := int64((oid + 15) / 16)
	return d.withStore(ctx, func(c *sql.Conn) error {
		var next int64
		if err := c.QueryRowContext(ctx, sqlNextOID).Scan(&next); err != nil {
			return err
		}
		for _, s := range setMinOID(next, want) {
			if _, err := c.ExecContext(ctx, s.text); err != nil {
				return err
			}
		}
		return nil
	})
}

func (d *dialect) Size(ctx context.Context) (int64, int64, error) {
	var objects, bytes int64
	s := d.q.size()
	err := d.withStore(ctx, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, s.text, s.args...).Scan(&objects, &bytes)
	})
	return objects, bytes, err
}

func (d *dialect) Close() error {
	d.load.Close()
	d.store.Close()
	return nil
}

// Oracle errors the dialect classifies.
const (
	errDeadlock  = 60    // ORA-00060: deadlock detected while waiting for resource
	errBusy      = 54    // ORA-00054: resource busy and acquire with NOWAIT specified
	errWaitLimit = 30006 // ORA-30006: resource busy; acquire with WAIT timeout expired
	errSetTxn    = 1453  // ORA-01453: SET TRANSACTION must be first statement of transaction
)

// oraCode is the ORA- number of an Oracle error (godror's *OraErr), 0 for others.
func oraCode(err error) int {
	var coded interface{ Code() int }
	if errors.As(err, &coded) {
		return coded.Code()
	}
	return 0
}

// isDisconnect tells whether err means the connection is gone.
func isDisconnect(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, sql.ErrConnDone) || godror.IsBadConn(err) {
		return true
	}
	switch oraCode(err) {
	case 3113, 3114, 3135, 12537, 12547, 28, 1012, 1089, 1092:
		// end-of-file on channel, not connected, lost contact, connection
		// closed, session killed, not logged on, shutdown in progress
		return true
	}
	return strings.Contains(err.Error(), "DPI-1010") || strings.Contains(err.Error(), "DPI-1080")
}

// isLockFailure tells whether a lock was refused (NOWAIT) or timed out (WAIT).
func isLockFailure(err error) bool {
	code := oraCode(err)
	return code == errBusy || code == errWaitLimit
}

// wrap classifies a database error for the engine.
func (d *dialect) wrap(err error) error {
	if err == nil {
		return nil
	}
	switch {
	case isDisconnect(err):
		return fmt.Errorf("%s: %w: %v", d.describe, adapter.ErrDisconnected, err)
	case isLockFailure(err):
		return fmt.Errorf("%w: %v", adapter.ErrLockTimeout, err)
	case oraCode(err) == errDeadlock:
		return fmt.Errorf("%w: %v", adapter.ErrDeadlock, err)
	}
	return err
}

func out(dest any) sql.Out { return sql.Out{Dest: dest} }
