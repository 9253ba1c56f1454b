package oracle

import (
	"context"
	"database/sql/driver"
	"errors"
	"fmt"
	"strings"

	"github.com/godror/godror"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
)

// replicaConnector opens a pool's connections with replica-conf (or
// ro-replica-conf), whose lines are data source names as dsn takes them (a
// TNS name, host:port/service, a connect descriptor): each connection goes
// to the first that answers and, for a store pool, is the primary database
// (a Data Guard standby, open read-only, is passed over).
type replicaConnector struct {
	replicalist.Connector
	o      Options
	writes bool
}

func (d *dialect) replicaConnector(path string, writes bool) (*replicaConnector, error) {
	list, err := replicalist.New(path, d.settings.ReplicaTimeout, parseDSNLine)
	if err != nil {
		return nil, err
	}
	c := &replicaConnector{o: d.options, writes: writes}
	c.Connector = replicalist.Connector{List: list, Dial: c.connect, Final: isLogonError,
		Drv: godror.NewConnector(d.options.params()).Driver()}
	return c, nil
}

// parseDSNLine takes a replica-conf line as a data source name. One carrying
// credentials (user/password@...) is refused without being repeated: the
// storage's user and password are used for every entry.
func parseDSNLine(line string) (string, error) {
	if connectTarget(line) != line {
		return "", errors.New("the data source name carries credentials (user/password@...); " +
			"give the user and password in the storage's options")
	}
	return line, nil
}

// open opens a connection to one entry.
func (c *replicaConnector) open(ctx context.Context, entry string) (driver.Conn, error) {
	p := c.o.params()
	p.ConnectString = entry
	return godror.NewConnector(p).Connect(ctx)
}

// connect opens a connection to one entry, checking that a store
// connection's database is the primary.
func (c *replicaConnector) connect(ctx context.Context, entry string) (driver.Conn, error) {
	conn, err := c.open(ctx, entry)
	if err != nil || !c.writes {
		return conn, err
	}
	v, err := replicalist.QueryValue(ctx, conn, `SELECT sys_context('USERENV', 'DATABASE_ROLE') FROM dual`)
	if err == nil {
		if role := fmt.Sprint(v); !strings.EqualFold(role, "PRIMARY") {
			err = fmt.Errorf("the database's role is %s: it takes no writes", role)
		}
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// to is a connector of connections to one entry, without the check (a lost
// commit's outcome is asked of the server that ran it, whatever it is now).
func (c *replicaConnector) to(entry string) driver.Connector {
	return entryConnector{c: c, entry: entry}
}

type entryConnector struct {
	c     *replicaConnector
	entry string
}

func (e entryConnector) Connect(ctx context.Context) (driver.Conn, error) {
	return e.c.open(ctx, e.entry)
}
func (e entryConnector) Driver() driver.Driver { return e.c.Drv }

// isLogonError tells whether err is the server refusing the user, which
// every entry would.
func isLogonError(err error) bool {
	return oraCode(err) == 1017
}
