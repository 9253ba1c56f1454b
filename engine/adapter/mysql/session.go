package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
)

// script is SQL text built statement by statement and sent as one
// multi-statement query, so nothing is prepared and the script is one round
// trip. Parameters are written into the text as literals as statements are
// added (appendQuery); the few that are not (large states) go to the driver,
// which interpolates them.
type script struct {
	text strings.Builder
	args []any
	size int // the text's length once the driver's parameters are interpolated (an upper bound)
	// prepared, when not empty, is instead a statement executed prepared with
	// args (bulk.go); text is then empty.
	prepared string
}

// add appends one statement with its parameters.
func (s *script) add(stmt string, args ...any) {
	text, rest := appendQuery(nil, stmt, args)
	s.addText(text, rest)
}

// addText appends a statement appendQuery wrote, with the parameters it left.
func (s *script) addText(text []byte, args []any) {
	if s.text.Len() > 0 {
		s.text.WriteString(";\n")
		s.size += 2
	}
	s.text.Write(text)
	s.size += len(text)
	for _, a := range args {
		s.size += paramLen(a)
	}
	s.args = append(s.args, args...)
}

func (s *script) empty() bool { return s.text.Len() == 0 }

// literalMax is the largest state written into the text, as a hexadecimal
// literal (twice its size, read faster than an escaped string when short:
// 500 rows of 250 bytes, 8.2 us a row against 11.2; 1.5 kB, 69 against 51); a
// larger one stays a parameter, which the driver escapes.
const literalMax = 512

// appendQuery appends stmt to b with each question mark replaced by its
// parameter written as a literal: integers in decimal, booleans as 1 and 0,
// nil as NULL, byte strings up to literalMax as X'...' (which needs no
// knowledge of the session's sql_mode), short strings of letters and digits
// quoted. The parameters it cannot write that way are returned, their
// question marks kept, for the driver, which would otherwise copy the whole
// query while interpolating (3 us an object of a 500-object commit).
func appendQuery(b []byte, stmt string, args []any) ([]byte, []any) {
	var rest []any
	i := 0
	for j := 0; j < len(stmt); j++ {
		c := stmt[j]
		if c != '?' || i >= len(args) {
			b = append(b, c)
			continue
		}
		a := args[i]
		i++
		if lit, ok := appendLiteral(b, a); ok {
			b = lit
			continue
		}
		b = append(b, '?')
		rest = append(rest, a)
	}
	return b, rest
}

// appendLiteral appends a as a literal, or returns false.
func appendLiteral(b []byte, a any) ([]byte, bool) {
	switch v := a.(type) {
	case nil:
		return append(b, "NULL"...), true
	case int64:
		return strconv.AppendInt(b, v, 10), true
	case int:
		return strconv.AppendInt(b, int64(v), 10), true
	case uint64:
		return strconv.AppendUint(b, v, 10), true
	case bool:
		if v {
			return append(b, '1'), true
		}
		return append(b, '0'), true
	case []byte:
		if v == nil {
			return append(b, "NULL"...), true
		}
		if len(v) > literalMax {
			return b, false
		}
		b = append(b, "X'"...)
		b = hex.AppendEncode(b, v)
		return append(b, '\''), true
	case string:
		if len(v) > 256 {
			return b, false
		}
		for k := 0; k < len(v); k++ {
			if c := v[k]; !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z') {
				return b, false
			}
		}
		b = append(b, '\'')
		b = append(b, v...)
		return append(b, '\''), true
	}
	return b, false
}

// paramLen bounds the length of a parameter once interpolated.
func paramLen(a any) int {
	switch v := a.(type) {
	case []byte:
		if v != nil && len(v) <= literalMax {
			return 2*len(v) + 3 // X'...'
		}
		return literalLen(v)
	case string:
		return 2 * (len(v) + 1)
	default:
		return 24
	}
}

// literalLen is the length of b as the driver writes it (a state above literalMax): _binary'...' with
// NUL, newline, return, Ctrl-Z, quotes and backslash escaped by a backslash
// (the quotes-only escaping of NO_BACKSLASH_ESCAPES is never longer).
func literalLen(b []byte) int {
	if b == nil {
		return 4 // NULL
	}
	n := len(b) + len("_binary''")
	for _, c := range b {
		switch c {
		case 0, '\n', '\r', 0x1a, '\'', '"', '\\':
			n++
		}
	}
	return n
}

