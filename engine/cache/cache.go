// Package cache is the process-wide pickle cache: one per database per
// process, shared by every instance and thread. It maps (oid, tid) to the
// state that transaction wrote, so an entry is never wrong, only possibly
// not the revision a snapshot needs; which tid a snapshot needs is the
// engine's business (its index of current tids).
//
// The cache is split into shards, each with its own lock, so readers on
// different objects never wait for each other. Each shard evicts by
// segmented LRU: new entries go to a probation segment, an entry read again
// moves to a protected segment (80% of the shard), and eviction takes from
// probation first. A scan through many objects read once therefore only
// churns probation, and the objects read repeatedly stay.
package cache

import (
	"bytes"
	"compress/zlib"
	"io"
	"sync"
	"sync/atomic"
)

// Options configure a cache, with RelStorage's meanings.
type Options struct {
	// Bytes is the limit on what the cache holds (cache-local-mb x 1,000,000,
	// as RelStorage counts a megabyte here). 0 disables the cache.
	Bytes int64
	// ObjectMax is the largest state cached (cache-local-object-max), as
	// stored: after compression.
	ObjectMax int
	// Compression is "none" or "zlib" (cache-local-compression).
	Compression string
}

const (
	shardCount = 64
	// entryOverhead is what an entry costs beyond its state: map slot, list
	// links, key.
	entryOverhead = 96
	// protectedShare is the part of a shard the protected segment may fill, in percent.
	protectedShare = 80
	// compressMin is the smallest state worth compressing, as RelStorage's rule.
	compressMin = 100
)

// zlibPrefix marks a zlib-compressed state, as zc.zlibstorage and RelStorage mark it.
var zlibPrefix = []byte(".z")

type key struct{ oid, tid uint64 }

type entry struct {
	key        key
	data       []byte // the state, or ".z" + its zlib compression when compressed
	prev, next *entry
	protected  bool
	compressed bool
}

// list is a doubly linked list of entries with a sentinel; front is most recent.
type list struct {
	root  entry
	bytes int64
}

func (l *list) init() { l.root.next, l.root.prev = &l.root, &l.root }

func (l *list) pushFront(e *entry) {
	e.prev, e.next = &l.root, l.root.next
	l.root.next.prev = e
	l.root.next = e
	l.bytes += cost(e)
}

func (l *list) remove(e *entry) {
	e.prev.next, e.next.prev = e.next, e.prev
	e.prev, e.next = nil, nil
	l.bytes -= cost(e)
}

// back returns the least recently used entry, nil if empty.
func (l *list) back() *entry {
	if l.root.prev == &l.root {
		return nil
	}
	return l.root.prev
}

func cost(e *entry) int64 { return int64(len(e.data)) + entryOverhead }

type shard struct {
	mu        sync.Mutex
	entries   map[key]*entry
	probation list
	protected list
}

// Cache is safe for concurrent use.
type Cache struct {
	shards        [shardCount]shard
	shardLimit    int64
	protectLimit  int64
	objectMax     int
	compress      bool
	hits, misses  atomic.Int64
	stores        atomic.Int64
	evictions     atomic.Int64
	entries       atomic.Int64
	bytesReported atomic.Int64
}

// New returns an empty cache.
func New(o Options) *Cache {
	c := &Cache{objectMax: o.ObjectMax, compress: o.Compression == "zlib"}
	c.shardLimit = o.Bytes / shardCount
	c.protectLimit = c.shardLimit * protectedShare / 100
	for i := range c.shards {
		s := &c.shards[i]
		s.entries = map[key]*entry{}
		s.probation.init()
		s.protected.init()
	}
	return c
}

// Enabled tells whether the cache holds anything at all.
func (c *Cache) Enabled() bool { return c != nil && c.shardLimit > 0 }

func (c *Cache) shard(oid uint64) *shard {
	// OIDs are dense; mix them so neighbours spread over shards.
	h := oid * 0x9E3779B97F4A7C15
	return &c.shards[h>>58]
}

