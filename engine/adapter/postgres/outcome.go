package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// A commit whose reply was lost (the connection broke after COMMIT was sent)
// may have committed or not. PostgreSQL answers exactly: the write
// transaction's id, read with the commit lock, has a status that any new
// connection can ask for. "in progress" means the server has not yet noticed
// that the client is gone; after inProgressGrace the dialect ends that server
// process itself (its own role may), and the answer becomes final.

// inProgressGrace is how long a lost commit may stay in progress before its
// server process is terminated.
const inProgressGrace = 2 * time.Second

// commitOutcome finds out on new connections whether transaction xid, run by
// server process pid, committed: nil if it did, an error wrapping
// ErrDisconnected (lost) if it did not, one wrapping ErrCommitUnknown if no answer
// came within adapter.OutcomeWait. lost is the error that broke the commit.
func (d *dialect) commitOutcome(ctx context.Context, server *pgx.ConnConfig, xid int64, pid uint32, lost error) error {
	ctx, cancel := context.WithTimeout(ctx, adapter.OutcomeWait)
	defer cancel()
	start := time.Now()
	terminated := false
	last := lost
	for {
		status, err := d.xactStatus(ctx, server, xid, pid, !terminated && time.Since(start) > inProgressGrace)
		switch {
		case err != nil:
			last = err
		case status == "committed":
			return nil
		case status == "aborted":
			return fmt.Errorf("%w (a new connection found that it did not commit)", lost)
		case status == "":
			return fmt.Errorf("%w: the server no longer knows transaction %d: %v", adapter.ErrCommitUnknown, xid, lost)
		case status == "terminated":
			terminated = true
			continue // ask again at once
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no answer within %s (%v): %v", adapter.ErrCommitUnknown, adapter.OutcomeWait, last, lost)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// xactStatus asks a new connection for txid_status(xid): committed, aborted,
// in progress, or "" when the id is too old to know. With terminate, a
// transaction still in progress has its server process ended first, and the
// status returned is "terminated".
func (d *dialect) xactStatus(ctx context.Context, server *pgx.ConnConfig, xid int64, pid uint32, terminate bool) (string, error) {
	conn, err := d.connect(ctx, server)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	var status *string
	if err := conn.QueryRow(ctx, `SELECT txid_status($1)`, xid).Scan(&status); err != nil {
		return "", d.wrap(conn, err)
	}
	if status == nil {
		return "", nil
	}
	if *status == "in progress" && terminate {
		// Only the process still running this very transaction (backend_xid
		// is the id's low 32 bits).
		_, err := conn.Exec(ctx, `SELECT pg_terminate_backend(pid)
			FROM pg_stat_activity WHERE pid = $1 AND backend_xid::text = ($2::bigint % 4294967296)::text`,
			int32(pid), xid)
		if err != nil {
			return "", d.wrap(conn, err)
		}
		return "terminated", nil
	}
	return *status, nil
}