// rowOverhead bounds what a row of an INSERT adds to its state's literal.
const rowOverhead = 512

// session is one pooled connection running one transaction at a time. Its
// START TRANSACTION is not sent on its own: it travels in the same
// multi-statement query as the transaction's first statements.
type session struct {
	d       *dialect
	db      *sql.DB
	conn    *sql.Conn // nil after a broken connection was discarded: the next query takes another
	closed  bool      // released to the pool for good
	begin   string    // START TRANSACTION with its characteristics
	pending bool      // the transaction has begun; START TRANSACTION goes out with the next query
	inTxn   bool      // START TRANSACTION was sent
}

// query sends s, with START TRANSACTION first when it is pending (after
// ROLLBACK when a transaction is still open), and hands
// the result sets (those of statements that return rows, in order) to read.
// A transaction's first query is re-sent on another connection when the
// pooled one turns out dead (the server restarted while it sat idle): the
// server rolled back whatever it had seen of it.
func (ss *session) query(ctx context.Context, s *script, read func(*sql.Rows) error) error {
	if ss.closed {
		return errors.New("mysql: the connection was released")
	}
	if ss.conn == nil {
		conn, err := ss.db.Conn(ctx)
		if err != nil {
			return ss.d.connectError(err)
		}
		ss.conn = conn
	}
	for attempt := 0; ; attempt++ {
		begin := ss.pending
		text := s.text.String()
		if begin {
			text = ss.begin + ";\n" + text
			if ss.inTxn { // a transaction still open ends first
				text = "ROLLBACK;\n" + text
			}
		}
		answered, err := ss.run(ctx, text, s.args, read)
		if begin {
			ss.pending, ss.inTxn = false, true
		}
		if err == nil {
			return nil
		}
		// Re-send only what the server never answered: read has seen nothing.
		if begin && !answered && attempt <= maxIdle && isDisconnect(err) {
			ss.discard()
			ss.inTxn = false
			conn, cerr := ss.db.Conn(ctx)
			if cerr != nil {
				return ss.d.connectError(cerr)
			}
			ss.conn, ss.pending = conn, true
			continue
		}
		return err
	}
}

// run sends text and reads its results; answered tells whether the server
// answered the query (read was called), in which case it must not be re-sent.
func (ss *session) run(ctx context.Context, text string, args []any, read func(*sql.Rows) error) (answered bool, err error) {
	if read == nil {
		_, err := ss.conn.ExecContext(ctx, text, args...)
		return false, err
	}
	rows, err := ss.conn.QueryContext(ctx, text, args...)
	if err != nil {
		return false, err
	}
	err = read(rows)
	if cerr := rows.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rows.Err()
	}
	return true, err
}

// exec sends a statement outside the transaction machinery.
func (ss *session) exec(ctx context.Context, text string, args ...any) error {
	_, err := ss.conn.ExecContext(ctx, text, args...)
	return err
}

// rollback ends the transaction, if any; a connection that cannot roll back is closed.
func (ss *session) rollback() {
	ss.pending = false
	if ss.inTxn {
		ss.inTxn = false
		if ss.conn != nil {
			if err := ss.exec(context.Background(), "ROLLBACK"); err != nil {
				ss.discard()
			}
		}
	}
}

// discard closes the connection instead of pooling it; the next query takes another.
func (ss *session) discard() {
	if ss.conn == nil {
		return
	}
	// A Raw callback returning ErrBadConn makes database/sql close the connection.
	_ = ss.conn.Raw(func(any) error { return driver.ErrBadConn })
	ss.conn.Close()
	ss.conn = nil
}

// release ends the transaction and returns the connection to its pool.
func (ss *session) release() {
	ss.rollback()
	ss.closed = true
	if ss.conn != nil {
		ss.conn.Close()
		ss.conn = nil
	}
}

// resultSets walks the result sets of a query: each calls fn for every row
// of the next result set.
type resultSets struct {
	rows  *sql.Rows
	first bool
}

func newResultSets(rows *sql.Rows) *resultSets { return &resultSets{rows: rows, first: true} }

// next reads the next result set, calling fn for each row.
func (r *resultSets) next(fn func(*sql.Rows) error) error {
	if !r.first && !r.rows.NextResultSet() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return errors.New("mysql: a result set is missing")
	}
	r.first = false
	for r.rows.Next() {
		if err := fn(r.rows); err != nil {
			return err
		}
	}
	return r.rows.Err()
}
