package cache

import (
	"bytes"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
)

func state(oid uint64, size int) []byte {
	b := bytes.Repeat([]byte{byte(oid)}, size)
	copy(b, fmt.Sprintf("oid %d:", oid))
	return b
}

func TestRevisionsAreKeptApartByTid(t *testing.T) {
	c := New(Options{Bytes: 10 << 20, ObjectMax: 16384})
	c.Put(1, 10, []byte("first"))
	c.Put(1, 20, []byte("second"))
	got, ok := c.Get(1, 10)
	require.True(t, ok)
	require.Equal(t, []byte("first"), got)
	got, ok = c.Get(1, 20)
	require.True(t, ok)
	require.Equal(t, []byte("second"), got)
	_, ok = c.Get(1, 30)
	require.False(t, ok, "a tid never stored is a miss")

	c.Invalidate(1)
	_, ok = c.Get(1, 10)
	require.False(t, ok)
	_, ok = c.Get(1, 20)
	require.False(t, ok)
	s := c.Stats()
	require.Equal(t, int64(2), s.Hits)
	require.Equal(t, int64(3), s.Misses)
	require.Equal(t, int64(0), s.Entries)
	require.Equal(t, int64(0), s.Bytes)
}

func TestTheByteLimitHolds(t *testing.T) {
	limit := int64(1 << 20)
	c := New(Options{Bytes: limit, ObjectMax: 16384})
	for oid := range uint64(20000) {
		c.Put(oid, 1, state(oid, 300))
		require.LessOrEqual(t, c.Stats().Bytes, limit)
	}
	s := c.Stats()
	require.Greater(t, s.Evictions, int64(0))
	require.Greater(t, s.Bytes, limit*9/10, "the cache fills up to its limit")
	require.Equal(t, 20000-s.Evictions, s.Entries)
}

func TestObjectsOverTheSizeLimitAreNotCached(t *testing.T) {
	c := New(Options{Bytes: 10 << 20, ObjectMax: 1000})
	c.Put(1, 1, state(1, 1000))
	c.Put(2, 1, state(2, 1001))
	_, ok := c.Get(1, 1)
	require.True(t, ok)
	_, ok = c.Get(2, 1)
	require.False(t, ok)

	// The limit applies to what is stored: a compressible state that fits once compressed is kept.
	z := New(Options{Bytes: 10 << 20, ObjectMax: 1000, Compression: "zlib"})
	z.Put(3, 1, bytes.Repeat([]byte("a"), 5000))
	got, ok := z.Get(3, 1)
	require.True(t, ok)
	require.Equal(t, bytes.Repeat([]byte("a"), 5000), got)
}

func TestCompressionRoundTripsAndSavesBytes(t *testing.T) {
	plain := New(Options{Bytes: 10 << 20, ObjectMax: 1 << 20})
	z := New(Options{Bytes: 10 << 20, ObjectMax: 1 << 20, Compression: "zlib"})
	compressible := bytes.Repeat([]byte("persistent mapping "), 100)
	small := []byte("tiny state, not worth compressing")
	already := append([]byte(".z"), bytes.Repeat([]byte{1}, 500)...) // zc.zlibstorage's marker
	for _, c := range []*Cache{plain, z} {
		c.Put(1, 1, compressible)
		c.Put(2, 1, small)
		c.Put(3, 1, already)
		// A state read from the database is given to the cache: the same rules apply.
		c.PutOwned(11, 1, bytes.Clone(compressible))
		c.PutOwned(12, 1, bytes.Clone(small))
		c.PutOwned(13, 1, bytes.Clone(already))
		for oid, want := range map[uint64][]byte{1: compressible, 2: small, 3: already,
			11: compressible, 12: small, 13: already} {
			got, ok := c.Get(oid, 1)
			require.True(t, ok)
			require.Equal(t, want, got, "oid %d comes back exactly as stored", oid)
		}
	}
	require.Less(t, z.Stats().Bytes, plain.Stats().Bytes-int64(len(compressible))/2)
	e := z.shard(1).entries[key{1, 1}]
	require.True(t, e.compressed)
	require.True(t, bytes.HasPrefix(e.data, zlibPrefix), "RelStorage's marker")
	require.False(t, z.shard(3).entries[key{3, 1}].compressed, "never compressed twice")
}

// Put keeps its own copy: the caller may reuse its buffer.
func TestPutCopiesTheState(t *testing.T) {
	c := New(Options{Bytes: 10 << 20, ObjectMax: 16384})
	buf := []byte("the state as stored")
	c.Put(1, 1, buf)
	copy(buf, "something else entirely")
	got, ok := c.Get(1, 1)
	require.True(t, ok)
	require.Equal(t, []byte("the state as stored"), got)
}

// Objects read again and again survive a scan through many objects read once.
func TestHotObjectsSurviveAScan(t *testing.T) {
	c := New(Options{Bytes: 4 << 20, ObjectMax: 16384})
	const hot = 2000 // about 0.8 MB with overhead
	for oid := range uint64(hot) {
		c.Put(oid, 1, state(oid, 300))
		for range 2 {
			_, ok := c.Get(oid, 1)
			require.True(t, ok)
		}
	}
	for oid := uint64(1_000_000); oid < 1_100_000; oid++ { // 40 MB read once: ten times the cache
		c.Put(oid, 1, state(oid, 300))
	}
	kept := 0
	for oid := range uint64(hot) {
		if _, ok := c.Get(oid, 1); ok {
			kept++
		}
	}
	require.Equal(t, hot, kept, "every hot object is still cached")
}

func TestClearEmptiesEverything(t *testing.T) {
	c := New(Options{Bytes: 10 << 20, ObjectMax: 16384})
	for oid := range uint64(1000) {
		c.Put(oid, 5, state(oid, 100))
	}
	c.Clear()
	require.Equal(t, int64(0), c.Stats().Entries)
	require.Equal(t, int64(0), c.Stats().Bytes)
	_, ok := c.Get(7, 5)
	require.False(t, ok)
}

func TestDisabledCacheHoldsNothing(t *testing.T) {
	c := New(Options{Bytes: 0, ObjectMax: 16384})
	c.Put(1, 1, []byte("x"))
	_, ok := c.Get(1, 1)
	require.False(t, ok)
	var none *Cache
	require.False(t, none.Enabled())
	require.Equal(t, Stats{}, none.Stats())
}

func TestConcurrentReadersAndWriters(t *testing.T) {
	c := New(Options{Bytes: 2 << 20, ObjectMax: 16384, Compression: "zlib"})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 20000 {
				oid := uint64((i*7 + w) % 5000)
				tid := uint64(i % 3)
				if got, ok := c.Get(oid, tid); ok {
					if !bytes.Equal(got, state(oid*10+tid, 400)) {
						t.Errorf("oid %d tid %d: wrong state", oid, tid)
						return
					}
					continue
				}
				c.Put(oid, tid, state(oid*10+tid, 400))
			}
		}()
	}
	wg.Wait()
	s := c.Stats()
	require.LessOrEqual(t, s.Bytes, int64(2<<20))
	require.Greater(t, s.Hits, int64(0))
}

func BenchmarkGetHit(b *testing.B) {
	c := New(Options{Bytes: 100 << 20, ObjectMax: 16384})
	for oid := range uint64(10000) {
		c.Put(oid, 1, state(oid, 300))
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		oid := uint64(0)
		for pb.Next() {
			c.Get(oid%10000, 1)
			oid++
		}
	})
}
