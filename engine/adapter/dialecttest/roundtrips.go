// Package dialecttest holds checks every server dialect's tests run against
// a real database. Only tests import it.
package dialecttest

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
)

// RoundTrips checks, in both history modes, that a commit of 1, 10, 100 and
// 1000 objects (new, changed, or with readCurrent objects) takes
// commitRoundTrips(objects, hp) round trips once a commit of its size has
// prepared what it prepares, a poll, a load (also by an instance that never
// polls, which starts a snapshot for it) and the end of a snapshot 1 each,
// and 1024 new OIDs in a burst at most oidBurstRoundTrips. adapterName is a
// dialect registered to call count once per round trip; zap empties the
// database before each mode.
func RoundTrips(t *testing.T, adapterName string, options any, zap func(t *testing.T), count func() int64,
	commitRoundTrips func(objects int, hp bool) int64, oidBurstRoundTrips int64) {
	ctx := context.Background()
	counted := func(fn func()) int64 {
		before := count()
		fn()
		return count() - before
	}
	for _, hp := range []bool{true, false} {
		t.Run(map[bool]string{true: "hp", false: "hf"}[hp], func(t *testing.T) {
			zap(t)
			raw, err := json.Marshal(options)
			require.NoError(t, err)
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions, o.KeepHistory = adapterName, raw, hp
			s, err := engine.Open(ctx, o)
			require.NoError(t, err)
			defer s.Close()
			in, err := s.NewInstance()
			require.NoError(t, err)
			defer in.Release()

			serials := map[uint64]uint64{}
			commit := func(oids []uint64, readCurrent ...uint64) {
				require.NoError(t, in.Begin(engine.TxnMeta{User: []byte("u")}, 0, false))
				for _, oid := range readCurrent {
					require.NoError(t, in.CheckCurrent(oid, serials[oid]))
				}
				for _, oid := range oids {
					require.NoError(t, in.Store(oid, serials[oid], []byte(fmt.Sprintf("state of %d", oid))))
				}
				conflicts, err := in.Vote(ctx)
				require.NoError(t, err)
				require.Empty(t, conflicts)
				tid, err := in.FinishLock(ctx)
				require.NoError(t, err)
				require.NoError(t, in.FinishCommit(ctx))
				for _, oid := range oids {
					serials[oid] = tid
				}
			}
			newOIDs := func(n int) []uint64 {
				out := make([]uint64, n)
				for i := range out {
					out[i], err = s.NewOID(ctx)
					require.NoError(t, err)
				}
				return out
			}
			// in never polls: a snapshot's end could then reach the server
			// during a counted commit (see the end of snapshot below).
			// Warm up: connections open and statements are prepared on first use.
			warm := newOIDs(3)
			commit(warm)
			commit(warm)
			commit(warm[2:], warm[:2]...)

			for _, n := range []int{1, 10, 100, 1000} {
				commit(newOIDs(n)) // prepares the statements of its size
				oids := newOIDs(n)
				want := commitRoundTrips(n, hp)
				require.Equal(t, want, counted(func() { commit(oids) }), "commit of %d new objects", n)
				require.Equal(t, want, counted(func() { commit(oids) }), "commit of %d changed objects", n)
				require.Equal(t, want, counted(func() { commit(oids, warm...) }),
					"commit of %d objects with %d readCurrent", n, len(warm))
			}

			// Another instance's view: poll, load, end.
			other, err := s.NewInstance()
			require.NoError(t, err)
			defer other.Release()
			for range 2 { // the second poll prepares the poll statements
				_, _, err = other.Poll(ctx)
				require.NoError(t, err)
				commit(warm)
			}
			require.Equal(t, int64(1), counted(func() {
				changed, all, err := other.Poll(ctx)
				require.NoError(t, err)
				require.False(t, all)
				require.ElementsMatch(t, warm, changed)
			}), "poll")
			require.Equal(t, int64(0), counted(func() {
				_, _, err := other.Load(ctx, warm[1])
				require.NoError(t, err)
			}), "load served by the shared cache (the commit filled it)")
			s.ClearCache()
			_, _, err = other.Load(ctx, warm[0]) // prepares the statement
			require.NoError(t, err)
			require.Equal(t, int64(1), counted(func() {
				_, _, err := other.Load(ctx, warm[1])
				require.NoError(t, err)
			}), "load after the cache was emptied")
			// An instance that never polls (the root storage of scripts and
			// tools) starts a snapshot for each load: the read goes with it.
			root, err := s.NewInstance()
			require.NoError(t, err)
			defer root.Release()
			for range 2 { // opens its connection; the second prepares ending a snapshot with the next
				s.ClearCache()
				_, _, err = root.Load(ctx, warm[0])
				require.NoError(t, err)
			}
			for _, what := range []string{"not cached", "in the shared cache"} { // the first load fills it
				require.Equal(t, int64(1), counted(func() {
					state, tid, err := root.Load(ctx, warm[1])
					require.NoError(t, err)
					require.Equal(t, serials[warm[1]], tid)
					require.NotEmpty(t, state)
				}), "load by an instance that never polls, %s", what)
			}
			require.Equal(t, int64(1), counted(func() {
				_, _, err := root.Load(ctx, 1<<60) // no such object
				var e *engine.Error
				require.ErrorAs(t, err, &e)
				require.Equal(t, engine.KindPOSKey, e.Kind)
			}), "load of a missing object by an instance that never polls")
			// The end of a snapshot travels with the next poll...
			require.Equal(t, int64(1), counted(func() {
				other.Sync()
				_, _, err := other.Poll(ctx)
				require.NoError(t, err)
			}), "end of snapshot and the next poll")
			// ...or, when none comes, reaches the server on its own soon after.
			before := count()
			other.Sync()
			require.Eventually(t, func() bool { return count() == before+1 }, 10*time.Second, time.Millisecond,
				"the end of an idle instance's snapshot never reached the server")
			// 1024 OIDs in a burst: where the dialect takes several blocks per
			// round trip, 1+2+4+8+16+32+64 blocks in 7 (RelStorage: 64).
			burst := counted(func() { newOIDs(1024) })
			require.LessOrEqual(t, burst, oidBurstRoundTrips, "new_oid x1024")
		})
	}
}
