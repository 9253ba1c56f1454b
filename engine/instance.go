// The Instance: one ZODB Connection's view of the database and its
// transaction, and its lifecycle. Its phases live beside it: snapshot.go
// (start, end, poll, sync), load.go (reads), commit.go (the two-phase
// commit) and undo.go.

package engine

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Instance is one ZODB Connection's view of the database. Until it is first
// polled every read sees the latest state; after that it reads through a
// snapshot that Poll advances (and Sync ends), as
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
	recentPacks uint64 // shared.packs when recent was last checked (forgetPacked)
	released    bool
	lockWaits   [2]time.Duration // the last vote's object locks, the last finish's commit lock

	txn *commit
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
