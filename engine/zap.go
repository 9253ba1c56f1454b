package engine

import (
	"context"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// zapping serializes ZapAll: it locks every instance of the storage, in no
// particular order.
var zapping sync.Mutex

// ZapAll empties the database, as RelStorage's zap_all does (zodbconvert
// --clear calls it): every object, transaction, blob and pack row, the OID
// counter started again. With it go this process's copies: the pickle
// cache and its index, the OIDs handed out in advance, and the blob files
// (the cache's, or a shared directory's, whose files are the blobs). The
// schema stays. No transaction may be in progress on this storage; every
// instance's snapshot ends, and the next read sees the empty database.
func (s *Storage) ZapAll(ctx context.Context) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return Errorf(KindReadOnly, "zap_all: the storage is read-only")
	}
	z, ok := s.dialect.(adapter.Zapper)
	if !ok {
		return Errorf(KindUnsupported, "zap_all: the %s adapter cannot empty its database", s.opts.Adapter)
	}
	zapping.Lock()
	defer zapping.Unlock()
	s.mu.Lock()
	ins := make([]*Instance, 0, len(s.instances))
	for in := range s.instances {
		ins = append(ins, in)
	}
	s.mu.Unlock()
	for i, in := range ins {
		in.mu.Lock()
		defer in.mu.Unlock()
		if in.txn != nil {
			return Errorf(KindTransaction, "zap_all: a transaction is in progress on this storage (%d of its connections checked)", i+1)
		}
	}
	// Ended snapshots hold no locks the emptying would wait for.
	for _, in := range ins {
		if in.released {
			continue
		}
		in.dropLoad()
		in.s.sh.unpin(in)
		in.polled, in.polledTID, in.ownTIDs, in.lastCommit = false, 0, nil, 0
		in.recent, in.recentBytes = nil, 0
	}
	err := z.Zap(ctx)
	// Whatever the outcome, what this process kept of the database may be
	// gone from it.
	s.oidMu.Lock()
	s.oids = nil
	s.oidMu.Unlock()
	s.newestTID.Store(0)
	s.maxIssuedOID.Store(0)
	s.sh.committed.Store(0)
	s.sh.index.restart()
	s.sh.cache.Clear()
	if err != nil {
		return classify(err, "zap_all")
	}
	if s.blobs != nil {
		if err := s.blobs.dir.RemoveAll(); err != nil {
			return &Error{Kind: KindStorage, Msg: "zap_all: the database is empty, but its blob files could not all be removed", Err: err}
		}
	}
	return nil
}
