package mysql

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// A commit whose reply was lost (the connection broke while the query
// carrying COMMIT was out) may have committed or not, and MySQL has no
// transaction status to ask for. A new connection ends the lost session if
// the server still runs it (KILL: its transaction rolls back unless its
// COMMIT is done), waits for the commit lock (so the lost transaction is over
// one way or the other), and reads what landed: the transaction row
// (history-preserving) or the written objects' current tids (history-free),
// which schema.Landed weighs.

const errUnknownThread = 1094 // ER_NO_SUCH_THREAD: the session is gone already

// commitOutcome finds out whether the commit of tid made on server
// connection connID of server (host:port with replica-conf, "" otherwise) landed: nil if it did, lost (wrapping ErrDisconnected) if
// it did not, an error wrapping ErrCommitUnknown if that cannot be known
// within adapter.OutcomeWait.
func (d *dialect) commitOutcome(ctx context.Context, server string, connID int64, tid uint64, writes []adapter.Write,
	lost error) error {
	return schema.Settle(ctx, d.settings.KeepHistory, tid, writes, lost, func(ctx context.Context) (schema.CommitEvidence, error) {
		ev, err := d.commitEvidence(ctx, server, connID, tid, writes)
		return ev, d.wrap(err)
	})
}

// commitEvidence reads, on a new connection holding the commit lock, what
// the database holds about the commit of tid made on connection connID of
// server. Only that server can answer (after a failover another holds
// neither that connection nor, perhaps, that commit): with replica-conf the
// connection goes to it, not to the list's choice.
func (d *dialect) commitEvidence(ctx context.Context, server string, connID int64, tid uint64, writes []adapter.Write) (schema.CommitEvidence, error) {
	var ev schema.CommitEvidence
	pool := d.store
	if server != "" && d.replicas != nil {
		b, err := d.replicas.base(server)
		if err != nil {
			return ev, err
		}
		pool = sql.OpenDB(&connector{base: b, init: d.storeInit})
		defer pool.Close()
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return ev, err
	}
	// The connection may be left inside a transaction: it is never pooled again.
	defer func() {
		_ = conn.Raw(func(any) error { return driver.ErrBadConn })
		conn.Close()
	}()
	var myErr *mysql.MySQLError
	if _, err := conn.ExecContext(ctx, `KILL ?`, connID); err != nil &&
		!(errors.As(err, &myErr) && myErr.Number == errUnknownThread) {
		return ev, err
	}
	s := &script{}
	s.add(sqlBeginStore)
	s.add(sqlCommitLock)
	if d.settings.KeepHistory {
		s.add(`SELECT tid FROM transaction WHERE tid = ?`, int64(tid))
	} else {
		for start := 0; start < len(writes); start += inChunk {
			part := writes[start:min(len(writes), start+inChunk)]
			args := make([]any, len(part))
			for i, w := range part {
				args[i] = int64(w.OID)
			}
			s.add(`SELECT zoid, tid FROM object_state WHERE zoid IN (`+in(len(part)), args...)
		}
	}
	s.add("ROLLBACK")
	rows, err := conn.QueryContext(ctx, s.text.String(), s.args...)
	if err != nil {
		return ev, err
	}
	defer rows.Close()
	r := newResultSets(rows)
	if err := r.next(func(*sql.Rows) error { return nil }); err != nil { // the commit lock
		return ev, err
	}
	add := func(rows *sql.Rows) error { return ev.Add(d.settings.KeepHistory, rows) }
	if d.settings.KeepHistory {
		err = r.next(add)
	} else {
		for start := 0; start < len(writes) && err == nil; start += inChunk {
			err = r.next(add)
		}
	}
	if err != nil {
		return ev, err
	}
	for rows.NextResultSet() {
	}
	return ev, rows.Err()
}
