package engine

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// RestoreTxn is one whole transaction for RestoreBatch.
type RestoreTxn struct {
	TID     uint64
	Meta    TxnMeta
	Packed  bool
	Records []RestoreRecord
}

// RestoreRecord is one object's state in a RestoreTxn; a nil State records
// an undone creation (history-preserving) or a deletion (history-free).
type RestoreRecord struct {
	OID   uint64
	State []byte
}

// RestoreBatch writes whole transactions under their own tids, as restore in
// tpc_begin(tid) ... tpc_finish does (copyTransactionsFrom, convert), but
// many at a time: where the dialect can (adapter.MultiMover), in one
// database transaction under one commit lock, so all of them commit or none
// does; elsewhere one database transaction each, in order. Tids must
// ascend. No transaction may be in progress on the instance.
func (in *Instance) RestoreBatch(ctx context.Context, txns []RestoreTxn) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return err
	}
	if in.s.opts.ReadOnly {
		return Errorf(KindReadOnly, "restore: the storage is read-only")
	}
	if in.txn != nil {
		return Errorf(KindTransaction, "restore: a transaction is in progress")
	}
	if len(txns) == 0 {
		return nil
	}
	for i, t := range txns {
		if t.TID == 0 || (i > 0 && t.TID <= txns[i-1].TID) {
			return Errorf(KindInvalidArgument, "restore: transaction %d of the batch has tid %d: tids must be above 0 and ascend", i, t.TID)
		}
		for _, r := range t.Records {
			if err := in.checkState(r.OID, r.State); err != nil {
				return err
			}
		}
	}
	st, err := in.s.dialect.OpenStore(ctx)
	if err != nil {
		return classify(err, "open store connection")
	}
	defer st.Close()
	_, many := st.(adapter.MultiMover)
	if _, bulk := st.(adapter.ManyMover); !many && !bulk {
		for i := range txns {
			if err := in.restoreTxns(ctx, st, txns[i:i+1]); err != nil {
				return err
			}
		}
		return nil
	}
	return in.restoreTxns(ctx, st, txns)
}

// restoreTxns commits txns in one database transaction.
func (in *Instance) restoreTxns(ctx context.Context, st adapter.StoreConn, txns []RestoreTxn) error {
	if err := st.BeginCommit(ctx); err != nil {
		return classify(err, "restore")
	}
	committed := false
	defer func() {
		if !committed {
			st.Rollback()
		}
	}()
	// Each transaction's writes, one per object (the last record wins, as
	// restoring an object twice in one transaction does).
	writes := make([][]adapter.Write, len(txns))
	var oids []uint64
	maxOID := uint64(0)
	for i, t := range txns {
		at := make(map[uint64]int, len(t.Records))
		for _, r := range t.Records {
			if j, ok := at[r.OID]; ok {
				writes[i][j].State = r.State
				continue
			}
			at[r.OID] = len(writes[i])
			writes[i] = append(writes[i], adapter.Write{OID: r.OID, State: r.State})
			oids = append(oids, r.OID)
			maxOID = max(maxOID, r.OID)
		}
		slices.SortFunc(writes[i], byOID) // as a commit writes them
	}
	slices.Sort(oids)
	oids = slices.Compact(oids)
	current, err := st.LockObjects(ctx, nil, oids)
	if err != nil {
		return classify(err, "restore: lock objects")
	}
	if maxOID > in.s.maxIssuedOID.Load() {
		if err := in.s.dialect.SetMinOID(ctx, maxOID); err != nil {
			return classify(err, "restore: set min oid")
		}
	}
	last, _, err := st.LockCommit(ctx)
	if err != nil {
		return classify(err, "restore: commit lock")
	}
	newest := max(last, in.s.newestTID.Load())
	moved := make([]adapter.MovedTxn, len(txns))
	for i, t := range txns {
		for j := range writes[i] {
			w := &writes[i][j]
			w.PrevTID = current[w.OID]
			current[w.OID] = t.TID
			if in.s.opts.KeepHistory {
				w.MD5 = stateMD5(w.State)
			}
		}
		moved[i] = adapter.MovedTxn{Writes: writes[i], Meta: adapter.TxnInfo{TID: t.TID, Packed: t.Packed,
			User: t.Meta.User, Description: t.Meta.Description, Extension: t.Meta.Extension}}
	}
	if mm, ok := st.(adapter.ManyMover); ok {
		if err := mm.MoveMany(ctx, moved); err != nil {
			return classify(err, fmt.Sprintf("restore: write transactions %d to %d", txns[0].TID, txns[len(txns)-1].TID))
		}
	} else {
		for _, m := range moved {
			if err := st.Move(ctx, m.Meta.TID, m.Meta, m.Writes); err != nil {
				return classify(err, fmt.Sprintf("restore: write transaction %d", m.Meta.TID))
			}
		}
	}
	err = st.Commit(ctx)
	committed = err == nil || errors.Is(err, adapter.ErrCommitUnknown)
	first, final := txns[0].TID, txns[len(txns)-1].TID
	if errors.Is(err, adapter.ErrCommitUnknown) {
		return &Error{Kind: KindCommitUnknown, Serials: [2]uint64{final, 0}, Err: err,
			Msg: fmt.Sprintf("restore: the transactions with tids %d to %d may or may not have committed; "+
				"look for tid %d (0x%016x) in the database before running them again", first, final, final, final)}
	}
	if err != nil {
		return classify(err, "restore: commit")
	}
	// What this process's snapshots must learn of: the index, as after
	// each commit. The states are not cached: a copy reads them rarely.
	in.s.sawTID(final)
	sh := in.s.sh
	for i, t := range txns {
		changed := make([]uint64, len(writes[i]))
		for j, w := range writes[i] {
			changed[j] = w.OID
			sh.cache.Invalidate(w.OID)
		}
		sh.index.committed(t.TID, changed, t.TID > newest, newest)
		newest = max(newest, t.TID)
	}
	sh.sawCommit(final)
	sh.compact() // a copy may never poll: the index keeps only what polled instances need
	return nil
}
