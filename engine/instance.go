package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Instance is one ZODB Connection's view of the database. Until it is first
// polled every read sees the latest state; after that it reads through a
// snapshot that Poll advances (and Sync or AfterCompletion end), as
// RelStorage's load connection does. It also runs one transaction at a time.
// Methods are safe to call from several goroutines.
type Instance struct {
	s  *Storage
	mu sync.Mutex

	load       adapter.LoadConn
	inSnapshot bool
	// endDue: the snapshot has ended but the server was not told yet (a
	// LateEnder's next Begin tells it); endTimer tells it if the instance
	// stays idle for endDelay.
	endDue     bool
	endTimer   *time.Timer
	snapTID    uint64 // newest tid visible in the snapshot
	snapLast   uint64 // the database's newest tid when the snapshot began
	snapEpoch  uint64 // the shared index's epoch the snapshot belongs to
	indexed    bool   // the snapshot was merged into the shared index: the cache may serve it
	pinned     atomic.Uint64
	polled     bool
	polledTID  uint64          // invalidations delivered up to here
	ownTIDs    map[uint64]bool // own commits since the last poll
	lastCommit uint64
	prefetched map[uint64]adapter.Revision // valid for the current snapshot only
	// recent keeps states this instance loaded or committed, by (oid, tid), in
	// history-free mode: conflict resolution needs the revision a transaction
	// read, which the database no longer holds once another commit replaced it.
	recent      map[[2]uint64][]byte
	recentBytes int
	released    bool

	txn *commit
}

// Conflict is a write whose object changed since it was read. Python resolves
// it (tryToResolveConflict) and hands back the new state with Resolve.
type Conflict struct {
	OID            uint64
	CommittedTID   uint64
	OldTID         uint64 // the serial the write was based on
	NewState       []byte
	CommittedState []byte
	Undo           bool // the write undoes a transaction: failure is an UndoError
}

// TxnMeta is a transaction's user, description and pickled extension.
type TxnMeta struct {
	User, Description, Extension []byte
}

type write struct {
	oid    uint64
	serial uint64 // the tid this write was based on
	state  []byte
	kind   writeKind
}

type writeKind uint8

const (
	writeStore writeKind = iota
	writeDelete
	writeUndo
	writeRestore
)

type commit struct {
	meta       TxnMeta
	restoreTID uint64 // tpc_begin with a tid: restore mode
	packed     bool
	writes     map[uint64]*write
	order      []uint64
	readCur    map[uint64]uint64
	maxOID     uint64
	store      adapter.StoreConn
	current    map[uint64]uint64 // tids at lock time
	conflicts  map[uint64]Conflict
	voting     bool // Vote has begun: no more writes
	voted      bool
	tid        uint64 // chosen at FinishLock
	inOrder    bool   // tid is above every tid committed before the commit lock
	newest     uint64 // the newest tid committed before the commit lock
}

// Release ends the instance's snapshot and transaction and closes its connections.
func (in *Instance) Release() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.released {
		return
	}
	in.released = true
	in.abortLocked()
	in.dropLoad()
	in.s.sh.unpin(in)
	in.s.forget(in)
}

func (in *Instance) check() error {
	if in.released {
		return Errorf(KindClosed, "the storage instance is released")
	}
	return in.s.check()
}

// endDelay is how long an ended snapshot may stay open on the server,
// waiting for the next one to start and end it in the same round trip (ZODB
// polls right after every transaction and again on the next open). An
// instance left idle ends it from a timer: the server never keeps an idle
// ZODB connection's snapshot (VACUUM, InnoDB's purge) for longer than this.
const endDelay = 10 * time.Millisecond

// endSnapshot ends the snapshot: at once, or, where the load connection is
// a LateEnder, with the next snapshot's start or after endDelay.
func (in *Instance) endSnapshot() {
	if in.inSnapshot {
		in.inSnapshot = false
		if _, late := in.load.(adapter.LateEnder); late {
			in.endDue = true
			if in.endTimer == nil {
				in.endTimer = time.AfterFunc(endDelay, in.endIdle)
			} else {
				in.endTimer.Reset(endDelay)
			}
		} else {
			in.load.End()
		}
	}
	in.prefetched = nil
}

