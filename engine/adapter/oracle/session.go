package oracle

import (
	"context"
	"database/sql"
	"fmt"
)

// querier is what a statement runs on: the connection (each statement
// committed by godror) or the transaction open on it.
type querier interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// session is one pooled connection running one transaction at a time.
type session struct {
	d    *dialect
	conn *sql.Conn
	tx   *sql.Tx
}

func (s *session) on() querier {
	if s.tx != nil {
		return s.tx
	}
	return s.conn
}

// begin starts a transaction. godror sends its own SET TRANSACTION first
// (committed at once); first, when set, is sent as the transaction's first
// statement. A connection found dead is replaced: nothing had begun on it.
func (s *session) begin(ctx context.Context, pool *sql.DB, opts *sql.TxOptions, first string) error {
	for attempt := 0; ; attempt++ {
		tx, err := s.conn.BeginTx(ctx, opts)
		if err == nil && first != "" {
			_, err = tx.ExecContext(ctx, first)
			if oraCode(err) == errSetTxn {
				// godror's SET TRANSACTION (the same) already began it.
				err = nil
			}
			if err != nil {
				tx.Rollback()
			}
		}
		if err == nil {
			s.tx = tx
			return nil
		}
		if !isDisconnect(err) || attempt >= maxIdle {
			return s.d.wrap(err)
		}
		s.conn.Close()
		if s.conn, err = pool.Conn(ctx); err != nil {
			return s.d.connectError(err)
		}
	}
}

// end rolls the transaction back, if one is open.
func (s *session) end() {
	if s.tx != nil {
		s.tx.Rollback()
		s.tx = nil
	}
}

func (s *session) release() {
	s.end()
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// rows runs a query and scans each row with scan.
func (s *session) rows(ctx context.Context, st stmt, scan func(*sql.Rows) error) error {
	rows, err := s.on().QueryContext(ctx, st.text, st.args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// exec runs a statement and checks the rows it changed when st says how many.
func (s *session) exec(ctx context.Context, st stmt) error {
	res, err := s.on().ExecContext(ctx, st.text, st.args...)
	if err != nil {
		return err
	}
	if st.rows < 0 {
		return nil
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n != int64(st.rows) {
		return fmt.Errorf("oracle: %.60q changed %d rows instead of %d", st.text, n, st.rows)
	}
	return nil
}
