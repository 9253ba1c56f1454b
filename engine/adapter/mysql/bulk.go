package mysql

import (
	"context"
	"database/sql/driver"
	"errors"
	"strings"
	"sync"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// The rows of a large commit go to the server as executions of prepared
// multi-row statements, whose parameters travel in the binary protocol: the
// server parses no literal (500 rows of 1.5 kB states: 51 us a row written
// into the text, escaped or in hexadecimal, against a few with the binary
// protocol). A small commit keeps the one round trip of a text query that
// ends with COMMIT; a large one pays one round trip per execution (the
// rows in power-of-two groups of at most bulkMaxRows, largest first) and
// one for COMMIT.
const (
	bulkMinRows  = 32       // a commit of this many rows, or
	bulkMinBytes = 64 << 10 // this many bytes of states, is written with prepared statements
	bulkMaxRows  = 512      // the rows of one execution, at most
)

// bulkWrites tells whether a commit's rows go through prepared statements.
func bulkWrites(rows int, stateBytes int) bool {
	return rows >= bulkMinRows || stateBytes >= bulkMinBytes
}

// bulk adds rows (each the parameters of values) as executions of head,
// a power of two of values, and tail; each execution carries at most
// limit bytes of parameters (but always one row). The batcher's next
// statement starts a new script, after them.
func (b *batcher) bulk(head, values, tail string, rows [][]any) {
	for len(rows) > 0 {
		n := bulkMaxRows
		for n > len(rows) || (n > 1 && rowBytes(rows[:n]) > b.limit) {
			n /= 2
		}
		args := make([]any, 0, n*len(rows[0]))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		var text strings.Builder
		text.WriteString(head)
		for i := range n {
			if i > 0 {
				text.WriteString(", ")
			}
			text.WriteString(values)
		}
		text.WriteString(tail)
		b.scripts = append(b.scripts, &script{prepared: text.String(), args: args})
		rows = rows[n:]
	}
	b.cur = nil
}

func rowBytes(rows [][]any) int {
	n := 0
	for _, r := range rows {
		for _, a := range r {
			if p, ok := a.([]byte); ok {
				n += len(p)
			} else {
				n += 8
			}
		}
	}
	return n
}

// execPrepared runs a bulk script's statement, prepared on the connection
// the first time.
func (c *storeConn) execPrepared(ctx context.Context, s *script) error {
	if c.conn == nil || !c.inTxn || c.pending {
		return errors.New("mysql: prepared writes outside a write transaction")
	}
	args := make([]driver.NamedValue, len(s.args))
	for i, a := range s.args {
		v, err := driver.DefaultParameterConverter.ConvertValue(a)
		if err != nil {
			return err
		}
		args[i] = driver.NamedValue{Ordinal: i + 1, Value: v}
	}
	return c.conn.Raw(func(dc any) error {
		st, err := c.d.stmts.get(ctx, dc, s.prepared)
		var refused *mysql.MySQLError
		if errors.As(err, &refused) {
			// The server would not prepare it (max_prepared_stmt_count reached, ...):
			// the same statement as text, its parameters interpolated by the driver.
			ex, ok := dc.(driver.ExecerContext)
			if !ok {
				return err
			}
			_, err = ex.ExecContext(ctx, s.prepared, args)
			return err
		}
		if err != nil {
			return err
		}
		if err = sqlrow.ExecStmt(ctx, st, args); err != nil {
			c.d.stmts.drop(dc, s.prepared) // prepared again next time, should the statement be the cause
		}
		return err
	})
}

// stmtCache keeps the bulk statements prepared on each store connection
// for the connection's life. An entry whose connection was closed is
// dropped, with its statements, when the cache next grows past stmtCacheSweep
// connections.
type stmtCache struct {
	mu     sync.Mutex
	byConn map[any]map[string]driver.Stmt
}

const stmtCacheSweep = 64

func (c *stmtCache) get(ctx context.Context, dc any, text string) (driver.Stmt, error) {
	c.mu.Lock()
	st := c.byConn[dc][text]
	c.mu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := sqlrow.Prepare(ctx, dc, text)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.byConn == nil {
		c.byConn = map[any]map[string]driver.Stmt{}
	}
	m := c.byConn[dc]
	if m == nil {
		if len(c.byConn) >= stmtCacheSweep {
			c.sweep()
		}
		m = map[string]driver.Stmt{}
		c.byConn[dc] = m
	}
	m[text] = st
	return st, nil
}

// drop forgets, and closes, one statement of a connection.
func (c *stmtCache) drop(dc any, text string) {
	c.mu.Lock()
	st := c.byConn[dc][text]
	delete(c.byConn[dc], text)
	c.mu.Unlock()
	if st != nil {
		st.Close()
	}
}

// sweep drops the entries of closed connections; mu is held.
func (c *stmtCache) sweep() {
	for dc, m := range c.byConn {
		if v, ok := dc.(driver.Validator); ok && !v.IsValid() {
			for _, st := range m {
				st.Close() // the connection is closed: nothing is sent
			}
			delete(c.byConn, dc)
		}
	}
}

// clear forgets every entry (the pools are closed).
func (c *stmtCache) clear() {
	c.mu.Lock()
	c.byConn = nil
	c.mu.Unlock()
}
