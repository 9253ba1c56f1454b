package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
)

// replicaConnector opens a pool's connections with replica-conf (or
// ro-replica-conf): each goes to the first entry of the list that answers
// and, for a store pool, takes writes (a replica with read_only on, not yet
// promoted, is passed over: the test user, like many, holds READ_ONLY ADMIN
// and would write to it).
type replicaConnector struct {
	replicalist.Connector
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
	c := &replicaConnector{cfg: cfg, init: init, writes: writes, bases: map[string]driver.Connector{}}
	c.Connector = replicalist.Connector{List: list, Dial: c.connect, Final: isAccessError, Drv: mysql.MySQLDriver{}}
	return c, nil
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
	v, err := replicalist.QueryValue(ctx, conn, `SELECT @@global.read_only`)
	switch x := v.(type) {
	case int64:
		return x != 0, nil
	case []byte:
		return string(x) != "0", nil
	}
	if err == nil {
		err = fmt.Errorf("SELECT @@global.read_only returned %T", v)
	}
	return false, err
}

// isAccessError tells whether err is the server refusing the user or the database.
func isAccessError(err error) bool {
	var myErr *mysql.MySQLError
	return errors.As(err, &myErr) && (myErr.Number == 1044 || myErr.Number == 1045 || myErr.Number == 1049)
}
