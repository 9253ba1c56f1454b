package engine

import (
	"cmp"
	"slices"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// index is the process-wide MVCC index of one database: for an instance
// whose snapshot is at tid S it answers "which revision of oid does S see?"
// without a query, so that the shared cache (keyed by oid and tid) can serve
// the load. Every snapshot an instance starts merges what changed since the
// index's head (the poll result feeds the index; instances at the same point
// share that one query), so the index knows every object change in
// (base, head]. For an oid that changed in that window the answer is its
// newest change at or before S; for one that did not, it is the revision
// current at base, which the index learns from loads (atBase) and from
// compaction.
//
// Why the newest known change at or before S is right: every merged snapshot
// reports the current tid of each object changed since the head it started
// from, and an object unchanged since then has its current tid in the index
// already (by induction), so the current tid at every merged snapshot is in
// the index; a later known change before S would contradict it being current.
//
// Compaction moves base forward to a merged snapshot no polled instance is
// behind; when more than cache-delta-size-limit changes pile up it moves
// base further, and instances left behind are told to invalidate everything.
// A commit with a tid below the head (restore of old transactions) breaks the
// tid order snapshots rely on: the index then becomes invalid and starts over
// with the next snapshot begun after it (epoch).
type index struct {
	mu    sync.Mutex
	limit int // cache-delta-size-limit

	valid   bool
	started bool // a snapshot has been merged: head means something
	epoch   uint64
	base    uint64
	head    uint64
	log     []logBucket // changes in (base, ...] by tid, ascending; own commits may lie past head
	count   int         // oids in log
	marks   []uint64    // merged snapshot tids above base, ascending (compaction points)

	shards [indexShards]indexShard
}

const (
	indexShards = 64
	// maxAtBasePerShard bounds what the index remembers of unchanged objects.
	maxAtBasePerShard = 1 << 16
	// compactEvery is how many merged snapshots may accumulate before compacting.
	compactEvery = 32
)

type logBucket struct {
	tid  uint64
	oids []uint64
}

type indexShard struct {
	mu      sync.RWMutex
	valid   bool
	epoch   uint64
	base    uint64
	changes map[uint64][]uint64 // oid -> change tids above base, ascending
	atBase  map[uint64]uint64   // oid -> its current tid at base (no change above base)
}

func newIndex(limit int) *index {
	x := &index{limit: limit, valid: true}
	for i := range x.shards {
		x.shards[i] = indexShard{valid: true, changes: map[uint64][]uint64{}, atBase: map[uint64]uint64{}}
	}
	return x
}

func (x *index) shard(oid uint64) *indexShard {
	return &x.shards[(oid*0x9E3779B97F4A7C15)>>58]
}

// position is what an instance reads before starting a snapshot: the head to
// ask changes after, and the epoch its snapshot will belong to. fresh is true
// until a snapshot has been merged: the first snapshot starts the index at
// its own tid and needs no changes at all.
func (x *index) position() (head, epoch uint64, fresh bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.head, x.epoch, !x.started
}

// merge records a snapshot at tid snap begun in epoch after head was read as
// after; changes are the objects whose current tid is above after (complete
// unless overflow: more than the delta limit, not all of them listed). It
// returns the snapshot tid to use for lookups (never below after: the
// snapshot saw everything committed before it began) and whether the
// snapshot may use the index at all.
func (x *index) merge(epoch, after, snap uint64, changes []adapter.Change, overflow bool) (uint64, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if epoch != x.epoch {
		return snap, false
	}
	snap = max(snap, after)
	if !x.valid || overflow || !x.started {
		// Start over at this snapshot: nothing is known about what changed.
		x.reset(snap)
		return snap, true
	}
	for _, c := range changes {
		if c.TID > x.base {
			x.add(c.OID, c.TID)
		}
	}
	if snap > x.head {
		x.head = snap
	}
	if snap > x.base {
		if i, found := slices.BinarySearch(x.marks, snap); !found {
			x.marks = slices.Insert(x.marks, i, snap)
		}
	}
	return snap, true
}

// add records a change of oid at tid; x.mu is held.
func (x *index) add(oid, tid uint64) {
	sh := x.shard(oid)
	sh.mu.Lock()
	tids := sh.changes[oid]
	i, found := slices.BinarySearch(tids, tid)
	if !found {
		sh.changes[oid] = slices.Insert(tids, i, tid)
	}
	sh.mu.Unlock()
	if found {
		return
	}
	j, ok := slices.BinarySearchFunc(x.log, tid, func(b logBucket, t uint64) int { return cmp.Compare(b.tid, t) })
	if !ok {
		x.log = slices.Insert(x.log, j, logBucket{tid: tid})
	}
	x.log[j].oids = append(x.log[j].oids, oid)
	x.count++
}

// reset forgets everything and makes snap the new base and head; x.mu is held.
func (x *index) reset(snap uint64) {
	x.valid, x.started, x.base, x.head, x.log, x.count, x.marks = true, true, snap, snap, nil, 0, nil
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		sh.valid, sh.epoch, sh.base = true, x.epoch, snap
		clear(sh.changes)
		clear(sh.atBase)
		sh.mu.Unlock()
	}
}