// endIdle is endTimer's: the snapshot's end is still due, nothing started another.
func (in *Instance) endIdle() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.endNow()
}

// endNow tells the server a snapshot's end that is due.
func (in *Instance) endNow() {
	if in.endDue {
		in.cancelEnd()
		if in.load != nil {
			in.load.End()
		}
	}
}

// cancelEnd forgets a due end: the load connection's next Begin sends it.
func (in *Instance) cancelEnd() {
	if in.endDue {
		in.endDue = false
		in.endTimer.Stop()
	}
}

func (in *Instance) dropLoad() {
	in.endSnapshot()
	in.endNow()
	if in.load != nil {
		in.load.Close()
		in.load = nil
	}
}

// noChanges is a tid above every tid: asking for changes after it asks for none.
const noChanges = 1<<63 - 1

// startSnapshot begins a new snapshot and merges what changed since the
// shared index's head into it (one round trip where the dialect can start a
// snapshot and poll at once), so that the cache can serve this snapshot.
func (in *Instance) startSnapshot(ctx context.Context) error {
	if _, late := in.load.(adapter.LateEnder); late {
		// The new snapshot's first round trip ends the old one: no timer.
		in.inSnapshot, in.prefetched = false, nil
		in.cancelEnd()
	} else {
		in.endSnapshot()
	}
	if in.load == nil {
		c, err := in.s.dialect.OpenLoad(ctx)
		if err != nil {
			return classify(err, "open load connection")
		}
		in.load = c
	}
	x := in.s.sh.index
	after, epoch, fresh := x.position()
	ask := after
	if fresh {
		ask = noChanges
	}
	// A snapshot sees every commit finished before it began, even when a
	// history-free deletion hid that commit's tid from MAX(tid).
	done := in.s.sh.committed.Load()
	limit := in.s.opts.CacheDeltaSizeLimit
	var last uint64
	var changes []adapter.Change
	var err error
	if p, ok := in.load.(adapter.SnapshotPoller); ok {
		last, changes, err = p.BeginPoll(ctx, ask, limit+1)
		in.inSnapshot = err == nil
	} else if err = in.load.Begin(ctx); err == nil {
		in.inSnapshot = true
		last, err = in.load.LastTID(ctx)
		if err == nil && last > ask {
			changes, err = in.load.Changes(ctx, ask, last, limit+1)
		}
	}
	if err != nil {
		in.dropLoad() // a broken connection is reopened by the next read
		return classify(err, "begin snapshot")
	}
	in.s.sawTID(last)
	in.snapLast, in.snapEpoch = last, epoch
	in.snapTID, in.indexed = x.merge(epoch, after, max(last, done), changes, len(changes) > limit)
	return nil
}

// view returns the load connection positioned for a read: the held snapshot
// once polled, else a fresh one.
func (in *Instance) view(ctx context.Context) (adapter.LoadConn, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	if in.inSnapshot && in.polled {
		return in.load, nil
	}
	if err := in.startSnapshot(ctx); err != nil {
		return nil, err
	}
	return in.load, nil
}

// readErr classifies a read failure and drops the connection if it is broken.
func (in *Instance) readErr(err error, what string) error {
	if k := KindOf(err); k == KindStorage || k == KindDisconnected {
		in.dropLoad()
	}
	return classify(err, what)
}

