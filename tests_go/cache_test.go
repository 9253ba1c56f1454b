package tests_go

import (
	"fmt"
	"math/rand"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
)

// observation is one load a reader made: what its snapshot at tid snap
// returned for oid.
type observation struct {
	oid, snap, tid uint64
	state          string
	reader         int
}

// history is what the writers committed: per oid, its revisions in tid order.
type history struct {
	mu   sync.Mutex
	revs map[uint64][]revision
}

type revision struct {
	tid   uint64
	state string
}

func (h *history) add(tid uint64, states map[uint64]string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for oid, state := range states {
		h.revs[oid] = append(h.revs[oid], revision{tid, state})
	}
}

// at is the revision of oid a snapshot at snap must see.
func (h *history) at(oid, snap uint64) (revision, bool) {
	revs := h.revs[oid]
	sort.Slice(revs, func(i, j int) bool { return revs[i].tid < revs[j].tid })
	i := sort.Search(len(revs), func(i int) bool { return revs[i].tid > snap })
	if i == 0 {
		return revision{}, false
	}
	return revs[i-1], true
}

// tryCommit commits states based on serials; false when it lost a conflict
// or a lock (the transaction is aborted).
func tryCommit(in *engine.Instance, serials map[uint64]uint64, states map[uint64]string) (uint64, bool, error) {
	if err := in.Begin(engine.TxnMeta{User: []byte("w")}, 0, false); err != nil {
		return 0, false, err
	}
	defer in.Abort()
	for oid, state := range states {
		if err := in.Store(oid, serials[oid], []byte(state)); err != nil {
			return 0, false, err
		}
	}
	conflicts, err := in.Vote(ctx)
	if k := engine.KindOf(err); k == engine.KindConflict || k == engine.KindLockTimeout || k == engine.KindReadConflict {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	if len(conflicts) > 0 {
		return 0, false, nil
	}
	tid, err := in.FinishLock(ctx)
	if k := engine.KindOf(err); k == engine.KindLockTimeout || k == engine.KindConflict {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	return tid, true, in.FinishCommit(ctx)
}

// The shared cache must never give an instance a state its snapshot cannot
// see: writers commit random changes through several instances while readers
// in several instances of two storages on the same database (one shared
// cache) hold snapshots and load; every load is checked afterwards against
// the committed history: the newest revision at or before the reader's
// snapshot, no older (stale) and no newer (future). Run with a roomy cache,
// and with a tiny cache and delta limit so eviction, compaction and
// invalidate-all all happen.
func TestSharedCacheNeverServesAStateOutsideTheSnapshot(t *testing.T) {
	for _, variant := range []struct {
		name  string
		mb    float64
		delta int
	}{{"roomy", 10, 100000}, {"tiny", 0.02, 8}} {
		t.Run(variant.name, func(t *testing.T) {
			eachDatabase(t, func(t *testing.T, o engine.Options) {
				o.CacheLocalMB, o.CacheDeltaSizeLimit = variant.mb, variant.delta
				checkSnapshotsUnderLoad(t, o)
			})
		})
	}
}

func checkSnapshotsUnderLoad(t *testing.T, o engine.Options) {
	const (
		objects      = 40
		writers      = 3
		readers      = 4
		commitsEach  = 25
		loadsPerPoll = 12
		// minReaderRounds keeps readers going even when the writers finish first.
		minReaderRounds = 20
	)
	s1, s2 := open(t, o), open(t, o)
	h := &history{revs: map[uint64][]revision{}}
	initial := map[uint64]string{}
	for oid := uint64(0); oid < objects; oid++ {
		initial[oid] = fmt.Sprintf("o%d-init", oid)
	}
	setup := instance(t, s1)
	h.add(commit(t, setup, nil, initial), initial)

	var (
		wg       sync.WaitGroup
		errMu    sync.Mutex
		failures []error
		obsMu    sync.Mutex
		seen     []observation
		stop     = make(chan struct{})
	)
	fail := func(err error) {
		errMu.Lock()
		failures = append(failures, err)
		errMu.Unlock()
	}
	for w := 0; w < writers; w++ {
		in := instance(t, []*engine.Storage{s1, s2}[w%2])
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(w)))
			for n := 0; n < commitsEach; {
				if _, _, err := in.Poll(ctx); err != nil {
					fail(err)
					return
				}
				serials, states := map[uint64]uint64{}, map[uint64]string{}
				for k := 1 + rng.Intn(4); k > 0; k-- {
					oid := uint64(rng.Intn(objects))
					_, tid, err := in.Load(ctx, oid)
					if err != nil {
						fail(err)
						return
					}
					serials[oid] = tid
					states[oid] = fmt.Sprintf("o%d-w%d-%d", oid, w, n)
				}
				tid, ok, err := tryCommit(in, serials, states)
				if err != nil {
					fail(err)
					return
				}
				if ok {
					h.add(tid, states)
					n++
				}
				time.Sleep(time.Duration(rng.Intn(3)) * time.Millisecond)
			}
		}(w)
	}
	for r := 0; r < readers; r++ {
		in := instance(t, []*engine.Storage{s1, s2}[r%2])
		wg.Add(1)
		go func(r int) {
			defer wg.Done()
			rng := rand.New(rand.NewSource(int64(100 + r)))
			for round := 0; ; round++ {
				select {
				case <-stop:
					if round >= minReaderRounds {
						return
					}
				default:
				}
				if _, _, err := in.Poll(ctx); err != nil {
					fail(err)
					return
				}
				snap, err := in.LastTransaction(ctx)
				if err != nil {
					fail(err)
					return
				}
				if rng.Intn(3) == 0 {
					oids := make([]uint64, 8)
					for i := range oids {
						oids[i] = uint64(rng.Intn(objects))
					}
					if err := in.Prefetch(ctx, oids); err != nil {
						fail(err)
						return
					}
				}
				for i := 0; i < loadsPerPoll; i++ {
					oid := uint64(rng.Intn(objects))
					state, tid, err := in.Load(ctx, oid)
					if err != nil {
						fail(err)
						return
					}
					obsMu.Lock()
					seen = append(seen, observation{oid: oid, snap: snap, tid: tid, state: string(state), reader: r})
					obsMu.Unlock()
					if i%4 == 3 {
						time.Sleep(time.Millisecond) // let commits land while the snapshot is held
					}
				}
			}
		}(r)
	}
	// Readers run until the writers are done.
	go func() {
		for {
			h.mu.Lock()
			n := 0
			for _, revs := range h.revs {
				n += len(revs)
			}
			h.mu.Unlock()
			errMu.Lock()
			failed := len(failures) > 0
			errMu.Unlock()
			if failed || n >= objects+writers*commitsEach {
				close(stop)
				return
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	wg.Wait()
	require.Empty(t, failures)

	committed := 0
	for _, revs := range h.revs {
		committed += len(revs)
	}
	require.GreaterOrEqual(t, committed, objects+writers*commitsEach, "every writer committed")
	require.NotEmpty(t, seen)
	for _, ob := range seen {
		want, ok := h.at(ob.oid, ob.snap)
		require.True(t, ok, "reader %d saw oid %d at tid %d, before it existed", ob.reader, ob.oid, ob.snap)
		require.Equal(t, want, revision{ob.tid, ob.state},
			"reader %d, snapshot at tid %d, oid %d: want the revision of tid %d, got tid %d (%s)",
			ob.reader, ob.snap, ob.oid, want.tid, ob.tid, map[bool]string{true: "future", false: "stale"}[ob.tid > want.tid])
	}
	stats := s1.CacheStats()
	t.Logf("%d loads checked over %d commits; cache: %+v", len(seen), committed, stats)
	if o.CacheLocalMB >= 1 {
		require.Positive(t, stats.Hits, "the shared cache served loads")
	}
}