// Get returns the state tid wrote for oid, if cached. The slice may be the
// cache's own: callers read it and never change it (a hit then costs no
// copy; the C ABI copies it out anyway).
func (c *Cache) Get(oid, tid uint64) ([]byte, bool) {
	state, ok := c.TryGet(oid, tid)
	if !ok && c.Enabled() {
		c.misses.Add(1)
	}
	return state, ok
}

// TryGet is Get for a caller that will ask again if it misses: a miss is
// not counted.
func (c *Cache) TryGet(oid, tid uint64) ([]byte, bool) {
	if !c.Enabled() {
		return nil, false
	}
	s := c.shard(oid)
	s.mu.Lock()
	e, ok := s.entries[key{oid, tid}]
	if !ok {
		s.mu.Unlock()
		return nil, false
	}
	c.touch(s, e)
	data, compressed := e.data, e.compressed
	s.mu.Unlock()
	c.hits.Add(1)
	if !compressed {
		return data, true
	}
	return decompress(data)
}

// Has tells whether the state tid wrote for oid is cached, without copying
// it; it is neither a hit nor a use of the entry (a prefetch asks it).
func (c *Cache) Has(oid, tid uint64) bool {
	if !c.Enabled() {
		return false
	}
	s := c.shard(oid)
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.entries[key{oid, tid}]
	return ok
}

// touch records a hit: a probation entry moves to protected (demoting
// protected's least recent entries to probation when it is full); a
// protected one moves to the front.
func (c *Cache) touch(s *shard, e *entry) {
	if e.protected {
		s.protected.remove(e)
		s.protected.pushFront(e)
		return
	}
	s.probation.remove(e)
	e.protected = true
	s.protected.pushFront(e)
	for s.protected.bytes > c.protectLimit {
		old := s.protected.back()
		if old == e {
			break
		}
		s.protected.remove(old)
		old.protected = false
		s.probation.pushFront(old)
	}
}

// Put caches state as what tid wrote for oid. States over the object limit
// are not cached. The cache keeps its own copy.
func (c *Cache) Put(oid, tid uint64, state []byte) {
	c.add(oid, tid, state, false)
}

// PutOwned is Put of a state the caller gives to the cache: nothing else
// changes it (a revision just read from the database, which readers of the
// cache share as they share every entry), so it is kept without a copy.
func (c *Cache) PutOwned(oid, tid uint64, state []byte) {
	c.add(oid, tid, state, true)
}

// add is Put and PutOwned: the state compressed when that pays, else kept
// as it is when owned, else copied.
func (c *Cache) add(oid, tid uint64, state []byte, owned bool) {
	if !c.Enabled() || state == nil {
		return
	}
	data, compressed := c.compressed(state)
	if !compressed {
		data = state
		if !owned {
			data = bytes.Clone(state)
		}
	}
	c.put(oid, tid, data, compressed)
}

func (c *Cache) put(oid, tid uint64, data []byte, compressed bool) {
	if len(data) > c.objectMax || int64(len(data))+entryOverhead > c.shardLimit {
		return
	}
	c.stores.Add(1)
	s := c.shard(oid)
	s.mu.Lock()
	defer s.mu.Unlock()
	k := key{oid, tid}
	if _, ok := s.entries[k]; ok {
		return // the same (oid, tid) is the same state
	}
	e := &entry{key: k, data: data, compressed: compressed}
	s.entries[k] = e
	s.probation.pushFront(e)
	c.entries.Add(1)
	c.bytesReported.Add(cost(e))
	for s.probation.bytes+s.protected.bytes > c.shardLimit {
		victim := s.probation.back()
		if victim == nil {
			victim = s.protected.back()
		}
		c.drop(s, victim)
		c.evictions.Add(1)
	}
}

func (c *Cache) drop(s *shard, e *entry) {
	if e.protected {
		s.protected.remove(e)
	} else {
		s.probation.remove(e)
	}
	delete(s.entries, e.key)
	c.entries.Add(-1)
	c.bytesReported.Add(-cost(e))
}

// NoteMiss counts a load the cache could not serve without being asked
// (the engine did not know which revision the snapshot needs).
func (c *Cache) NoteMiss() {
	if c.Enabled() {
		c.misses.Add(1)
	}
}