// Poll advances the snapshot and returns the oids changed by others since the
// last poll. all is true when the caller must invalidate everything.
func (in *Instance) Poll(ctx context.Context) (oids []uint64, all bool, err error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return nil, false, err
	}
	if err := in.startSnapshot(ctx); err != nil {
		return nil, false, err
	}
	sh := in.s.sh
	defer sh.compact()
	if !in.polled {
		in.polled, in.polledTID, in.ownTIDs = true, in.snapTID, nil
		sh.pin(in, in.snapTID)
		return nil, true, nil
	}
	from := in.polledTID
	if in.snapLast < from && in.s.opts.KeepHistory {
		return nil, false, Errorf(KindReadConflict,
			"the database went back in time: last seen tid %d, now %d (restored from a backup?)", from, in.snapLast)
	}
	// History-free: deleting the object that held the newest tid lowers
	// MAX(tid), but the snapshot still sees everything polled before.
	in.snapTID = max(in.snapTID, from)
	own := in.ownTIDs
	in.polledTID, in.ownTIDs = in.snapTID, nil
	sh.pin(in, in.snapTID)
	if in.snapTID == from {
		return nil, false, nil
	}
	if !in.indexed {
		return nil, true, nil
	}
	oids, all = sh.index.changed(in.snapEpoch, from, in.snapTID, own)
	return oids, all, nil
}

// Sync ends the snapshot; the next read or poll starts a new one.
func (in *Instance) Sync() {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.txn == nil {
		in.endSnapshot()
	}
}

// AfterCompletion ends the snapshot at the end of a ZODB transaction.
func (in *Instance) AfterCompletion() { in.Sync() }

// LastTransaction is the newest tid this instance has seen or committed.
func (in *Instance) LastTransaction(ctx context.Context) (uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.polled {
		return max(in.polledTID, in.lastCommit), nil
	}
	if _, err := in.view(ctx); err != nil {
		return 0, err
	}
	return max(in.snapTID, in.lastCommit), nil
}

// Load returns the current state of oid in the instance's view: from the
// shared cache when the index knows which revision the snapshot sees and the
// cache holds it, else from the database (and then into the cache).
func (in *Instance) Load(ctx context.Context, oid uint64) ([]byte, uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	c, err := in.view(ctx)
	if err != nil {
		return nil, 0, err
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
	if len(revs) == 0 || revs[0].State == nil {
		return nil, 0, POSKeyError(oid, "no object %#x", oid)
	}
	in.keep(revs[0])
	in.remember(oid, revs[0].TID, revs[0].State)
	return revs[0].State, revs[0].TID, nil
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
				return state, tid, true
			}
		}
	}
	if countMiss {
		sh.cache.NoteMiss()
	}
	return nil, 0, false
}

// keep puts a current revision read through the snapshot into the shared
// cache and tells the index.
func (in *Instance) keep(r adapter.Revision) {
	sh := in.s.sh
	sh.cache.Put(r.OID, r.TID, r.State)
	if in.indexed {
		sh.index.learn(in.snapEpoch, in.snapTID, r.OID, r.TID)
	}
}

// stateMD5 is the hex MD5 RelStorage keeps for each history-preserving
// revision (undo compares them); nil for a revision without state.
func stateMD5(state []byte) []byte {
	if state == nil {
		return nil
	}
	sum := md5.Sum(state)
	return []byte(hex.EncodeToString(sum[:]))
}

// maxRecentBytes bounds the history-free revision memory of one instance;
// past it, it starts over.
const maxRecentBytes = 8 << 20

func (in *Instance) remember(oid, tid uint64, state []byte) {
	if in.s.opts.KeepHistory || len(state) > maxRecentBytes/4 {
		return
	}
	if in.recent == nil || in.recentBytes+len(state) > maxRecentBytes {
		in.recent, in.recentBytes = make(map[[2]uint64][]byte), 0
	}
	in.recent[[2]uint64{oid, tid}] = state
	in.recentBytes += len(state)
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

// LastTID is the newest committed tid in the database right now.
func (s *Storage) LastTID(ctx context.Context) (tid uint64, err error) {
	err = s.freshRead(ctx, func(c adapter.LoadConn) error {
		tid, err = c.LastTID(ctx)
		return classify(err, "last tid")
	})
	return tid, err
}

// --- two-phase commit -------------------------------------------------------

// Begin starts a transaction. restoreTID, if not 0, is the tid to commit
// under (restore / copyTransactionsFrom); packed marks it as packed.
func (in *Instance) Begin(meta TxnMeta, restoreTID uint64, packed bool) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return err
	}
	if in.s.opts.ReadOnly {
		return Errorf(KindReadOnly, "tpc_begin: the storage is read-only")
	}
	if in.txn != nil {
		return Errorf(KindTransaction, "tpc_begin: a transaction is already in progress")
	}
	in.txn = &commit{meta: meta, restoreTID: restoreTID, packed: packed,
		writes: map[uint64]*write{}, readCur: map[uint64]uint64{}}
	return nil
}

