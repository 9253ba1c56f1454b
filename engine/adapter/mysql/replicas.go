package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
)

// replicaConnector opens a pool's connections with replica-conf (or
// ro-replica-conf): each goes to the first entry of the list that answers
// and, for a store pool, takes writes (a replica with read_only on, not yet
// promoted, is passed over: the test user, like many, holds READ_ONLY ADMIN
// and would write to it). The connection remembers its server, for the
// outcome of a lost commit, and the list's generation: once the list went
// back to its first entry, a connection to another is closed when next
// taken from the pool.
type replicaConnector struct {
	list   *replicalist.List
	cfg    *mysql.Config // the configured server's settings; the address is each entry's
	init   string
	writes bool

	mu    sync.Mutex
	bases map[string]driver.Connector // by host:port
}

func newReplicaConnector(path string, timeout time.Duration, defaultPort int, cfg *mysql.Config, init string,
	writes bool) (*replicaConnector, error) {
	list, err := replicalist.New(path, timeout, replicalist.HostPort(defaultPort))
	if err != nil {
		return nil, err
	}
	return &replicaConnector{list: list, cfg: cfg, init: init, writes: writes, bases: map[string]driver.Connector{}}, nil
}

// base is the driver's connector for one server.
func (c *replicaConnector) base(addr string) (driver.Connector, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b := c.bases[addr]; b != nil {
		return b, nil
	}
	cfg := c.cfg.Clone()
	cfg.Net, cfg.Addr = "tcp", addr
	b, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, err
	}
	c.bases[addr] = b
	return b, nil
}

func (c *replicaConnector) Connect(ctx context.Context) (driver.Conn, error) {
	idx, entries, _, err := c.list.Order()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, i := range idx {
		conn, err := c.connect(ctx, entries[i])
		if err == nil {
			return &replicaConn{Conn: conn, addr: entries[i], gen: c.list.Used(i), list: c.list}, nil
		}
		if isAccessError(err) {
			return nil, err // a wrong password or database: the next server would say the same
		}
		errs = append(errs, fmt.Errorf("%s: %w", entries[i], err))
	}
	return nil, fmt.Errorf("replica-conf %s: no server answered: %w", c.list.Path(), errors.Join(errs...))
}

// connect opens a connection to one server with the session settings,
// checking that a store connection's server takes writes.
func (c *replicaConnector) connect(ctx context.Context, addr string) (driver.Conn, error) {
	b, err := c.base(addr)
	if err != nil {
		return nil, err
	}
	conn, err := (&connector{base: b, init: c.init}).Connect(ctx)
	if err != nil || !c.writes {
		return conn, err
	}
	readOnly, err := readOnly(ctx, conn)
	if err == nil && readOnly {
		err = errReadOnly
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

var errReadOnly = errors.New("the server is read-only (a replica): it takes no writes")

// readOnly reads the server's read_only setting.
func readOnly(ctx context.Context, conn driver.Conn) (bool, error) {
	rows, err := conn.(driver.QueryerContext).QueryContext(ctx, `SELECT @@global.read_only`, nil)
	if err != nil {
		return false, err
	}
	defer rows.Close()
	v := make([]driver.Value, 1)
	if err := rows.Next(v); err != nil {
		if err == io.EOF {
			err = errors.New("SELECT @@global.read_only returned no row")
		}
		return false, err
	}
	switch x := v[0].(type) {
	case int64:
		return x != 0, nil
	case []byte:
		return string(x) != "0", nil
	}
	return false, fmt.Errorf("SELECT @@global.read_only returned %T", v[0])
}

func (c *replicaConnector) Driver() driver.Driver { return mysql.MySQLDriver{} }

// isAccessError tells whether err is the server refusing the user or the database.
func isAccessError(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1044 || myErr.Number == 1045 || myErr.Number == 1049)
}

// replicaConn is a connection opened from a replica list: the driver's,
// with its server and generation.
type replicaConn struct {
	driver.Conn
	addr string
	gen  uint64
	list *replicalist.List
}

// ResetSession is called before a pooled connection is used again: one of an
// older generation is refused, and database/sql closes it and takes another.
func (c *replicaConn) ResetSession(ctx context.Context) error {
	if c.gen != c.list.Generation() {
		return driver.ErrBadConn
	}
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

// The rest passes the driver's interfaces through.

func (c *replicaConn) IsValid() bool {
	v, ok := c.Conn.(driver.Validator)
	return !ok || v.IsValid()
}

func (c *replicaConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	return c.Conn.(driver.ExecerContext).ExecContext(ctx, query, args)
}

func (c *replicaConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	return c.Conn.(driver.QueryerContext).QueryContext(ctx, query, args)
}

func (c *replicaConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, query)
}

func (c *replicaConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *replicaConn) Ping(ctx context.Context) error {
	return c.Conn.(driver.Pinger).Ping(ctx)
}

func (c *replicaConn) CheckNamedValue(nv *driver.NamedValue) error {
	return c.Conn.(driver.NamedValueChecker).CheckNamedValue(nv)
}

// serverOf is the host:port of the server conn is connected to when it came
// from a replica list, "" otherwise.
func serverOf(conn *sql.Conn) string {
	var addr string
	_ = conn.Raw(func(dc any) error {
		if rc, ok := dc.(*replicaConn); ok {
			addr = rc.addr
		}
		return nil
	})
	return addr
}
