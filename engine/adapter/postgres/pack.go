package postgres

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
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

// InsertInt64s inserts with COPY in binary form, written here: one round
// trip, no statement to parse, and no value boxed and encoded one by one
// (pgx's CopyFrom described the table before each batch and allocated
// three times a row: a sixth of the engine's CPU time in a million-object
// pack). The pack's tables are all of BIGINT columns, as RelStorage
// creates them.
func (r pgRunner) InsertInt64s(ctx context.Context, table string, cols []string, values []int64) error {
	if len(cols) == 0 || len(values)%len(cols) != 0 {
		return fmt.Errorf("copy into %s: %d values are no whole rows of %d columns", table, len(values), len(cols))
	}
	names := make([]string, len(cols))
	for i, c := range cols {
		names[i] = pgx.Identifier{c}.Sanitize()
	}
	sql := "COPY " + pgx.Identifier{table}.Sanitize() + " (" + strings.Join(names, ", ") + ") FROM STDIN BINARY"
	_, err := r.conn.PgConn().CopyFrom(ctx, binaryInt64Rows(values, len(cols)), sql)
	return r.d.wrap(r.conn, err)
}

// binaryInt64Rows reads rows of BIGINTs in COPY's binary format, about
// 64 kB at a time: the signature, flags and header extension length; each
// row its field count, then each value's length (8) and its bytes,
// big-endian; -1 at the end.
func binaryInt64Rows(values []int64, width int) *sqlrow.Int64Rows {
	return &sqlrow.Int64Rows{Values: values, Width: width, Piece: 64 << 10,
		Head: []byte("PGCOPY\n\xff\r\n\x00\x00\x00\x00\x00\x00\x00\x00\x00"), Tail: []byte{0xff, 0xff},
		Encode: func(buf []byte, row []int64) []byte {
			buf = binary.BigEndian.AppendUint16(buf, uint16(len(row)))
			for _, v := range row {
				buf = binary.BigEndian.AppendUint32(buf, 8)
				buf = binary.BigEndian.AppendUint64(buf, uint64(v))
			}
			return buf
		}}
}

func (r pgRunner) Query(ctx context.Context, query string, args ...any) (adapter.Rows, error) {
	rows, err := r.conn.Query(ctx, query, args...)
	if err != nil {
		return nil, r.d.wrap(r.conn, err)
	}
	return rows, nil
}
