// Package sqlpack is adapter.PackSession over database/sql, for the
// dialects that use it (MySQL, SQLite, Oracle): a read connection, a write
// connection, and the dialect's locks as functions.
package sqlpack

import (
	"context"
	"database/sql"
	"errors"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Session is one pack's connections.
type Session struct {
	flavor *adapter.Flavor
	read   *sql.Conn
	write  *sql.Conn
	tx     *sql.Tx
	// lockCommit takes the commit lock inside tx; nil when the write
	// transaction's own lock is the commit lock (SQLite's BEGIN IMMEDIATE).
	lockCommit func(ctx context.Context, tx *sql.Tx) error
	release    func() error // releases the pack lock
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
	return &Session{flavor: f, read: r, write: w, lockCommit: lockCommit, release: release}, nil
}

func (s *Session) Flavor() *adapter.Flavor { return s.flavor }
func (s *Session) Read() adapter.SQL       { return runner{q: s.read} }

// Write runs on the write transaction while one is open, else on the
// write connection (autocommit).
func (s *Session) Write() adapter.SQL { return runner{q: writer{s}} }

// writer is the session's write transaction, or its connection outside one.
type writer struct{ s *Session }

func (w writer) current() querier {
	if w.s.tx != nil {
		return w.s.tx
	}
	return w.s.write
}

func (w writer) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	return w.current().ExecContext(ctx, query, args...)
}

func (w writer) QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	return w.current().QueryContext(ctx, query, args...)
}

func (s *Session) Begin(ctx context.Context) error {
	if s.tx != nil {
		return errors.New("pack: a write transaction is already open")
	}
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	s.tx = tx
	return nil
}

func (s *Session) Commit(context.Context) error {
	if s.tx == nil {
		return errors.New("pack: no write transaction to commit")
	}
	err := s.tx.Commit()
	s.tx = nil
	return err
}

func (s *Session) Rollback(context.Context) {
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
}

func (s *Session) LockCommit(ctx context.Context) error {
	if s.tx == nil {
		return errors.New("pack: the commit lock is taken inside a write transaction")
	}
	if s.lockCommit == nil {
		return nil
	}
	return s.lockCommit(ctx, s.tx)
}

// Close rolls back, closes both connections and releases the pack lock.
func (s *Session) Close() error {
	s.Rollback(context.Background())
	err := errors.Join(s.read.Close(), s.write.Close())
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

type runner struct{ q querier }

func (r runner) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	res, err := r.q.ExecContext(ctx, query, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

func (r runner) Query(ctx context.Context, query string, args ...any) (adapter.Rows, error) {
	rows, err := r.q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return sqlRows{rows}, nil
}

type sqlRows struct{ *sql.Rows }

func (r sqlRows) Close() { r.Rows.Close() }