func (in *Instance) active(what string) (*commit, error) {
	if err := in.check(); err != nil {
		return nil, err
	}
	if in.txn == nil {
		return nil, Errorf(KindTransaction, "%s: no transaction in progress", what)
	}
	if in.txn.voting {
		return nil, Errorf(KindTransaction, "%s: the transaction has already voted", what)
	}
	return in.txn, nil
}

func (t *commit) add(w *write) {
	if _, ok := t.writes[w.oid]; !ok {
		t.order = append(t.order, w.oid)
	}
	t.writes[w.oid] = w
	t.maxOID = max(t.maxOID, w.oid)
}

// Store buffers a new state of oid based on serial (0 for a new object).
func (in *Instance) Store(oid, serial uint64, state []byte) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("store")
	if err != nil {
		return err
	}
	if state == nil {
		state = []byte{}
	}
	if err := in.checkState(oid, state); err != nil {
		return err
	}
	t.add(&write{oid: oid, serial: serial, state: state, kind: writeStore})
	return nil
}

// Restore buffers a state to be written as is, without conflict checks.
// A nil state records an undone creation.
func (in *Instance) Restore(oid uint64, state []byte) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("restore")
	if err != nil {
		return err
	}
	if err := in.checkState(oid, state); err != nil {
		return err
	}
	t.add(&write{oid: oid, state: state, kind: writeRestore})
	return nil
}

// checkState asks the dialect whether it can store state at all.
func (in *Instance) checkState(oid uint64, state []byte) error {
	if c, ok := in.s.dialect.(adapter.StateChecker); ok {
		if err := c.CheckState(oid, state); err != nil {
			return &Error{Kind: KindStorage, OID: oid, HasOID: true, Msg: "store", Err: err}
		}
	}
	return nil
}

// DeleteObject buffers the deletion of oid, whose current serial must be serial.
func (in *Instance) DeleteObject(oid, serial uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("deleteObject")
	if err != nil {
		return err
	}
	t.add(&write{oid: oid, serial: serial, kind: writeDelete})
	return nil
}

// CheckCurrent records that oid must still be at serial when the transaction commits.
func (in *Instance) CheckCurrent(oid, serial uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("checkCurrentSerialInTransaction")
	if err != nil {
		return err
	}
	if prev, ok := t.readCur[oid]; ok && prev != serial {
		return ConflictError(KindReadConflict, oid, prev, serial,
			"checkCurrentSerialInTransaction: the transaction read two revisions of this object")
	}
	t.readCur[oid] = serial
	return nil
}

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
		undos = append(undos, &write{oid: it.OID, serial: serial, state: state, kind: writeUndo})
	}
	oids := make([]uint64, len(undos))
	for i, w := range undos {
		t.add(w)
		oids[i] = w.oid
	}
	return oids, nil
}

func (in *Instance) storeConn(ctx context.Context) (adapter.StoreConn, error) {
	if in.txn.store == nil {
		c, err := in.s.dialect.OpenStore(ctx)
		if err != nil {
			return nil, classify(err, "open store connection")
		}
		in.txn.store = c
	}
	return in.txn.store, nil
}

