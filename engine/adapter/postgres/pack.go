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
	d           *dialect
	read, write *pgx.Conn
	inTxn       bool
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
	return &packSession{d: d, read: r, write: w}, nil
}

func (s *packSession) Flavor() *adapter.Flavor { return flavor }
func (s *packSession) Read() adapter.SQL       { return pgRunner{s.d, s.read} }
func (s *packSession) Write() adapter.SQL      { return pgRunner{s.d, s.write} }

func (s *packSession) Begin(ctx context.Context) error {
	if s.inTxn {
		return errors.New("pack: a write transaction is already open")
	}
	if _, err := s.write.Exec(ctx, sqlBeginStore); err != nil {
		return s.d.wrap(s.write, err)
	}
	s.inTxn = true
	return nil
}

func (s *packSession) Commit(ctx context.Context) error {
	s.inTxn = false
	_, err := s.write.Exec(ctx, "COMMIT")
	return s.d.wrap(s.write, err)
}

func (s *packSession) Rollback(ctx context.Context) {
	if s.inTxn {
		s.inTxn = false
		if _, err := s.write.Exec(ctx, "ROLLBACK"); err != nil {
			s.write.Close(context.Background())
		}
	}
}

func (s *packSession) LockCommit(ctx context.Context) error {
	_, err := s.write.Exec(ctx, sqlCommitLock)
	return s.d.wrap(s.write, err)
}

// Close ends the session; closing the write connection also frees the
// advisory lock should the unlock fail.
func (s *packSession) Close() error {
	ctx := context.Background()
	s.Rollback(ctx)
	if !s.write.IsClosed() {
		s.write.Exec(ctx, sqlPackUnlock)
	}
	return errors.Join(s.read.Close(ctx), s.write.Close(ctx))
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
