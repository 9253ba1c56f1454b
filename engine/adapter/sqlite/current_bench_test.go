package sqlite

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"path/filepath"
	"testing"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/stretchr/testify/require"
)

// benchDB opens a history-free database of 500 objects of 1.5 kB.
func benchDB(b *testing.B) (adapter.Dialect, []uint64) {
	ctx := context.Background()
	raw, err := json.Marshal(Options{DataDir: filepath.Join(b.TempDir(), "data")})
	require.NoError(b, err)
	d, err := Open(ctx, adapter.Settings{CreateSchema: true, Options: raw})
	require.NoError(b, err)
	b.Cleanup(func() { d.Close() })
	oids := make([]uint64, 500)
	state := make([]byte, 1500)
	rand.Read(state)
	for i := range oids {
		oids[i] = uint64(i + 1)
		_, err := d.(*Dialect).writeDB.Exec(`INSERT INTO object_state (zoid, tid, state_size, state) VALUES (?, 7, 1500, ?)`, i+1, state)
		require.NoError(b, err)
	}
	return d, oids
}

// benchLoad opens benchDB's database and a load connection in a snapshot.
func benchLoad(b *testing.B) (adapter.LoadConn, []uint64) {
	ctx := context.Background()
	d, oids := benchDB(b)
	lc, err := d.OpenLoad(ctx)
	require.NoError(b, err)
	b.Cleanup(func() { lc.Close() })
	require.NoError(b, lc.(*loadConn).Begin(ctx))
	return lc, oids
}

// A prefetch's read of 500 objects: one statement (ns/obj per object).
func BenchmarkCurrentMany(b *testing.B) {
	lc, oids := benchLoad(b)
	for b.Loop() {
		if revs, err := lc.Current(context.Background(), oids); err != nil || len(revs) != len(oids) {
			b.Fatal(err, len(revs))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(oids)), "ns/obj")
}

// The same 500 objects read one at a time, as cold loads read them.
func BenchmarkCurrentOneByOne(b *testing.B) {
	lc, oids := benchLoad(b)
	for b.Loop() {
		for _, oid := range oids {
			if revs, err := lc.Current(context.Background(), []uint64{oid}); err != nil || len(revs) != 1 {
				b.Fatal(err, len(revs))
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(oids)), "ns/obj")
}

// A vote's read of the current tids of 500 objects (readCurrent), under the
// write lock.
func BenchmarkLockObjects(b *testing.B) {
	ctx := context.Background()
	d, oids := benchDB(b)
	sc, err := d.OpenStore(ctx)
	require.NoError(b, err)
	defer sc.Close()
	require.NoError(b, sc.BeginCommit(ctx))
	defer sc.Rollback()
	for b.Loop() {
		if tids, err := sc.LockObjects(ctx, oids, nil); err != nil || len(tids) != len(oids) {
			b.Fatal(err, len(tids))
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(oids)), "ns/obj")
}
