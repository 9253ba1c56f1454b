// Reads: current states through the snapshot and the shared cache,
// prefetch, old revisions, history, and the fresh reads of iteration.

package engine

import (
	"context"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// readErr classifies a read failure and drops the connection if it is broken.
func (in *Instance) readErr(err error, what string) error {
	if k := KindOf(err); k == KindStorage || k == KindDisconnected {
		in.dropLoad()
	}
	return classify(err, what)
}

// Load returns the current state of oid in the instance's view: from the
// shared cache when the index knows which revision the snapshot sees and the
// cache holds it, else from the database (and then into the cache). An
// instance outside a polled snapshot (one that never polls, as a script's
// root storage, starts a snapshot for every load, so that it sees every
// commit made before) reads an object the cache does not hold with the new
// snapshot's start: one round trip, where the start and then a read took two.
func (in *Instance) Load(ctx context.Context, oid uint64) ([]byte, uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c, rev, loaded, err := in.viewRead(ctx, oid, true)
	if err != nil {
		return nil, 0, err
	}
	if loaded {
		return in.loaded(oid, rev)
	}
	if r, ok := in.prefetched[oid]; ok {
		return r.State, r.TID, nil
	}
	if state, tid, ok := in.cached(oid, true); ok {
		in.remember(oid, tid, state)
		return state, tid, nil
	}
	revs, err := c.Current(ctx, []uint64{oid})
	if err != nil {
		return nil, 0, in.readErr(err, "load")
	}
	if len(revs) == 0 {
		return in.loaded(oid, adapter.Revision{})
	}
	return in.loaded(oid, revs[0])
}

// likelyCached tells whether the shared cache holds the revision of oid
// current at the index's head: the read a new snapshot's start would carry
// is then left out, the snapshot most likely sees that revision (a commit
// since makes a second round trip).
func (in *Instance) likelyCached(oid uint64) bool {
	sh := in.s.sh
	head, epoch, fresh := sh.index.position()
	if fresh || !sh.cache.Enabled() {
		return false
	}
	tid, ok := sh.index.lookup(epoch, head, oid)
	return ok && sh.cache.Has(oid, tid)
}

// loaded answers Load with the revision read from the database (an empty one
// when the object has no row).
func (in *Instance) loaded(oid uint64, rev adapter.Revision) ([]byte, uint64, error) {
	if rev.State == nil {
		return nil, 0, POSKeyError(oid, "no object %#x", oid)
	}
	in.keep(rev)
	in.remember(oid, rev.TID, rev.State)
	return rev.State, rev.TID, nil
}

// LoadCached is Load when it can be answered at once from the shared cache
// in the snapshot the instance holds; ok is false otherwise (nothing is
// waited for, nothing reaches the database: the caller then calls Load).
func (in *Instance) LoadCached(oid uint64) ([]byte, uint64, bool) {
	if !in.mu.TryLock() {
		return nil, 0, false
	}
	defer in.mu.Unlock()
	if in.released || !in.inSnapshot || !in.polled {
		return nil, 0, false
	}
	if r, ok := in.prefetched[oid]; ok {
		return r.State, r.TID, true
	}
	state, tid, hit := in.cached(oid, false) // Load counts the miss
	if hit {
		in.remember(oid, tid, state)
	}
	return state, tid, hit
}

// cached returns oid's revision in the snapshot from the shared cache;
// countMiss tells whether a miss goes into the statistics.
func (in *Instance) cached(oid uint64, countMiss bool) ([]byte, uint64, bool) {
	sh := in.s.sh
	if !sh.cache.Enabled() {
		return nil, 0, false
	}
	if in.indexed {
		if tid, ok := sh.index.lookup(in.snapEpoch, in.snapTID, oid); ok {
			if state, hit := sh.cache.TryGet(oid, tid); hit {
				sh.trace.record(traceHit, oid, tid, len(state))
				return state, tid, true
			}
		}
	}
	if countMiss {
		sh.cache.NoteMiss()
		sh.trace.record(traceMiss, oid, 0, 0)
	}
	return nil, 0, false
}

// keep puts a current revision read through the snapshot into the shared
// cache (its state as it is: see adapter.Revision) and tells the index.
func (in *Instance) keep(r adapter.Revision) {
	sh := in.s.sh
	sh.cache.PutOwned(r.OID, r.TID, r.State)
	sh.trace.record(traceStore, r.OID, r.TID, len(r.State))
	if in.indexed {
		sh.index.learn(in.snapEpoch, in.snapTID, r.OID, r.TID)
	}
}

// maxRecentBytes bounds the history-free revision memory of one instance;
// past it, it starts over.
const maxRecentBytes = 8 << 20

func (in *Instance) remember(oid, tid uint64, state []byte) {
	if in.s.opts.KeepHistory || len(state) > maxRecentBytes/4 {
		return
	}
	in.forgetPacked()
	if in.recent == nil || in.recentBytes+len(state) > maxRecentBytes {
		in.recent, in.recentBytes = make(map[[2]uint64][]byte), 0
	}
	in.recent[[2]uint64{oid, tid}] = state
	in.recentBytes += len(state)
}

// forgetPacked drops the remembered states when a pack in this process
// removed something since they were remembered: it may have removed them.
func (in *Instance) forgetPacked() {
	if packs := in.s.sh.packs.Load(); in.recentPacks != packs {
		in.recent, in.recentBytes, in.recentPacks = nil, 0, packs
	}
}

// prefetchBatch is how many objects one prefetch round trip asks for.
const prefetchBatch = 1000

// Prefetch loads the current states of oids that the shared cache does not
// hold, one round trip per batch, so that the Loads that follow need none.
// Without the shared cache they are kept for this snapshot only.
func (in *Instance) Prefetch(ctx context.Context, oids []uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	c, err := in.view(ctx)
	if err != nil {
		return err
	}
	sh := in.s.sh
	useCache := sh.cache.Enabled()
	if !useCache && !in.polled {
		return nil // without a held snapshot there is nothing to keep them for
	}
	missing := make([]uint64, 0, len(oids))
	for _, oid := range oids {
		if _, ok := in.prefetched[oid]; ok {
			continue
		}
		if useCache && in.indexed {
			if tid, ok := sh.index.lookup(in.snapEpoch, in.snapTID, oid); ok && sh.cache.Has(oid, tid) {
				continue
			}
		}
		missing = append(missing, oid)
	}
	const maxPrefetched = 100000
	for len(missing) > 0 {
		batch := missing[:min(len(missing), prefetchBatch)]
		missing = missing[len(batch):]
		revs, err := c.Current(ctx, batch)
		if err != nil {
			return in.readErr(err, "prefetch")
		}
		for _, r := range revs {
			if r.State == nil {
				continue
			}
			if useCache {
				in.keep(r)
				continue
			}
			if in.prefetched == nil {
				in.prefetched = make(map[uint64]adapter.Revision, len(revs))
			}
			if len(in.prefetched) < maxPrefetched {
				in.prefetched[r.OID] = r
			}
		}
	}
	return nil
}

// LoadSerial returns the state oid had in transaction tid.
func (in *Instance) LoadSerial(ctx context.Context, oid, tid uint64) ([]byte, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return nil, err
	}
	in.forgetPacked()
	if state, ok := in.recent[[2]uint64{oid, tid}]; ok {
		return state, nil
	}
	if state, ok := in.s.sh.cache.Get(oid, tid); ok { // (oid, tid) names one state for good
		return state, nil
	}
	c, err := in.view(ctx)
	if err != nil {
		return nil, err
	}
	state, found, err := c.Revision(ctx, oid, tid)
	if err != nil {
		return nil, in.readErr(err, "loadSerial")
	}
	if !found || state == nil {
		return nil, &Error{Kind: KindPOSKey, OID: oid, HasOID: true, Serials: [2]uint64{tid, 0},
			Msg: "no revision of this object in that transaction"}
	}
	return state, nil
}