// Vote writes nothing yet but takes the locks and checks every write and
// readCurrent against the database. It returns the conflicts Python must
// resolve (call Resolve with the results, then Vote is complete).
func (in *Instance) Vote(ctx context.Context) ([]Conflict, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("tpc_vote")
	if err != nil {
		return nil, err
	}
	t.voting = true
	st, err := in.storeConn(ctx)
	if err != nil {
		return nil, err
	}
	if err := st.BeginCommit(ctx); err != nil {
		return nil, in.voteErr(classify(err, "tpc_vote"))
	}
	modified := append([]uint64(nil), t.order...)
	sort.Slice(modified, func(i, j int) bool { return modified[i] < modified[j] })
	readCur := make([]uint64, 0, len(t.readCur))
	for oid := range t.readCur {
		if _, ok := t.writes[oid]; !ok {
			readCur = append(readCur, oid)
		}
	}
	sort.Slice(readCur, func(i, j int) bool { return readCur[i] < readCur[j] })
	current, err := st.LockObjects(ctx, readCur, modified)
	if err != nil {
		return nil, in.voteErr(classify(err, "tpc_vote: lock objects"))
	}
	t.current = current
	for _, oid := range readCur {
		if cur, want := current[oid], t.readCur[oid]; cur != want {
			return nil, in.voteErr(ConflictError(KindReadConflict, oid, cur, want,
				"the object was changed by another transaction after it was read"))
		}
	}
	var toResolve []uint64
	for _, oid := range modified {
		w := t.writes[oid]
		cur := current[oid]
		if w.kind == writeRestore || w.serial == cur {
			continue
		}
		switch {
		case w.kind == writeUndo && cur == 0:
			return nil, in.voteErr(&Error{Kind: KindUndo, OID: oid, HasOID: true,
				Msg: "undo: the object was deleted by another transaction"})
		case w.kind == writeDelete || w.serial == 0 || cur == 0:
			return nil, in.voteErr(ConflictError(KindConflict, oid, cur, w.serial, "database conflict error"))
		}
		toResolve = append(toResolve, oid)
	}
	// OIDs imported by restore (or chosen by the caller) are never issued
	// again. OIDs this process was issued are below the counter already.
	if t.maxOID > in.s.maxIssuedOID.Load() {
		if err := in.s.dialect.SetMinOID(ctx, t.maxOID); err != nil {
			return nil, in.voteErr(classify(err, "tpc_vote: set min oid"))
		}
	}
	if len(toResolve) == 0 {
		t.voted = true
		return nil, nil
	}
	committed, err := st.States(ctx, toResolve)
	if err != nil {
		return nil, in.voteErr(classify(err, "tpc_vote: read committed states"))
	}
	t.conflicts = make(map[uint64]Conflict, len(toResolve))
	out := make([]Conflict, 0, len(toResolve))
	for _, oid := range toResolve {
		w := t.writes[oid]
		c := Conflict{OID: oid, CommittedTID: current[oid], OldTID: w.serial, NewState: w.state,
			CommittedState: committed[oid].State, Undo: w.kind == writeUndo}
		t.conflicts[oid] = c
		out = append(out, c)
	}
	return out, nil
}

// voteErr rolls back the write transaction after a failed vote; the caller
// still calls tpc_abort.
func (in *Instance) voteErr(err error) error {
	if in.txn != nil && in.txn.store != nil {
		in.txn.store.Rollback()
	}
	return err
}

// Resolution is a conflict Python resolved: State replaces the write, based on CommittedTID.
type Resolution struct {
	OID          uint64
	CommittedTID uint64
	State        []byte
}

// Resolve completes a vote that returned conflicts.
func (in *Instance) Resolve(res []Resolution) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return err
	}
	t := in.txn
	if t == nil || t.conflicts == nil || t.voted {
		return Errorf(KindTransaction, "resolve: no vote is waiting for conflict resolution")
	}
	for _, r := range res {
		c, ok := t.conflicts[r.OID]
		if !ok || c.CommittedTID != r.CommittedTID {
			return Errorf(KindTransaction, "resolve: oid %d was not in conflict at tid %d", r.OID, r.CommittedTID)
		}
		w := t.writes[r.OID]
		w.serial, w.state = r.CommittedTID, r.State
		delete(t.conflicts, r.OID)
	}
	if len(t.conflicts) > 0 {
		for oid, c := range t.conflicts {
			return in.voteErr(ConflictError(KindConflict, oid, c.CommittedTID, c.OldTID, "unresolved conflict"))
		}
	}
	t.conflicts = nil
	t.voted = true
	return nil
}

