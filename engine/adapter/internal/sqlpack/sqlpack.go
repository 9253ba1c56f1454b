// Package sqlpack is adapter.PackSession over database/sql, for the
// dialects that use it (MySQL, SQLite, Oracle): a read connection, a write
// connection, and the dialect's locks as functions.
package sqlpack

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// Session is one pack's connections.
type Session struct {
	flavor *adapter.Flavor
	read   *sql.Conn
	w      *txConn // the write connection and its transaction
	// lockCommit takes the commit lock inside tx; nil when the write
	// transaction's own lock is the commit lock (SQLite's BEGIN IMMEDIATE).
	lockCommit func(ctx context.Context, tx *sql.Tx) error
	release    func() error // releases the pack lock
	// prepared: the bulk inserts' statements on the write connection, by
	// text (PrepareInserts); closed before the connection goes back.
	prepared   map[string]driver.Stmt
	maxRows    int
	loader     Loader            // the bulk inserts, when the dialect has its own way (SetLoader)
	wrap       func(error) error // classifies the statements' errors (WrapErrors)
	set, reset string            // run on each write connection when taken and at Close (Set)
	pool       *sql.DB           // the write pool workers come from (EnableWorkers); nil: none
}

// Set runs set on the write connection, and reset at Close, before the
// connection goes back to its pool.
func (s *Session) Set(ctx context.Context, set, reset string) error {
	if _, err := s.w.c.ExecContext(ctx, set); err != nil {
		return err
	}
	s.set, s.reset = set, reset
	return nil
}

// EnableWorkers lets the pack open workers (adapter.PackWorkers): more
// connections from pool, the write connection's, with its settings (Set).
func (s *Session) EnableWorkers(pool *sql.DB) { s.pool = pool }

// Worker returns another write connection, or nil when the session has no
// workers (EnableWorkers).
func (s *Session) Worker(ctx context.Context) (adapter.PackWorker, error) {
	if s.pool == nil {
		return nil, nil
	}
	c, err := s.pool.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if s.set != "" {
		if _, err := c.ExecContext(ctx, s.set); err != nil {
			c.Close()
			return nil, err
		}
	}
	return &worker{txConn{c: c}, s}, nil
}

// worker is a write connection of its own.
type worker struct {
	txConn
	s *Session
}

func (w *worker) Write() adapter.SQL { return w.s.writer(&w.txConn) }

func (w *worker) Close() error {
	w.Rollback(context.Background())
	return w.close(w.s.reset)
}

// Open takes a read and a write connection from the pools; release is
// called at Close, after both are closed.
func Open(ctx context.Context, f *adapter.Flavor, read, write *sql.DB,
	lockCommit func(context.Context, *sql.Tx) error, release func() error) (*Session, error) {
	r, err := read.Conn(ctx)
	if err != nil {
		return nil, err
	}
	w, err := write.Conn(ctx)
	if err != nil {
		r.Close()
		return nil, err
	}
	return &Session{flavor: f, read: r, w: &txConn{c: w}, lockCommit: lockCommit, release: release}, nil
}

func (s *Session) Flavor() *adapter.Flavor { return s.flavor }
func (s *Session) Read() adapter.SQL       { return runner{q: s.read, wrap: s.wrap} }

// WrapErrors makes the statements' errors wrap(err) (the dialect's
// classification: adapter.ErrDeadlock and the others).
func (s *Session) WrapErrors(wrap func(error) error) { s.wrap = wrap }

// Write runs on the write transaction while one is open, else on the
// write connection (autocommit).
func (s *Session) Write() adapter.SQL {
	if s.prepared != nil {
		return bulkRunner{runner{q: s.w, wrap: s.wrap}, s}
	}
	return s.writer(s.w)
}

// Execer runs a statement: the write transaction, while one is open.
type Execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Loader inserts len(values)/len(cols) rows of integers into table through
// exec, in the dialect's fastest way; adapter.ErrBulkRefused makes the pack
// insert them as multi-row INSERTs instead.
type Loader func(ctx context.Context, exec Execer, table string, cols []string, values []int64) error

// SetLoader makes the session's and its workers' Write an
// adapter.BulkInserter through load.
func (s *Session) SetLoader(load Loader) { s.loader = load }

// writer runs on w, and inserts through the session's Loader if any.
func (s *Session) writer(w *txConn) adapter.SQL {
	r := runner{q: w, wrap: s.wrap}
	if s.loader != nil {
		return loadRunner{r, w, s.loader}
	}
	return r
}

type loadRunner struct {
	runner
	w    *txConn
	load Loader
}

func (l loadRunner) InsertInt64s(ctx context.Context, table string, cols []string, values []int64) error {
	return l.runner.classify(l.load(ctx, l.w, table, cols, values))
}

