package replicalist

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
)

// Connector is the database/sql connector of a pool whose connections go to
// a list's choice: each to the first entry, in the list's order, that Dial
// connects to. A connection remembers its entry (a lost commit's outcome
// can only be asked of the server that ran it) and the list's generation:
// once the list went back to its first entry, a connection to another is
// closed when next taken from the pool.
type Connector struct {
	List *List
	// Dial opens a connection to one entry, with the session settings, and
	// refuses a server the pool cannot use (a replica, for writes).
	Dial func(ctx context.Context, entry string) (driver.Conn, error)
	// Final tells whether an error would be the same on every entry (a wrong
	// password or database): the next ones are not tried.
	Final func(error) bool
	Drv   driver.Driver
}

func (c *Connector) Connect(ctx context.Context) (driver.Conn, error) {
	idx, entries, _, err := c.List.Order()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, i := range idx {
		conn, err := c.Dial(ctx, entries[i])
		if err == nil {
			return &Conn{Conn: conn, Entry: entries[i], gen: c.List.Used(i), list: c.List}, nil
		}
		if c.Final != nil && c.Final(err) {
			return nil, err
		}
		errs = append(errs, fmt.Errorf("%s: %w", entries[i], err))
	}
	return nil, fmt.Errorf("replica-conf %s: no server answered: %w", c.List.Path(), errors.Join(errs...))
}

func (c *Connector) Driver() driver.Driver { return c.Drv }

// Conn is a connection opened from a list: the driver's, with its entry and
// generation. It passes the driver's interfaces through.
type Conn struct {
	driver.Conn
	Entry string
	gen   uint64
	list  *List
}

// EntryOf is the list entry conn is connected to, "" when it did not come
// from a list.
func EntryOf(conn *sql.Conn) string {
	var entry string
	_ = conn.Raw(func(dc any) error {
		if c, ok := dc.(*Conn); ok {
			entry = c.Entry
		}
		return nil
	})
	return entry
}

// ResetSession is called before a pooled connection is used again: one of an
// older generation is refused, and database/sql closes it and takes another.
func (c *Conn) ResetSession(ctx context.Context) error {
	if c.gen != c.list.Generation() {
		return driver.ErrBadConn
	}
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *Conn) IsValid() bool {
	v, ok := c.Conn.(driver.Validator)
	return !ok || v.IsValid()
}

// ExecContext and QueryContext answer ErrSkip when the driver's connection
// lacks them: database/sql then prepares the statement, as it would have.
func (c *Conn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	if e, ok := c.Conn.(driver.ExecerContext); ok {
		return e.ExecContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *Conn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	if q, ok := c.Conn.(driver.QueryerContext); ok {
		return q.QueryContext(ctx, query, args)
	}
	return nil, driver.ErrSkip
}

func (c *Conn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	if p, ok := c.Conn.(driver.ConnPrepareContext); ok {
		return p.PrepareContext(ctx, query)
	}
	return c.Conn.Prepare(query)
}

func (c *Conn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if b, ok := c.Conn.(driver.ConnBeginTx); ok {
		return b.BeginTx(ctx, opts)
	}
	if opts.Isolation != 0 || opts.ReadOnly {
		return nil, errors.New("the driver's connections take no transaction options")
	}
	return c.Conn.Begin()
}

func (c *Conn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

// CheckNamedValue lets the driver take its own argument types (godror's
// LOB options, for one); ErrSkip hands the others to database/sql.
func (c *Conn) CheckNamedValue(nv *driver.NamedValue) error {
	if n, ok := c.Conn.(driver.NamedValueChecker); ok {
		return n.CheckNamedValue(nv)
	}
	return driver.ErrSkip
}

// QueryValue runs a query returning one value on a driver's connection
// (before database/sql has it: the session checks of Dial).
func QueryValue(ctx context.Context, conn driver.Conn, query string) (driver.Value, error) {
	var rows driver.Rows
	err := driver.ErrSkip
	if q, ok := conn.(driver.QueryerContext); ok {
		rows, err = q.QueryContext(ctx, query, nil)
	}
	if errors.Is(err, driver.ErrSkip) {
		var st driver.Stmt
		if p, ok := conn.(driver.ConnPrepareContext); ok {
			st, err = p.PrepareContext(ctx, query)
		} else {
			st, err = conn.Prepare(query)
		}
		if err != nil {
			return nil, err
		}
		defer st.Close()
		if q, ok := st.(driver.StmtQueryContext); ok {
			rows, err = q.QueryContext(ctx, nil)
		} else {
			rows, err = st.Query(nil)
		}
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	v := make([]driver.Value, len(rows.Columns()))
	if len(v) != 1 {
		return nil, fmt.Errorf("%s returned %d columns", query, len(v))
	}
	if err := rows.Next(v); err != nil {
		if errors.Is(err, io.EOF) {
			err = fmt.Errorf("%s returned no row", query)
		}
		return nil, err
	}
	return v[0], nil
}