// Entry is one cached revision as the cache holds it, for the cache file.
type Entry struct {
	OID, TID   uint64
	Data       []byte // the state, or ".z" + its zlib compression when Compressed
	Compressed bool
}

// Entries lists what the cache holds, the most valuable first: each shard's
// protected segment, then its probation segment, most recent first, the
// shards interleaved. The data are the cache's own (never modified, never
// reused: read only).
func (c *Cache) Entries() []Entry {
	if !c.Enabled() {
		return nil
	}
	per := make([][]Entry, shardCount)
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		out := make([]Entry, 0, len(s.entries))
		for _, l := range []*list{&s.protected, &s.probation} {
			for e := l.root.next; e != &l.root; e = e.next {
				out = append(out, Entry{OID: e.key.oid, TID: e.key.tid, Data: e.data, Compressed: e.compressed})
			}
		}
		s.mu.Unlock()
		per[i] = out
	}
	var all []Entry
	for k := 0; ; k++ {
		added := false
		for _, out := range per {
			if k < len(out) {
				all = append(all, out[k])
				added = true
			}
		}
		if !added {
			return all
		}
	}
}

// PutEntry caches an entry as Entries gave it (read back from the cache file).
func (c *Cache) PutEntry(e Entry) {
	if !c.Enabled() {
		return
	}
	if !e.Compressed {
		c.Put(e.OID, e.TID, e.Data)
		return
	}
	c.put(e.OID, e.TID, bytes.Clone(e.Data), true)
}

// Invalidate removes every cached revision of oid (pack and undo change
// what they are).
func (c *Cache) Invalidate(oid uint64) {
	if !c.Enabled() {
		return
	}
	s := c.shard(oid)
	s.mu.Lock()
	defer s.mu.Unlock()
	for k, e := range s.entries {
		if k.oid == oid {
			c.drop(s, e)
		}
	}
}

// Clear empties the cache (for a truly cold measurement, or zap).
func (c *Cache) Clear() {
	if !c.Enabled() {
		return
	}
	for i := range c.shards {
		s := &c.shards[i]
		s.mu.Lock()
		for _, e := range s.entries {
			c.drop(s, e)
		}
		s.mu.Unlock()
	}
}

// Stats are the cache's counters since it was made.
type Stats struct {
	Hits      int64 `json:"hits"`
	Misses    int64 `json:"misses"`
	Stores    int64 `json:"stores"`
	Evictions int64 `json:"evictions"`
	Entries   int64 `json:"entries"`
	Bytes     int64 `json:"bytes"`
	Limit     int64 `json:"limit"`
}

func (c *Cache) Stats() Stats {
	if c == nil {
		return Stats{}
	}
	return Stats{Hits: c.hits.Load(), Misses: c.misses.Load(), Stores: c.stores.Load(),
		Evictions: c.evictions.Load(), Entries: c.entries.Load(), Bytes: c.bytesReported.Load(),
		Limit: c.shardLimit * shardCount}
}

// compressed compresses a state by RelStorage's rule: only past 100 bytes,
// never one already marked compressed (zc.zlibstorage's states), and only
// when it gets smaller; ok is false when the state is to be kept as it is.
func (c *Cache) compressed(state []byte) (data []byte, ok bool) {
	if c.compress && len(state) > compressMin && !bytes.HasPrefix(state, zlibPrefix) {
		var b bytes.Buffer
		b.Write(zlibPrefix)
		w := zlib.NewWriter(&b)
		w.Write(state)
		w.Close()
		if b.Len() < len(state) {
			return b.Bytes(), true
		}
	}
	return nil, false
}

// decompress undoes compressed; ok is false when the data cannot be read
// (treated as a miss).
func decompress(data []byte) ([]byte, bool) {
	r, err := zlib.NewReader(bytes.NewReader(data[len(zlibPrefix):]))
	if err != nil {
		return nil, false
	}
	out, err := io.ReadAll(r)
	if err != nil {
		return nil, false
	}
	return out, true
}