// PrepareInserts makes the session's Write an adapter.BulkInserter whose
// multi-row INSERTs (power-of-two rows, at most maxRows) are prepared once
// on the write connection and run with the driver's own values, skipping
// what database/sql adds to a call (the statement parsed again each time,
// an interface and a conversion for every value). SQLite's inserts of a
// pack's references went from 0.60-0.77 to 0.32 s for 283,000 rows.
func (s *Session) PrepareInserts(maxRows int) {
	s.prepared, s.maxRows = map[string]driver.Stmt{}, maxRows
}

type bulkRunner struct {
	runner
	s *Session
}

func (b bulkRunner) InsertInt64s(ctx context.Context, table string, cols []string, values []int64) error {
	s := b.s
	if s.w.tx == nil {
		return errors.New("pack: bulk inserts run inside a write transaction")
	}
	w := len(cols)
	row := "(" + strings.TrimSuffix(strings.Repeat("?, ", w), ", ") + ")"
	head := "INSERT INTO " + table + " (" + strings.Join(cols, ", ") + ") VALUES "
	args := make([]driver.NamedValue, 0, min(len(values), s.maxRows*w))
	for len(values) >= w {
		n := s.maxRows
		for n > len(values)/w {
			n /= 2
		}
		args = args[:0]
		for i, v := range values[:n*w] {
			args = append(args, driver.NamedValue{Ordinal: i + 1, Value: v})
		}
		text := head + strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
		err := s.w.c.Raw(func(dc any) error {
			st := s.prepared[text]
			if st == nil {
				var err error
				if st, err = sqlrow.Prepare(ctx, dc, text); err != nil {
					return err
				}
				s.prepared[text] = st
			}
			return sqlrow.ExecStmt(ctx, st, args)
		})
		if err != nil {
			return err
		}
		values = values[n*w:]
	}
	return nil
}

// txConn is a write connection, and its transaction while one is open.
type txConn struct {
	c  *sql.Conn
	tx *sql.Tx
}

func (t *txConn) current() querier {
	if t.tx != nil {
		return t.tx
	}
	return t.c
}

func (t *txConn) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return t.current().ExecContext(ctx, query, args...)
}

func (t *txConn) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return t.current().QueryContext(ctx, query, args...)
}

func (t *txConn) Begin(ctx context.Context) error {
	if t.tx != nil {
		return errors.New("pack: a write transaction is already open")
	}
	tx, err := t.c.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	t.tx = tx
	return nil
}

func (t *txConn) Commit(context.Context) error {
	if t.tx == nil {
		return errors.New("pack: no write transaction to commit")
	}
	err := t.tx.Commit()
	t.tx = nil
	return err
}

func (t *txConn) Rollback(context.Context) {
	if t.tx != nil {
		t.tx.Rollback()
		t.tx = nil
	}
}

// close runs reset, if any, and gives the connection back to its pool;
// never with the pack's settings: closed instead when reset fails.
func (t *txConn) close(reset string) error {
	var err error
	if reset != "" {
		if _, err = t.c.ExecContext(context.Background(), reset); err != nil {
			t.c.Raw(func(any) error { return driver.ErrBadConn })
		}
	}
	return errors.Join(err, t.c.Close())
}

func (s *Session) Begin(ctx context.Context) error  { return s.w.Begin(ctx) }
func (s *Session) Commit(ctx context.Context) error { return s.w.Commit(ctx) }
func (s *Session) Rollback(ctx context.Context)     { s.w.Rollback(ctx) }

func (s *Session) LockCommit(ctx context.Context) error {
	if s.w.tx == nil {
		return errors.New("pack: the commit lock is taken inside a write transaction")
	}
	if s.lockCommit == nil {
		return nil
	}
	return s.lockCommit(ctx, s.w.tx)
}

// Close rolls back, closes both connections and releases the pack lock.
func (s *Session) Close() error {
	s.Rollback(context.Background())
	var err error
	for _, st := range s.prepared {
		err = errors.Join(err, st.Close())
	}
	s.prepared = nil
	err = errors.Join(err, s.read.Close(), s.w.close(s.reset))
	if s.release != nil {
		err = errors.Join(err, s.release())
	}
	return err
}

// querier is what *sql.Conn and *sql.Tx share.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

type runner struct {
	q    querier
	wrap func(error) error // nil: errors as they are
}

func (r runner) classify(err error) error {
	if err == nil || r.wrap == nil {
		return err
	}
	return r.wrap(err)
}

func (r runner) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := r.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, r.classify(err)
	}
	return res.RowsAffected()
}

func (r runner) Query(ctx context.Context, query string, args ...any) (adapter.Rows, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, r.classify(err)
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
