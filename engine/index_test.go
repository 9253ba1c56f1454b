package engine

import (
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func changes(tid uint64, oids ...uint64) []adapter.Change {
	out := make([]adapter.Change, len(oids))
	for i, oid := range oids {
		out[i] = adapter.Change{OID: oid, TID: tid}
	}
	return out
}

func sorted(oids []uint64) []uint64 {
	sort.Slice(oids, func(i, j int) bool { return oids[i] < oids[j] })
	return oids
}

// snapshot merges a snapshot at snap that saw cs, the way startSnapshot does.
func snapshot(t *testing.T, x *index, snap uint64, cs []adapter.Change) (uint64, uint64) {
	t.Helper()
	after, epoch, _ := x.position()
	var seen []adapter.Change
	for _, c := range cs {
		if c.TID > after {
			seen = append(seen, c)
		}
	}
	s, ok := x.merge(epoch, after, snap, seen, len(seen) > x.limit)
	require.True(t, ok)
	return s, epoch
}

func TestIndexAnswersEachSnapshotWithItsOwnRevision(t *testing.T) {
	x := newIndex(100)
	snapshot(t, x, 5, nil) // the first snapshot starts the index at its tid
	snapshot(t, x, 10, changes(10, 1, 2))
	x.learn(0, 10, 3, 5) // oid 3 read at snapshot 10: unchanged since tid 5
	s20, e := snapshot(t, x, 20, append(changes(20, 1), changes(10, 2)...))
	require.Equal(t, uint64(20), s20)

	for _, c := range []struct{ snap, oid, want uint64 }{
		{10, 1, 10}, {20, 1, 20}, {15, 1, 10}, {20, 2, 10}, {20, 3, 5}, {10, 3, 5},
	} {
		got, ok := x.lookup(e, c.snap, c.oid)
		require.True(t, ok, "%+v", c)
		require.Equal(t, c.want, got, "%+v", c)
	}
	_, ok := x.lookup(e, 20, 4)
	require.False(t, ok, "an object never read nor changed is unknown")

	oids, all := x.changed(e, 10, 20, nil)
	require.False(t, all)
	require.Equal(t, []uint64{1}, oids)
	oids, all = x.changed(e, 10, 20, map[uint64]bool{20: true})
	require.False(t, all)
	require.Empty(t, oids, "own transactions are not invalidations")

	// A learn that contradicts a known change is ignored.
	x.learn(e, 20, 1, 10)
	got, _ := x.lookup(e, 20, 1)
	require.Equal(t, uint64(20), got)
}

func TestIndexCompactionKeepsAnswersAndDropsOnlyWhatNoOneNeeds(t *testing.T) {
	x := newIndex(1000)
	_, e := snapshot(t, x, 0, nil)
	for tid := uint64(1); tid <= 2*compactEvery; tid++ {
		_, e = snapshot(t, x, tid, changes(tid, tid%5))
	}
	require.True(t, x.wantsCompaction())
	x.compact(40) // a polled instance is still at 40
	require.Equal(t, uint64(40), x.base)
	_, all := x.changed(e, 39, 64, nil)
	require.True(t, all, "behind base: invalidate everything")
	oids, all := x.changed(e, 40, 64, nil)
	require.False(t, all)
	require.Equal(t, []uint64{0, 1, 2, 3, 4}, sorted(oids))
	for oid := uint64(0); oid < 5; oid++ {
		// the newest change of oid at or before 45
		want := uint64(45)
		for want%5 != oid {
			want--
		}
		got, ok := x.lookup(e, 45, oid)
		require.True(t, ok)
		require.Equal(t, want, got, "oid %d", oid)
	}
	_, ok := x.lookup(e, 39, 1)
	require.False(t, ok, "a snapshot behind base cannot use the index")
}

func TestIndexOverTheDeltaLimitDropsTheOldestChanges(t *testing.T) {
	x := newIndex(10)
	_, e := snapshot(t, x, 0, nil)
	for tid := uint64(1); tid <= 30; tid++ {
		_, e = snapshot(t, x, tid, changes(tid, 100+tid))
	}
	x.compact(1) // an instance is stuck at 1
	require.LessOrEqual(t, x.count, 10)
	_, all := x.changed(e, 1, 30, nil)
	require.True(t, all, "the instance left behind must invalidate everything")

	// A poll with more changes than the limit restarts the index there.
	s, ok := x.merge(e, x.head, 40, changes(40, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11), true)
	require.True(t, ok)
	require.Equal(t, uint64(40), x.base)
	_, all = x.changed(e, 30, s, nil)
	require.True(t, all)
}

func TestIndexRestoringBelowTheHeadInvalidatesUntilTheNextSnapshot(t *testing.T) {
	x := newIndex(100)
	snapshot(t, x, 5, nil)
	_, e := snapshot(t, x, 10, changes(10, 1))
	x.committed(20, []uint64{1}, true, 10)
	got, _ := x.lookup(e, 25, 1)
	require.Equal(t, uint64(20), got, "own commits are known at once")

	x.committed(5, []uint64{2}, false, 20) // restore of an old transaction
	_, ok := x.lookup(e, 25, 1)
	require.False(t, ok, "snapshots from before cannot trust the index")
	_, all := x.changed(e, 10, 25, nil)
	require.True(t, all)

	s, e2 := snapshot(t, x, 30, nil)
	require.NotEqual(t, e, e2)
	x.learn(e2, s, 1, 20)
	got, ok = x.lookup(e2, 30, 1)
	require.True(t, ok, "a snapshot begun after the restore rebuilds it")
	require.Equal(t, uint64(20), got)
}
