// Package engine is GoRelStorage as a Go library: a Storage is one database
// shared by a process, an Instance is one ZODB Connection's view of it (its
// own snapshot and its own transaction). Python reaches it through capi; Go
// programs use it directly.
package engine

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/cache"
)

// Storage is a process-wide handle on one database.
type Storage struct {
	opts    Options
	dialect adapter.Dialect

	oidMu     sync.Mutex
	oids      []uint64  // the rest of the OIDs allocated, ascending
	oidBlocks int       // blocks of 16 asked for at the last refill
	oidRefill time.Time // when

	newestTID    atomic.Uint64 // the newest tid this process has committed or polled
	maxIssuedOID atomic.Uint64 // the highest OID the database issued to this process

	sh       *shared
	blobs    *blobs // nil without blob-dir
	packing  packProgress
	warnMu   sync.Mutex
	warnings []string // not yet reported

	mu        sync.Mutex  // guards instances, and closed's change
	closed    atomic.Bool // read without mu by every call's check
	instances map[*Instance]struct{}
}

// Open opens the database named by opts.Adapter.
func Open(ctx context.Context, opts Options) (*Storage, error) {
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if (opts.ReplicaConf != "" || opts.ROReplicaConf != "") && opts.Adapter == "sqlite3" {
		return nil, Errorf(KindConfig, "configuration: replica-conf and ro-replica-conf name database servers; "+
			"SQLite is embedded and has none")
	}
	open, ok := adapter.Lookup(opts.Adapter)
	if !ok {
		return nil, Errorf(KindConfig, "configuration: unknown database adapter %q (this build has %v)", opts.Adapter, adapter.Names())
	}
	d, err := open(ctx, adapter.Settings{
		KeepHistory:   opts.KeepHistory,
		CreateSchema:  opts.CreateSchema,
		ReadOnly:      opts.ReadOnly,
		LockTimeout:   opts.LockTimeout(),
		BlobChunkSize: opts.BlobChunkSize,
		Options:       opts.AdapterOptions,
		ReplicaConf:   opts.ReplicaConf, ROReplicaConf: opts.ROReplicaConf,
		ReplicaTimeout: time.Duration(opts.ReplicaTimeout * float64(time.Second)),
	})
	if errors.Is(err, adapter.ErrBadConfig) {
		return nil, &Error{Kind: KindConfig, Msg: "open " + opts.Adapter, Err: err}
	}
	if err != nil {
		return nil, &Error{Kind: KindStorage, Msg: "open " + opts.Adapter, Err: err}
	}
	s := &Storage{opts: opts, dialect: d, instances: map[*Instance]struct{}{}}
	s.sh, s.warnings = acquireShared(ctx, d, opts)
	if s.blobs, err = openBlobs(opts, s.warn); err != nil {
		s.sh.release()
		d.Close()
		return nil, err
	}
	return s, nil
}

// TakeWarnings returns what went wrong without failing (an unusable cache
// file, a cache file that could not be saved) since it was last called.
func (s *Storage) TakeWarnings() []string {
	s.warnMu.Lock()
	defer s.warnMu.Unlock()
	w := s.warnings
	s.warnings = nil
	return w
}

func (s *Storage) warn(msg string) {
	s.warnMu.Lock()
	s.warnings = append(s.warnings, msg)
	s.warnMu.Unlock()
}

// CacheStats are the shared cache's counters (every storage of this
// database in this process shares them).
type CacheStats struct {
	cache.Stats
	DeltaOIDs int `json:"delta_oids"` // changes the MVCC index holds
	DeltaTIDs int `json:"delta_tids"` // transactions the MVCC index holds
}

// CacheStats returns the shared cache's statistics.
func (s *Storage) CacheStats() CacheStats {
	x := s.sh.index
	x.mu.Lock()
	defer x.mu.Unlock()
	return CacheStats{Stats: s.sh.cache.Stats(), DeltaOIDs: x.count, DeltaTIDs: len(x.log)}
}

// ClearCache empties the shared cache: every load after it reaches the
// database until the cache fills again.
func (s *Storage) ClearCache() { s.sh.cache.Clear() }

// Name is the storage's name: the name option, else the database description.
func (s *Storage) Name() string {
	if s.opts.Name != "" {
		return s.opts.Name
	}
	return "GoRelStorage: " + s.dialect.Describe()
}

// SortKey is the same for every instance of one database in every process.
func (s *Storage) SortKey() string { return s.dialect.Describe() }

func (s *Storage) check() error {
	if s.closed.Load() {
		return Errorf(KindClosed, "the storage is closed")
	}
	return nil
}

// OID blocks per allocation: a refill less than oidBurst after the last
// doubles the number of blocks asked for, up to maxOIDBlocks (1024 OIDs;
// RelStorage takes one block of 16 per round trip), a later one halves it.
// Unused OIDs are lost at exit, as RelStorage's are.
const (
	oidBurst     = 100 * time.Millisecond
	maxOIDBlocks = 64
)

// NewOID returns an OID never issued before.
func (s *Storage) NewOID(ctx context.Context) (uint64, error) {
	var oid uint64
	err := s.takeOIDs(ctx, func() { oid, s.oids = s.oids[0], s.oids[1:] })
	return oid, err
}

