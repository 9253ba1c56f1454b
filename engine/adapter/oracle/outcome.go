package oracle

import (
	"context"
	"database/sql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

// A commit whose reply was lost (the connection broke while COMMIT, or the
// XA branch's commit, was out) may have committed or not. A new connection
// takes the commit lock, which the lost transaction holds until it ends one
// way or the other (the server rolls back a session it finds dead, and an
// in-doubt XA branch keeps the lock until it is resolved), and reads the
// transaction row (history-preserving) or the written objects' tids
// (history-free), which schema.Landed weighs. Ending the lost session
// would take ALTER SYSTEM privileges a storage's user does not have, so a
// lost transaction the server keeps alive makes the answer unknown.

// commitOutcome finds out whether the commit of tid, made on server (the
// replica-conf entry, "" without), landed: nil if it did,
// lost (wrapping ErrDisconnected) if it did not, an error wrapping
// ErrCommitUnknown if that cannot be known within adapter.OutcomeWait.
func (d *dialect) commitOutcome(ctx context.Context, server string, tid uint64, writes []adapter.Write, lost error) error {
	return schema.Settle(ctx, d.settings.KeepHistory, tid, writes, lost, func(ctx context.Context) (schema.CommitEvidence, error) {
		ev, err := d.commitEvidence(ctx, server, tid, writes)
		return ev, d.wrap(err)
	})
}

// commitEvidence reads, on a new connection holding the commit lock, what
// the database on server holds about the commit of tid: with replica-conf
// the connection goes to that entry, not to the list's choice.
func (d *dialect) commitEvidence(ctx context.Context, server string, tid uint64, writes []adapter.Write) (schema.CommitEvidence, error) {
	var ev schema.CommitEvidence
	pool := d.store
	if server != "" && d.replicas != nil {
		pool = sql.OpenDB(d.replicas.to(server))
		defer pool.Close()
	}
	conn, err := pool.Conn(ctx)
	if err != nil {
		return ev, err
	}
	s := session{d: d, conn: conn}
	defer s.release()
	if err := s.begin(ctx, pool, &sql.TxOptions{}, ""); err != nil {
		return ev, err
	}
	oids := make([]uint64, len(writes))
	for i, w := range writes {
		oids[i] = w.OID
	}
	stmts := d.q.outcome(tid, oids)
	if err := s.rows(ctx, stmts[0], func(*sql.Rows) error { return nil }); err != nil { // the commit lock
		return ev, err
	}
	for _, st := range stmts[1:] {
		err := s.rows(ctx, st, func(rows *sql.Rows) error { return ev.Add(d.settings.KeepHistory, rows) })
		if err != nil {
			return ev, err
		}
	}
	return ev, nil
}