// invalidate makes every current snapshot unable to use the index, until a
// snapshot begun after now merges (a commit went in below the head).
func (x *index) invalidate() {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.epoch++
	x.valid = false
	for i := range x.shards {
		sh := &x.shards[i]
		sh.mu.Lock()
		sh.valid, sh.epoch = false, x.epoch
		sh.mu.Unlock()
	}
}

// committed records a commit this process made: oids changed at tid.
// inOrder is false when the tid was not above every committed tid when the
// commit lock was taken (restoring old transactions): snapshots that began
// before the commit and are past its tid did not see it. newest is the
// newest tid committed before the lock was taken: a process that writes
// before it reads starts the index there, as nothing but this commit
// happened in (newest, tid].
func (x *index) committed(tid uint64, oids []uint64, inOrder bool, newest uint64) {
	if !inOrder {
		x.invalidate()
		return
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.started && x.valid {
		x.reset(newest)
	}
	if !x.valid || tid <= x.base {
		// Invalid: it starts over anyway. At or below base: a snapshot past
		// the commit was merged and compacted already.
		return
	}
	for _, oid := range oids {
		x.add(oid, tid)
	}
	if x.head == newest && tid > x.head {
		// Nothing else committed since the head: the commit extends it.
		x.head = tid
		x.marks = append(x.marks, tid)
	}
}

// lookup returns the tid of the revision of oid a snapshot at snap (begun in
// epoch) sees; ok is false when the index cannot tell.
func (x *index) lookup(epoch, snap, oid uint64) (uint64, bool) {
	sh := x.shard(oid)
	sh.mu.RLock()
	defer sh.mu.RUnlock()
	if !sh.valid || sh.epoch != epoch || snap < sh.base {
		return 0, false
	}
	tids := sh.changes[oid]
	// The newest change at or before snap.
	i, found := slices.BinarySearch(tids, snap)
	if found {
		return tids[i], true
	}
	if i > 0 {
		return tids[i-1], true
	}
	tid, ok := sh.atBase[oid]
	return tid, ok
}

// learn records that a snapshot at snap (begun in epoch) read oid's current
// revision as tid: with no change of oid in (base, snap], that is its
// revision at base too.
func (x *index) learn(epoch, snap, oid, tid uint64) {
	sh := x.shard(oid)
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if !sh.valid || sh.epoch != epoch || snap < sh.base || tid > sh.base {
		return
	}
	if tids := sh.changes[oid]; len(tids) > 0 && tids[0] <= snap {
		return
	}
	if len(sh.atBase) >= maxAtBasePerShard {
		clear(sh.atBase)
	}
	sh.atBase[oid] = tid
}

// changed lists the oids changed in (from, to], skipping transactions in
// skip. all is true when the index cannot list them (from is behind its
// base, or the snapshot could not use the index) or there are more than the
// delta limit.
func (x *index) changed(epoch, from, to uint64, skip map[uint64]bool) (oids []uint64, all bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.valid || epoch != x.epoch || from < x.base || to > x.head {
		return nil, true
	}
	start, _ := slices.BinarySearchFunc(x.log, from+1, func(b logBucket, t uint64) int { return cmp.Compare(b.tid, t) })
	seen := map[uint64]bool{}
	for _, b := range x.log[start:] {
		if b.tid > to {
			break
		}
		if skip[b.tid] {
			continue
		}
		for _, oid := range b.oids {
			if !seen[oid] {
				seen[oid] = true
				oids = append(oids, oid)
			}
		}
		if len(oids) > x.limit {
			return nil, true
		}
	}
	return oids, false
}

// wantsCompaction tells whether compact has anything to do.
func (x *index) wantsCompaction() bool {
	x.mu.Lock()
	defer x.mu.Unlock()
	return x.valid && (len(x.marks) >= compactEvery || x.count > x.limit)
}

// compact moves base up to the newest merged snapshot at or below oldest
// (the oldest point a polled instance still needs), or further when more than
// the delta limit of changes are held.
func (x *index) compact(oldest uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if !x.valid || len(x.marks) == 0 {
		return
	}
	if len(x.marks) < compactEvery && x.count <= x.limit {
		return
	}
	to := x.base
	for _, m := range x.marks {
		if m > oldest {
			break
		}
		to = m
	}
	// Over the limit: drop the oldest changes until at most half the limit remain.
	if x.count > x.limit {
		remaining := x.count
		for _, b := range x.log {
			if remaining <= x.limit/2 {
				break
			}
			remaining -= len(b.oids)
			// the first merged snapshot at or past this bucket
			if i, _ := slices.BinarySearch(x.marks, b.tid); i < len(x.marks) {
				to = max(to, x.marks[i])
			}
		}
	}
	if to <= x.base {
		return
	}
	x.moveBase(to)
}

// moveBase folds the changes at or below to into atBase; x.mu is held.
func (x *index) moveBase(to uint64) {
	n := 0
	for n < len(x.log) && x.log[n].tid <= to {
		n++
	}
	byShard := map[*indexShard][]uint64{}
	for _, b := range x.log[:n] {
		for _, oid := range b.oids {
			sh := x.shard(oid)
			byShard[sh] = append(byShard[sh], oid)
		}
		x.count -= len(b.oids)
	}
	x.log = slices.Delete(x.log, 0, n)
	i, _ := slices.BinarySearch(x.marks, to+1)
	x.marks = slices.Delete(x.marks, 0, i)
	x.base = to
	for s := range x.shards {
		sh := &x.shards[s]
		sh.mu.Lock()
		for _, oid := range byShard[sh] {
			tids := sh.changes[oid]
			k, _ := slices.BinarySearch(tids, to+1)
			if k == 0 {
				continue // already folded (an oid listed twice)
			}
			if len(sh.atBase) < maxAtBasePerShard {
				sh.atBase[oid] = tids[k-1]
			}
			if k == len(tids) {
				delete(sh.changes, oid)
			} else {
				sh.changes[oid] = slices.Delete(tids, 0, k)
			}
		}
		sh.base = to
		sh.mu.Unlock()
	}
}

// seed starts the index at snap with oids known current as tids (a
// revalidated cache file).
func (x *index) seed(snap uint64, current map[uint64]uint64) {
	x.mu.Lock()
	defer x.mu.Unlock()
	x.reset(snap)
	for oid, tid := range current {
		sh := x.shard(oid)
		if len(sh.atBase) < maxAtBasePerShard {
			sh.atBase[oid] = tid
		}
	}
}

// restart makes the index as new, its snapshots unable to use it: the
// database was emptied, and its tids start again below the head.
func (x *index) restart() {
	x.invalidate()
	x.mu.Lock()
	defer x.mu.Unlock()
	x.started, x.base, x.head, x.log, x.count, x.marks = false, 0, 0, nil, 0, nil
}