// TakeOIDs hands the caller every OID the storage holds (allocating more
// when it holds none), ascending, never issued before: Python keeps them and
// answers new_oid without a call.
func (s *Storage) TakeOIDs(ctx context.Context) ([]uint64, error) {
	var oids []uint64
	err := s.takeOIDs(ctx, func() { oids, s.oids = s.oids, nil })
	return oids, err
}

// takeOIDs runs take with s.oidMu held and at least one OID in s.oids.
func (s *Storage) takeOIDs(ctx context.Context, take func()) error {
	if err := s.check(); err != nil {
		return err
	}
	if s.opts.ReadOnly {
		return Errorf(KindReadOnly, "new_oid: the storage is read-only")
	}
	s.oidMu.Lock()
	defer s.oidMu.Unlock()
	if err := s.refillOIDs(ctx); err != nil {
		return err
	}
	take()
	return nil
}

// refillOIDs allocates OIDs when none are left; s.oidMu is held.
func (s *Storage) refillOIDs(ctx context.Context) error {
	if len(s.oids) > 0 {
		return nil
	}
	// A process that allocates fast takes more blocks per round trip
	// (up to maxOIDBlocks); one that allocates now and then, fewer.
	if time.Since(s.oidRefill) < oidBurst {
		s.oidBlocks = min(2*s.oidBlocks, maxOIDBlocks)
	} else {
		s.oidBlocks = max(s.oidBlocks/2, 1)
	}
	oids, err := s.dialect.NewOIDs(ctx, s.oidBlocks)
	s.oidRefill = time.Now()
	if err != nil {
		return classify(err, "new_oid")
	}
	if len(oids) == 0 {
		return Errorf(KindInternal, "new_oid: the database allocated no OIDs")
	}
	s.oids = oids
	if last := oids[len(oids)-1]; last > s.maxIssuedOID.Load() {
		s.maxIssuedOID.Store(last)
	}
	return nil
}

// Size returns the number of current objects and the database size in bytes.
func (s *Storage) Size(ctx context.Context) (int64, int64, error) {
	if err := s.check(); err != nil {
		return 0, 0, err
	}
	n, b, err := s.dialect.Size(ctx)
	return n, b, classify(err, "size")
}

// NewInstance returns a new view for one ZODB Connection.
func (s *Storage) NewInstance() (*Instance, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Load() {
		return nil, Errorf(KindClosed, "the storage is closed")
	}
	in := &Instance{s: s}
	s.instances[in] = struct{}{}
	return in, nil
}

func (s *Storage) forget(in *Instance) {
	s.mu.Lock()
	delete(s.instances, in)
	s.mu.Unlock()
}

// Close releases every instance and the database.
func (s *Storage) Close() error {
	s.mu.Lock()
	if s.closed.Load() {
		s.mu.Unlock()
		return nil
	}
	s.closed.Store(true)
	ins := make([]*Instance, 0, len(s.instances))
	for in := range s.instances {
		ins = append(ins, in)
	}
	s.mu.Unlock()
	for _, in := range ins {
		in.Release()
	}
	if err := s.sh.release(); err != nil {
		s.warn(err.Error())
	}
	s.blobs.close()
	return s.dialect.Close()
}

// sawTID records tid as seen, keeping the maximum.
func (s *Storage) sawTID(tid uint64) { storeMax(&s.newestTID, tid) }

// storeMax raises a to v if v is greater.
func storeMax(a *atomic.Uint64, v uint64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// freshRead runs fn on a short-lived snapshot of the latest state (iteration,
// undo log): these see the newest data whatever the instance's view is.
func (s *Storage) freshRead(ctx context.Context, fn func(adapter.LoadConn) error) error {
	if err := s.check(); err != nil {
		return err
	}
	c, err := s.dialect.OpenLoad(ctx)
	if err != nil {
		return classify(err, "open read connection")
	}
	defer c.Close()
	if err := c.Begin(ctx); err != nil {
		return classify(err, "begin read")
	}
	defer c.End()
	return fn(c)
}

// classify turns a dialect error into an engine error with the right kind.
func classify(err error, what string) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return Wrap(e.Kind, err, "%s", what)
	}
	if errors.Is(err, adapter.ErrLockTimeout) {
		return &Error{Kind: KindLockTimeout, Msg: what, Err: err}
	}
	var rc *adapter.ReadCurrentLockedError
	if errors.As(err, &rc) {
		return &Error{Kind: KindReadConflict, OID: rc.OID, HasOID: true, Msg: what, Err: err}
	}
	if errors.Is(err, adapter.ErrDeadlock) {
		return &Error{Kind: KindConflict, Msg: what, Err: err}
	}
	if errors.Is(err, adapter.ErrDisconnected) || errors.Is(err, adapter.ErrUnreachable) {
		return &Error{Kind: KindDisconnected, Msg: what, Err: err}
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &Error{Kind: KindLockTimeout, Msg: what, Err: err}
	}
	return &Error{Kind: KindStorage, Msg: what, Err: err}
}
