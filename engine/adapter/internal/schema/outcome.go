package schema

import (
	"context"
	"fmt"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// CommitEvidence is what the database holds, read after the lost commit
// ended one way or the other, about a commit of tid.
type CommitEvidence struct {
	TxnRow  bool              // history-preserving: the transaction row of tid exists
	Current map[uint64]uint64 // history-free: the current tid of each written oid that exists
}

// Landed decides from ev whether a commit of tid that made writes is in the
// database. History-preserving: its transaction row says so exactly.
// History-free: a row carrying tid proves it landed; a written object whose
// current tid is older proves it did not (tids only grow, so a landed write is
// never followed by an older one); otherwise a later commit may have replaced
// or deleted every row it wrote, and known is false.
func Landed(keepHistory bool, tid uint64, writes []adapter.Write, ev CommitEvidence) (landed, known bool) {
	if keepHistory {
		return ev.TxnRow, true
	}
	if len(writes) == 0 {
		return true, true // a history-free commit without writes changes nothing
	}
	older := false
	for _, w := range writes {
		cur, ok := ev.Current[w.OID]
		if ok && cur == tid {
			return true, true
		}
		if ok && cur < tid {
			older = true
		}
	}
	if older {
		return false, true
	}
	return false, false
}

// Settle is Commit's answer for a commit of tid whose reply was lost (lost
// wraps ErrDisconnected): it reads evidence, on new connections, until it
// answers or adapter.OutcomeWait passes, and returns nil when the commit
// landed, lost when it did not, and an error wrapping ErrCommitUnknown when
// that cannot be known.
func Settle(ctx context.Context, keepHistory bool, tid uint64, writes []adapter.Write, lost error,
	evidence func(context.Context) (CommitEvidence, error)) error {
	ctx, cancel := context.WithTimeout(ctx, adapter.OutcomeWait)
	defer cancel()
	for {
		ev, err := evidence(ctx)
		if err == nil {
			landed, known := Landed(keepHistory, tid, writes, ev)
			switch {
			case !known:
				return fmt.Errorf("%w: later commits replaced every row it wrote: %v", adapter.ErrCommitUnknown, lost)
			case landed:
				return nil
			default:
				return fmt.Errorf("%w (a new connection found that it did not commit)", lost)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w: no answer within %s (%v): %v", adapter.ErrCommitUnknown, adapter.OutcomeWait, err, lost)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Add records one row of the evidence a dialect reads: any row of the
// transaction query (history-preserving), or a written object's (zoid, tid).
func (ev *CommitEvidence) Add(keepHistory bool, row sqlrow.Row) error {
	if keepHistory {
		ev.TxnRow = true
		return nil
	}
	var oid, cur int64
	if err := row.Scan(&oid, &cur); err != nil {
		return err
	}
	if ev.Current == nil {
		ev.Current = map[uint64]uint64{}
	}
	ev.Current[uint64(oid)] = uint64(cur)
	return nil
}