// FinishLock takes the commit lock, chooses the tid and writes the
// transaction, without committing it. Python runs the finish callback, then
// calls FinishCommit; nothing is visible to readers before that.
func (in *Instance) FinishLock(ctx context.Context) (uint64, error) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if err := in.check(); err != nil {
		return 0, err
	}
	t := in.txn
	if t == nil || !t.voted {
		return 0, Errorf(KindTransaction, "tpc_finish: the transaction has not voted")
	}
	if t.tid != 0 {
		return 0, Errorf(KindTransaction, "tpc_finish: already finishing")
	}
	last, now, err := t.store.LockCommit(ctx)
	if err != nil {
		return 0, classify(err, "tpc_finish: commit lock")
	}
	newest := max(last, in.s.newestTID.Load()) // a history-free deletion can hide the newest tid
	tid := t.restoreTID
	if tid == 0 {
		if now.IsZero() {
			now = time.Now()
		}
		tid = NextTID(now, newest)
	}
	t.inOrder, t.newest = tid > newest, newest
	writes := make([]adapter.Write, 0, len(t.order))
	for _, oid := range t.order {
		w := t.writes[oid]
		state := w.state
		if w.kind == writeDelete {
			state = nil
		}
		wr := adapter.Write{OID: oid, PrevTID: t.current[oid], State: state}
		if in.s.opts.KeepHistory {
			wr.MD5 = stateMD5(state)
		}
		writes = append(writes, wr)
	}
	meta := adapter.TxnInfo{TID: tid, Packed: t.packed, User: t.meta.User, Description: t.meta.Description,
		Extension: t.meta.Extension}
	if err := t.store.Move(ctx, tid, meta, writes); err != nil {
		return 0, classify(err, "tpc_finish: write")
	}
	t.tid = tid
	return tid, nil
}

// FinishCommit commits what FinishLock wrote and ends the transaction.
func (in *Instance) FinishCommit(ctx context.Context) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t := in.txn
	if t == nil || t.tid == 0 {
		return Errorf(KindTransaction, "tpc_finish: not finishing")
	}
	// The snapshot is not needed past this point, and must not be held
	// across the commit: an open SQLite read transaction keeps the commit's
	// checkpoint from ever emptying the WAL, which then grows without end.
	in.endSnapshot()
	err := t.store.Commit(ctx)
	in.abortLocked()
	if errors.Is(err, adapter.ErrCommitUnknown) {
		return &Error{Kind: KindCommitUnknown, Serials: [2]uint64{t.tid, 0}, Err: err,
			Msg: fmt.Sprintf("tpc_finish: the transaction with tid %d (0x%016x) may or may not have committed; "+
				"look for this tid in the database before running it again", t.tid, t.tid)}
	}
	if err != nil {
		return classify(err, "tpc_finish: commit")
	}
	in.lastCommit = t.tid
	in.s.sawTID(t.tid)
	// Own commits fill the shared cache; undo evicts the revisions it replaced.
	sh := in.s.sh
	for _, oid := range t.order {
		w := t.writes[oid]
		if w.kind == writeUndo {
			sh.cache.Invalidate(oid)
		}
		if w.state != nil && w.kind != writeDelete {
			in.remember(oid, t.tid, w.state)
			sh.cache.Put(oid, t.tid, w.state)
		}
	}
	sh.index.committed(t.tid, t.order, t.inOrder, t.newest)
	sh.sawCommit(t.tid)
	if in.ownTIDs == nil {
		in.ownTIDs = map[uint64]bool{}
	}
	in.ownTIDs[t.tid] = true
	return nil
}

// Abort discards the transaction, if any.
func (in *Instance) Abort() {
	in.mu.Lock()
	defer in.mu.Unlock()
	in.abortLocked()
}

func (in *Instance) abortLocked() {
	if in.txn == nil {
		return
	}
	if in.txn.store != nil {
		in.txn.store.Close()
	}
	in.txn = nil
}

// InTransaction reports whether a transaction is in progress.
func (in *Instance) InTransaction() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.txn != nil
}
