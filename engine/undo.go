// Undo: planning the undoing of a transaction as writes of the current
// commit, which vote checks like any other.

package engine

import (
	"bytes"
	"context"
)

// Undo buffers the undoing of transaction tid and returns the oids it changes.
func (in *Instance) Undo(ctx context.Context, tid uint64) ([]uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("undo")
	if err != nil {
		return nil, err
	}
	if !in.s.opts.KeepHistory {
		return nil, Errorf(KindUnsupported, "undo: the storage is history-free")
	}
	st, err := in.storeConn(ctx)
	if err != nil {
		return nil, err
	}
	items, found, err := st.UndoPlan(ctx, tid)
	if err != nil {
		return nil, classify(err, "undo")
	}
	if !found {
		return nil, Errorf(KindUndo, "undo: transaction %d does not exist or was packed", tid)
	}
	var undos []*write
	for _, it := range items {
		if it.OID == 0 && it.PrevTID == 0 {
			return nil, &Error{Kind: KindUndo, OID: 0, HasOID: true, Msg: "undo: cannot undo the creation of the root object"}
		}
		var state []byte
		if it.PrevTID != 0 {
			state = it.PrevState
		}
		serial := it.CurrentTID
		if w, ok := t.writes[it.OID]; ok {
			// Undoing several transactions at once: the pending undo must have
			// brought the object back to the revision undone now.
			if w.kind != writeUndo || !bytes.Equal(stateMD5(w.state), it.UndoneMD5) {
				return nil, &Error{Kind: KindUndo, OID: it.OID, HasOID: true,
					Msg: "undo: the object was also changed in this transaction"}
			}
			serial = w.serial
		} else if it.CurrentTID != tid && !(it.CurrentMD5 != nil && bytes.Equal(it.CurrentMD5, it.UndoneMD5)) {
			// Changed since: base the undo on the undone revision, so that
			// vote hands it to conflict resolution against the current state.
			if state == nil {
				return nil, &Error{Kind: KindUndo, OID: it.OID, HasOID: true,
					Msg: "undo: some data were modified by a later transaction"}
			}
			serial = tid
		}
		w := &write{oid: it.OID, serial: serial, state: state, kind: writeUndo}
		if in.s.blobs != nil {
			w.blobFrom = it.PrevTID
		}
		undos = append(undos, w)
	}
	oids := make([]uint64, len(undos))
	for i, w := range undos {
		t.add(w)
		oids[i] = w.oid
	}
	return oids, nil
}
