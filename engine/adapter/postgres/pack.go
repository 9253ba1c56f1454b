package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

var flavor = &adapter.Flavor{Numbered: "$", True: "TRUE", False: "FALSE", Txn: "transaction",
	Empty: "TRUNCATE", Analyze: "ANALYZE", MaxParams: 60000}

// RelStorage's pack lock: a session advisory lock on -2, taken without
// waiting; the commit lock is the transaction advisory lock on -1.
const (
	sqlPackTryLock = `SELECT pg_try_advisory_lock(-2)`
	sqlPackUnlock  = `SELECT pg_advisory_unlock(-2)`
	// An undo holds it shared until its transaction ends.
	sqlUndoPackLock = `SELECT pg_try_advisory_xact_lock_shared(-2)`
)

// packSession holds the pack lock on its write connection, whose session
// outlives the pack's transactions.
type packSession struct {
	d    *dialect
	read *pgx.Conn
	w    *packWorker // the write connection, which holds the pack lock
}

func (d *dialect) OpenPack(ctx context.Context) (adapter.PackSession, error) {
	w, err := d.store.dial(ctx)
	if err != nil {
		return nil, err
	}
	var got bool
	if err := w.QueryRow(ctx, sqlPackTryLock).Scan(&got); err != nil {
		w.Close(context.Background())
		return nil, d.wrap(w, err)
	}
	if !got {
		w.Close(context.Background())
		return nil, fmt.Errorf("%s: %w", d.describe, adapter.ErrPackLocked)
	}
	r, err := d.store.dial(ctx)
	if err != nil {
		w.Close(context.Background())
		return nil, err
	}
	return &packSession{d: d, read: r, w: &packWorker{d: d, conn: w}}, nil
}

func (s *packSession) Flavor() *adapter.Flavor { return flavor }
func (s *packSession) Read() adapter.SQL       { return pgRunner{s.d, s.read} }
func (s *packSession) Write() adapter.SQL      { return s.w.Write() }

func (s *packSession) Begin(ctx context.Context) error  { return s.w.Begin(ctx) }
func (s *packSession) Commit(ctx context.Context) error { return s.w.Commit(ctx) }
func (s *packSession) Rollback(ctx context.Context)     { s.w.Rollback(ctx) }
func (s *packSession) Worker(ctx context.Context) (adapter.PackWorker, error) {
	c, err := s.d.store.dial(ctx)
	if err != nil {
		return nil, err
	}
	return &packWorker{d: s.d, conn: c}, nil
}

// packWorker runs transactions on one write connection: the session's, or
// a worker's own (Close ends a worker; the session closes its own).
type packWorker struct {
	d     *dialect
	conn  *pgx.Conn
	inTxn bool
}

func (w *packWorker) Write() adapter.SQL { return pgRunner{w.d, w.conn} }

func (w *packWorker) Begin(ctx context.Context) error {
	if w.inTxn {
		return errors.New("pack: a write transaction is already open")
	}
	if _, err := w.conn.Exec(ctx, sqlBeginStore); err != nil {
		return w.d.wrap(w.conn, err)
	}
	w.inTxn = true
	return nil
}

func (w *packWorker) Commit(ctx context.Context) error {
	w.inTxn = false
	_, err := w.conn.Exec(ctx, "COMMIT")
	return w.d.wrap(w.conn, err)
}

func (w *packWorker) Rollback(ctx context.Context) {
	if w.inTxn {
		w.inTxn = false
		if _, err := w.conn.Exec(ctx, "ROLLBACK"); err != nil {
			w.conn.Close(context.Background())
		}
	}
}

func (w *packWorker) Close() error {
	w.Rollback(context.Background())
	return w.conn.Close(context.Background())
}

func (s *packSession) LockCommit(ctx context.Context) error {
	_, err := s.w.conn.Exec(ctx, sqlCommitLock)
	return s.d.wrap(s.w.conn, err)
}

// Close ends the session; closing the write connection also frees the
// advisory lock should the unlock fail.
func (s *packSession) Close() error {
	ctx := context.Background()
	s.Rollback(ctx)
	if !s.w.conn.IsClosed() {
		s.w.conn.Exec(ctx, sqlPackUnlock)
	}
	return errors.Join(s.read.Close(ctx), s.w.conn.Close(ctx))
}

type pgRunner struct {
	d    *dialect
	conn *pgx.Conn
}

func (r pgRunner) Exec(ctx context.Context, query string, args ...any) (int64, error) {
	tag, err := r.conn.Exec(ctx, query, args...)
	if err != nil {
		return 0, r.d.wrap(r.conn, err)
	}
	return tag.RowsAffected(), nil
}

// InsertInt64s inserts with COPY: one round trip, no statement to parse.
func (r pgRunner) InsertInt64s(ctx context.Context, table string, cols []string, values []int64) error {
	w := len(cols)
	_, err := r.conn.CopyFrom(ctx, pgx.Identifier{table}, cols, pgx.CopyFromSlice(len(values)/w,
		func(i int) ([]any, error) {
			row := make([]any, w)
			for j := range row {
				row[j] = values[i*w+j]
			}
			return row, nil
		}))
	return r.d.wrap(r.conn, err)
}

func (r pgRunner) Query(ctx context.Context, query string, args ...any) (adapter.Rows, error) {
	rows, err := r.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, r.d.wrap(r.conn, err)
	}
	return rows, nil
}