// LoadBefore returns the revision of oid current just before tid, and the tid
// of the revision that replaced it (0 if none). found is false when the object
// did not exist before tid.
func (in *Instance) LoadBefore(ctx context.Context, oid, before uint64) (adapter.Revision, uint64, bool, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c, err := in.view(ctx)
	if err != nil {
		return adapter.Revision{}, 0, false, err
	}
	rev, end, found, exists, err := c.Before(ctx, oid, before)
	if err != nil {
		return rev, 0, false, in.readErr(err, "loadBefore")
	}
	if !exists {
		return rev, 0, false, POSKeyError(oid, "no object %#x", oid)
	}
	if in.polled && end > in.snapTID {
		end = 0 // a revision newer than the snapshot is not visible yet
	}
	if found && rev.State == nil {
		return rev, 0, false, POSKeyError(oid, "object %#x was deleted or its creation undone", oid)
	}
	return rev, end, found, nil
}

// History returns up to size revisions of oid, newest first; a size below 1
// means one, as in RelStorage.
func (in *Instance) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
	size = max(size, 1)
	in.mu.Lock()
	defer in.mu.Unlock()
	c, err := in.view(ctx)
	if err != nil {
		return nil, err
	}
	h, err := c.History(ctx, oid, size)
	if err != nil {
		return nil, in.readErr(err, "history")
	}
	if len(h) == 0 {
		return nil, POSKeyError(oid, "no object %#x", oid)
	}
	return h, nil
}

// Transactions lists transactions of the latest state (iteration, undo log).
func (in *Instance) Transactions(ctx context.Context, q adapter.TxnQuery) (out []adapter.TxnInfo, err error) {
	err = in.s.freshRead(ctx, func(c adapter.LoadConn) error {
		out, err = c.Transactions(ctx, q)
		return classify(err, "list transactions")
	})
	return out, err
}

// TxnRecords returns the revisions a transaction wrote.
func (in *Instance) TxnRecords(ctx context.Context, tid uint64) (out []adapter.Revision, err error) {
	err = in.s.freshRead(ctx, func(c adapter.LoadConn) error {
		out, err = c.TxnRecords(ctx, tid)
		return classify(err, "read transaction records")
	})
	return out, err
}

// CurrentFrom returns current revisions with oid >= start (record_iternext).
func (in *Instance) CurrentFrom(ctx context.Context, start uint64, limit int) (out []adapter.Revision, err error) {
	err = in.s.freshRead(ctx, func(c adapter.LoadConn) error {
		out, err = c.CurrentFrom(ctx, start, limit)
		return classify(err, "iterate current records")
	})
	return out, err
}
