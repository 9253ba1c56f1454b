package engine

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/hex"
	"sort"
	"sync"
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
	snapTID    uint64 // newest tid visible in the snapshot
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
	in.s.forget(in)
}

func (in *Instance) check() error {
	if in.released {
		return Errorf(KindClosed, "the storage instance is released")
	}
	return in.s.check()
}

func (in *Instance) endSnapshot() {
	if in.inSnapshot {
		in.load.End()
		in.inSnapshot = false
	}
	in.prefetched = nil
}

func (in *Instance) dropLoad() {
	in.endSnapshot()
	if in.load != nil {
		in.load.Close()
		in.load = nil
	}
}

// beginSnapshot starts a new snapshot and records its newest tid.
func (in *Instance) beginSnapshot(ctx context.Context) error {
	in.endSnapshot()
	if in.load == nil {
		c, err := in.s.dialect.OpenLoad(ctx)
		if err != nil {
			return classify(err, "open load connection")
		}
		in.load = c
	}
	err := in.load.Begin(ctx)
	if err == nil {
		in.inSnapshot = true
		in.snapTID, err = in.load.LastTID(ctx)
	}
	if err != nil {
		in.dropLoad() // a broken connection is reopened by the next read
		return classify(err, "begin snapshot")
	}
	in.s.sawTID(in.snapTID)
	return nil
}

// beginPollSnapshot starts a snapshot and, where the dialect can do both in
// one round trip, lists the changes after `after` with it (ok is true).
func (in *Instance) beginPollSnapshot(ctx context.Context, after uint64, limit int) (changes []adapter.Change, ok bool, err error) {
	in.endSnapshot()
	if in.load == nil {
		c, err := in.s.dialect.OpenLoad(ctx)
		if err != nil {
			return nil, false, classify(err, "open load connection")
		}
		in.load = c
	}
	p, isPoller := in.load.(adapter.SnapshotPoller)
	if !isPoller {
		return nil, false, in.beginSnapshot(ctx)
	}
	last, changes, err := p.BeginPoll(ctx, after, limit)
	if err != nil {
		in.dropLoad()
		return nil, false, classify(err, "poll")
	}
	in.inSnapshot, in.snapTID = true, last
	in.s.sawTID(last)
	return changes, true, nil
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
	if err := in.beginSnapshot(ctx); err != nil {
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
	limit := in.s.opts.CacheDeltaSizeLimit
	var changes []adapter.Change
	polledChanges := false
	if in.polled {
		changes, polledChanges, err = in.beginPollSnapshot(ctx, in.polledTID, limit+1)
	} else {
		err = in.beginSnapshot(ctx)
	}
	if err != nil {
		return nil, false, err
	}
	newTID := in.snapTID
	if !in.polled {
		in.polled, in.polledTID, in.ownTIDs = true, newTID, nil
		return nil, true, nil
	}
	if newTID < in.polledTID {
		if !in.s.opts.KeepHistory {
			// Deleting the object that held the newest tid lowers MAX(tid);
			// nothing newer than what we polled exists.
			in.ownTIDs = nil
			return nil, false, nil
		}
		return nil, false, Errorf(KindReadConflict,
			"the database went back in time: last seen tid %d, now %d (restored from a backup?)", in.polledTID, newTID)
	}
	if newTID == in.polledTID {
		in.ownTIDs = nil
		return nil, false, nil
	}
	if !polledChanges {
		changes, err = in.load.Changes(ctx, in.polledTID, newTID, limit+1)
		if err != nil {
			return nil, false, in.readErr(err, "poll")
		}
	}
	in.polledTID = newTID
	own := in.ownTIDs
	in.ownTIDs = nil
	if len(changes) > limit {
		return nil, true, nil
	}
	oids = make([]uint64, 0, len(changes))
	for _, c := range changes {
		if !own[c.TID] {
			oids = append(oids, c.OID)
		}
	}
	return oids, false, nil
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

// Load returns the current state of oid in the instance's view.
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
	revs, err := c.Current(ctx, []uint64{oid})
	if err != nil {
		return nil, 0, in.readErr(err, "load")
	}
	if len(revs) == 0 || revs[0].State == nil {
		return nil, 0, POSKeyError(oid, "no object %#x", oid)
	}
	in.remember(oid, revs[0].TID, revs[0].State)
	return revs[0].State, revs[0].TID, nil
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

// Prefetch loads the current states of oids into the instance's snapshot
// cache, in batches, so that the Loads that follow need no round trip.
func (in *Instance) Prefetch(ctx context.Context, oids []uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	c, err := in.view(ctx)
	if err != nil {
		return err
	}
	if !in.polled {
		return nil // without a held snapshot there is nothing to keep them for
	}
	const maxPrefetched = 100000
	revs, err := c.Current(ctx, oids)
	if err != nil {
		return in.readErr(err, "prefetch")
	}
	if in.prefetched == nil {
		in.prefetched = make(map[uint64]adapter.Revision, len(revs))
	}
	for _, r := range revs {
		if len(in.prefetched) >= maxPrefetched {
			break
		}
		if r.State != nil {
			in.prefetched[r.OID] = r
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

// History returns up to size revisions of oid, newest first.
func (in *Instance) History(ctx context.Context, oid uint64, size int) ([]adapter.HistoryEntry, error) {
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
	tid := t.restoreTID
	if tid == 0 {
		// A history-free deletion can hide the newest tid from the database.
		if now.IsZero() {
			now = time.Now()
		}
		tid = NextTID(now, max(last, in.s.newestTID.Load()))
	}
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
	err := t.store.Commit(ctx)
	in.abortLocked()
	if err != nil {
		return classify(err, "tpc_finish: commit")
	}
	in.lastCommit = t.tid
	in.s.sawTID(t.tid)
	for _, w := range t.writes {
		if w.state != nil && w.kind != writeDelete {
			in.remember(w.oid, t.tid, w.state)
		}
	}
	if in.ownTIDs == nil {
		in.ownTIDs = map[uint64]bool{}
	}
	in.ownTIDs[t.tid] = true
	// Our own writes must be visible to our next read.
	in.endSnapshot()
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
