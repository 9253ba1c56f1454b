package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/cache"
)

// shared is what every Storage opened on one database in this process
// shares: the pickle cache and the MVCC index that tells which of its
// entries a snapshot may use.
type shared struct {
	key   string
	refs  int
	cache *cache.Cache
	index *index
	file  string  // the cache file, "" without cache-local-dir
	trace *tracer // nil unless ZEO_CACHE_TRACE asks for a trace file
	limit int64   // bytes the cache file may hold

	committed atomic.Uint64 // the newest tid committed through this process
	// packs counts the packs in this process that removed something: the
	// history-free states an instance remembers (Instance.recent) from before
	// one are dropped, as the cache is cleared.
	packs atomic.Uint64

	pinMu sync.Mutex
	pins  map[*Instance]struct{} // polled instances: the index keeps what they have not polled
}

func (sh *shared) pin(in *Instance, tid uint64) {
	if in.pinned.Swap(tid+1) == 0 { // 0 is "not pinned"
		sh.pinMu.Lock()
		sh.pins[in] = struct{}{}
		sh.pinMu.Unlock()
	}
}

func (sh *shared) unpin(in *Instance) {
	if in.pinned.Swap(0) != 0 {
		sh.pinMu.Lock()
		delete(sh.pins, in)
		sh.pinMu.Unlock()
	}
}

// sawCommit records that tid finished committing.
func (sh *shared) sawCommit(tid uint64) { storeMax(&sh.committed, tid) }

// compact lets the index drop what no polled instance needs any more.
func (sh *shared) compact() {
	if !sh.index.wantsCompaction() {
		return
	}
	oldest := uint64(1<<64 - 1)
	sh.pinMu.Lock()
	for in := range sh.pins {
		if t := in.pinned.Load(); t != 0 {
			oldest = min(oldest, t-1)
		}
	}
	sh.pinMu.Unlock()
	sh.index.compact(oldest)
}

var registry = struct {
	sync.Mutex
	m map[string]*shared
}{m: map[string]*shared{}}

func sharedKey(d adapter.Dialect, keepHistory bool) string {
	return fmt.Sprintf("%s|history=%v", d.Describe(), keepHistory)
}

// acquireShared returns the database's shared state, creating it (and
// reading the cache file) for the first storage. The warnings say what was
// wrong with the cache file, if anything.
func acquireShared(ctx context.Context, d adapter.Dialect, o Options) (*shared, []string) {
	key := sharedKey(d, o.KeepHistory)
	registry.Lock()
	defer registry.Unlock()
	if sh, ok := registry.m[key]; ok {
		sh.refs++
		return sh, nil
	}
	sh := &shared{key: key, refs: 1, pins: map[*Instance]struct{}{}, index: newIndex(o.CacheDeltaSizeLimit),
		cache: cache.New(cache.Options{Bytes: int64(o.CacheLocalMB * 1e6), ObjectMax: o.CacheLocalObjectMax,
			Compression: o.CacheLocalCompression})}
	var warnings []string
	sum := sha256.Sum256([]byte(key))
	if o.CacheLocalDir != "" && o.CacheTrace != "" {
		var err error
		if err = os.MkdirAll(o.CacheLocalDir, 0o700); err == nil {
			sh.trace, err = openTracer(o.CacheLocalDir, hex.EncodeToString(sum[:8]), o.CacheTrace)
		}
		if err != nil {
			warnings = append(warnings, fmt.Sprintf("ZEO_CACHE_TRACE is set, but no trace is written: %v", err))
		}
	}
	if o.CacheLocalDir != "" && sh.cache.Enabled() {
		sh.file = filepath.Join(o.CacheLocalDir, "gorelstorage-"+hex.EncodeToString(sum[:8])+".cache")
		sh.limit = int64(o.CacheLocalMB * 1e6)
		if err := os.MkdirAll(o.CacheLocalDir, 0o700); err != nil {
			warnings = append(warnings, fmt.Sprintf("cache-local-dir %s cannot be created, the cache will not be saved: %v", o.CacheLocalDir, err))
			sh.file = ""
		} else if w := sh.loadFile(ctx, d, o.CacheDeltaSizeLimit); w != "" {
			warnings = append(warnings, w)
		}
	}
	registry.m[key] = sh
	return sh, warnings
}

// release drops one storage's reference; the last one saves the cache file
// and closes the trace.
func (sh *shared) release() error {
	registry.Lock()
	defer registry.Unlock()
	sh.refs--
	if sh.refs > 0 {
		return nil
	}
	delete(registry.m, sh.key)
	traceErr := sh.trace.close()
	if sh.file != "" {
		if _, err := cache.WriteFile(sh.file, sh.currentRecords(), sh.limit); err != nil {
			return Wrap(KindStorage, err, "save the cache file %s", sh.file)
		}
	}
	if traceErr != nil {
		return Wrap(KindStorage, traceErr, "close")
	}
	return nil
}

// currentRecords are the cached revisions that are their object's current
// revision at the index's head: what the next process can use.
func (sh *shared) currentRecords() []cache.Record {
	head, epoch, _ := sh.index.position()
	var out []cache.Record
	for _, e := range sh.cache.Entries() {
		if tid, ok := sh.index.lookup(epoch, head, e.OID); ok && tid == e.TID {
			out = append(out, cache.Record{Entry: e, Checkpoint: head})
		}
	}
	return out
}

// loadFile reads the cache file and keeps the entries whose object has not
// changed since they were saved; it returns a warning when the file cannot
// be used.
func (sh *shared) loadFile(ctx context.Context, d adapter.Dialect, limit int) string {
	recs, err := cache.ReadFile(sh.file)
	if err != nil {
		return fmt.Sprintf("ignoring the cache file %s (it will be rewritten at close): %v", sh.file, err)
	}
	if len(recs) == 0 {
		return ""
	}
	oldest, newest := recs[0].Checkpoint, recs[0].Checkpoint
	for _, r := range recs {
		oldest, newest = min(oldest, r.Checkpoint), max(newest, r.Checkpoint)
	}
	c, err := d.OpenLoad(ctx)
	if err != nil {
		return fmt.Sprintf("ignoring the cache file %s: cannot check it against the database: %v", sh.file, err)
	}
	defer c.Close()
	if err := c.Begin(ctx); err != nil {
		return fmt.Sprintf("ignoring the cache file %s: cannot check it against the database: %v", sh.file, err)
	}
	defer c.End()
	last, err := c.LastTID(ctx)
	var changes []adapter.Change
	if err == nil && last >= newest {
		changes, err = c.Changes(ctx, oldest, last, limit+1)
	}
	switch {
	case err != nil:
		return fmt.Sprintf("ignoring the cache file %s: cannot check it against the database: %v", sh.file, err)
	case last < newest:
		return fmt.Sprintf("ignoring the cache file %s: it is newer than the database (tid %d > %d): was the database replaced?", sh.file, newest, last)
	case len(changes) > limit:
		return fmt.Sprintf("ignoring the cache file %s: more than cache-delta-size-limit (%d) objects changed since it was written", sh.file, limit)
	}
	changed := make(map[uint64]uint64, len(changes))
	for _, ch := range changes {
		changed[ch.OID] = max(changed[ch.OID], ch.TID)
	}
	current := make(map[uint64]uint64, len(recs))
	// The file lists the most valuable first; the last entry put is the most recent.
	for _, r := range slices.Backward(recs) {
		if changed[r.OID] > r.Checkpoint {
			continue
		}
		current[r.OID] = r.TID
		sh.cache.PutEntry(r.Entry)
	}
	sh.index.seed(last, current)
	return ""
}
