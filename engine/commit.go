// The two-phase commit: writes are buffered by tpc_begin .. store, locked
// and checked at vote (conflicts go back to Python and return through
// Resolve), written under the commit lock by FinishLock and committed by
// FinishCommit.

package engine

import (
	"cmp"
	"context"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"sort"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

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
	// blobFrom: an undo brings back the revision of this tid, and its blob.
	blobFrom uint64
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
	tid        uint64            // chosen at FinishLock
	inOrder    bool              // tid is above every tid committed before the commit lock
	newest     uint64            // the newest tid committed before the commit lock
	blobs      map[uint64]string // staged blob files by oid (blobs.go)
	placed     []uint64          // oids whose files a shared blob directory holds for tid, not yet committed
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
	if staged, ok := t.blobs[w.oid]; ok { // a later write replaces the blob too
		os.Remove(staged)
		delete(t.blobs, w.oid)
	}
	t.writes[w.oid] = w
	t.maxOID = max(t.maxOID, w.oid)
}

// Store buffers a new state of oid based on serial (0 for a new object).
func (in *Instance) Store(oid, serial uint64, state []byte) error {
	return in.StoreMany([]StoreRecord{{OID: oid, Serial: serial, State: state}})
}

// StoreRecord is one store(): a new state of OID based on Serial (0 for a
// new object).
type StoreRecord struct {
	OID, Serial uint64
	State       []byte
}

// StoreMany is Store for records in the order they were stored, in one
// call: Python gathers a transaction's stores and sends them before the
// vote or the next write of another kind.
func (in *Instance) StoreMany(records []StoreRecord) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("store")
	if err != nil {
		return err
	}
	for _, r := range records {
		state := r.State
		if state == nil {
			state = []byte{}
		}
		if err := in.checkState(r.OID, state); err != nil {
			return err
		}
		t.add(&write{oid: r.OID, serial: r.Serial, state: state, kind: writeStore})
	}
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
	return in.CheckCurrentMany([][2]uint64{{oid, serial}})
}

// CheckCurrentMany is CheckCurrent for pairs of (oid, serial), in order, in
// one call: Python gathers a transaction's readCurrent calls and sends them
// before the vote.
func (in *Instance) CheckCurrentMany(pairs [][2]uint64) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	t, err := in.active("checkCurrentSerialInTransaction")
	if err != nil {
		return err
	}
	for _, p := range pairs {
		oid, serial := p[0], p[1]
		if prev, ok := t.readCur[oid]; ok && prev != serial {
			return ConflictError(KindReadConflict, oid, prev, serial,
				"checkCurrentSerialInTransaction: the transaction read two revisions of this object")
		}
		t.readCur[oid] = serial
	}
	return nil
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
	if err := in.stageBlobs(ctx, t, st); err != nil {
		return nil, in.voteErr(err)
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
	started := time.Now()
	current, err := st.LockObjects(ctx, readCur, modified)
	in.lockWaits[0] = time.Since(started)
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
		oid := slices.Min(slices.Collect(maps.Keys(t.conflicts))) // the same object every time
		c := t.conflicts[oid]
		return in.voteErr(ConflictError(KindConflict, oid, c.CommittedTID, c.OldTID, "unresolved conflict"))
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
	started := time.Now()
	last, now, err := t.store.LockCommit(ctx)
	in.lockWaits[1] = time.Since(started)
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
		if in.s.blobs != nil && !in.s.blobs.dir.Shared {
			_, wr.Blob = t.blobs[oid]
			wr.BlobFrom = w.blobFrom
		}
		if in.s.opts.KeepHistory {
			wr.MD5 = stateMD5(state)
		}
		writes = append(writes, wr)
	}
	// In the order of their oids, not ZODB's (which stores the new objects a
	// commit finds last first): SQLite's B-tree then fills its pages as it
	// appends. 500 new objects of 1.5 kB took 514 pages in ZODB's order, one
	// a page, and take about 260 in this one as in RelStorage's database:
	// half the pages to read, and a page cache that holds twice the objects.
	slices.SortFunc(writes, byOID)
	meta := adapter.TxnInfo{TID: tid, Packed: t.packed, User: t.meta.User, Description: t.meta.Description,
		Extension: t.meta.Extension}
	if err := t.store.Move(ctx, tid, meta, writes); err != nil {
		return 0, classify(err, "tpc_finish: write")
	}
	t.tid = tid
	if err := in.placeBlobs(t, tid); err != nil {
		return 0, err
	}
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
	if err == nil || errors.Is(err, adapter.ErrCommitUnknown) {
		t.placed = nil // the files stay: the transaction committed, or may have
	}
	if err == nil && t.blobs != nil {
		in.cacheBlobs(t)
	}
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
			sh.trace.record(traceStore, oid, t.tid, len(w.state))
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
	if b := in.s.blobs; b != nil {
		in.txn.dropBlobFiles(b.dir)
	}
	in.txn = nil
}

// LockWaits tells how long the last vote waited for its objects' locks, and
// the last finish for the commit lock (the statement that takes them,
// round trip included).
func (in *Instance) LockWaits() (objects, commit time.Duration) {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.lockWaits[0], in.lockWaits[1]
}

// byOID orders writes by their objects' oids.
func byOID(a, b adapter.Write) int { return cmp.Compare(a.OID, b.OID) }
