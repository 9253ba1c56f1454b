// An instance's snapshot: starting one (with the poll that feeds the shared
// index), ending it (at once, or with the next start), and what ZODB's
// poll_invalidations, sync and lastTransaction see of it.

package engine

import (
	"context"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

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
	_, _, err := in.startSnapshotLoad(ctx, 0, false)
	return err
}

// startSnapshotLoad is startSnapshot that also reads oid's current revision
// in the new snapshot when want is set and the dialect can send that read
// with the snapshot's start (adapter.SnapshotLoader): loaded tells whether it
// did, found whether the object has a row. An instance that never polls (the
// root storage of scripts and tools) starts a snapshot for every load, which
// is then one round trip, as a load in a held snapshot is.
func (in *Instance) startSnapshotLoad(ctx context.Context, oid uint64, want bool) (rev adapter.Revision, loaded bool, err error) {
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
			return rev, false, classify(err, "open load connection")
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
	var found bool
	if l, ok := in.load.(adapter.SnapshotLoader); ok && want {
		last, changes, rev, found, err = l.BeginPollLoad(ctx, ask, limit+1, oid)
		in.inSnapshot, loaded = err == nil, err == nil
	} else if p, ok := in.load.(adapter.SnapshotPoller); ok {
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
		return rev, false, classify(err, "begin snapshot")
	}
	in.s.sawTID(last)
	in.snapLast, in.snapEpoch = last, epoch
	in.snapTID, in.indexed = x.merge(epoch, after, max(last, done), changes, len(changes) > limit)
	if !found {
		rev = adapter.Revision{}
	}
	return rev, loaded, nil
}

// view returns the load connection positioned for a read: the held snapshot
// once polled, else a fresh one.
func (in *Instance) view(ctx context.Context) (adapter.LoadConn, error) {
	c, _, _, err := in.viewRead(ctx, 0, false)
	return c, err
}

// viewRead is view that, with read set, has a new snapshot's start carry
// the read of oid where the dialect can send both at once, unless the
// shared cache likely holds oid: loaded tells whether it did (rev is then
// oid's current revision, empty when it has no row).
func (in *Instance) viewRead(ctx context.Context, oid uint64, read bool) (
	c adapter.LoadConn, rev adapter.Revision, loaded bool, err error) {
	if err := in.check(); err != nil {
		return nil, rev, false, err
	}
	if in.inSnapshot && in.polled {
		return in.load, rev, false, nil
	}
	rev, loaded, err = in.startSnapshotLoad(ctx, oid, read && !in.likelyCached(oid))
	if err != nil {
		return nil, rev, false, err
	}
	return in.load, rev, loaded, nil
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
	// History-free, MAX(tid) goes down when a deletion removes every object of
	// the newest transaction: only with replicas, which lag, is that taken for
	// a stale snapshot (as RelStorage does).
	replicas := in.s.opts.ReplicaConf != "" || in.s.opts.ROReplicaConf != ""
	if in.snapLast < from && (in.s.opts.KeepHistory || replicas) {
		if !in.s.opts.RevertWhenStale {
			return nil, false, Errorf(KindReadConflict,
				"the database went back in time: last seen tid %d, now %d (a replica behind, or restored from a backup?)",
				from, in.snapLast)
		}
		in.revert()
		return nil, true, nil
	}
	// History-free without replicas: deleting the objects that held the
	// newest tid lowers MAX(tid), but the snapshot still sees everything
	// polled before.
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

// revert is revert-when-stale: the snapshot (a replica's) is older than what
// the instance saw. The instance goes on from it, everything invalidated; the
// shared index, which follows the newer state, starts again, and so does the
// mark of this process's newest commit, which snapshots would otherwise
// claim to see; the replica's catching up then comes as changes of later
// polls.
func (in *Instance) revert() {
	sh := in.s.sh
	sh.index.restart()
	sh.committed.Store(in.snapLast)
	in.indexed, in.snapTID = false, in.snapLast
	in.polledTID, in.ownTIDs, in.prefetched = in.snapLast, nil, nil
	sh.pin(in, in.snapLast)
}
