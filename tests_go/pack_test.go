package tests_go

import (
	"encoding/binary"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/pack"
)

// takeOIDs takes n new OIDs.
func takeOIDs(t *testing.T, s *engine.Storage, n int) []uint64 {
	var oids []uint64
	for len(oids) < n {
		more, err := s.TakeOIDs(ctx)
		require.NoError(t, err)
		oids = append(oids, more...)
	}
	return oids[:n]
}

// record is a ZODB record (class pickle, state pickle, protocol 3) whose
// state is a list of persistent references to refs.
func record(refs ...uint64) string {
	b := []byte("\x80\x03cpersistent.list\nPersistentList\nq\x00.\x80\x03](")
	for _, oid := range refs {
		b = append(b, 'C', 8)
		b = binary.BigEndian.AppendUint64(b, oid)
		b = append(b, 0x85, 'Q') // (oid,) as a persistent id
	}
	return string(append(b, 'e', '.'))
}

// commitRecorded commits states over serials and records the new tid as
// the serial of every object it wrote; it returns the tid.
func commitRecorded(t *testing.T, in *engine.Instance, serials map[uint64]uint64, states map[uint64]string) uint64 {
	tid := commit(t, in, serials, states)
	for oid := range states {
		serials[oid] = tid
	}
	return tid
}

// commitTree commits the root referring to a and c, and a to b; the tid.
func commitTree(t *testing.T, s *engine.Storage, in *engine.Instance) (a, b, c, tid uint64) {
	oids := takeOIDs(t, s, 3)
	a, b, c = oids[0], oids[1], oids[2]
	tid = commit(t, in, nil, map[uint64]string{0: record(a, c), a: record(b), b: record(), c: record()})
	return a, b, c, tid
}

// packAnnounced packs and returns, with the result, how many states the
// analysis announced it would read (its progress's first total; 0 when it
// announced none).
func packAnnounced(t *testing.T, s *engine.Storage, o engine.PackOptions) (*engine.PackResult, int64) {
	var announced atomic.Int64
	o.Progress = func(p pack.Progress) {
		if p.Phase == "analyze" && p.Total != 0 {
			announced.CompareAndSwap(0, p.Total)
		}
	}
	res, err := s.Pack(ctx, o)
	require.NoError(t, err)
	return res, announced.Load()
}

// A pack with garbage collection through the engine, on every database and
// mode: what the root reaches stays, with its current state; what it no
// longer reaches and (history-preserving) superseded revisions go; a second
// pack finds nothing more.
func TestPackCollectsGarbage(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		a, b, c, tid1 := commitTree(t, s, in)
		tid2 := commit(t, in, map[uint64]uint64{0: tid1, a: tid1}, map[uint64]string{0: record(a), a: record(b)})

		res, announced := packAnnounced(t, s, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.Equal(t, tid2, res.PackTID)
		require.EqualValues(t, 1, res.Garbage)
		if o.KeepHistory {
			// Not the first revisions of the root and a: they go.
			require.EqualValues(t, 4, res.Analyzed)
		}
		require.Equal(t, res.Analyzed, announced, "the progress announced the states it read")
		require.Empty(t, res.Unreadable)

		for oid, want := range map[uint64]string{0: record(a), a: record(b), b: record()} {
			state, _, err := in.Load(ctx, oid)
			require.NoError(t, err)
			require.Equal(t, want, string(state))
		}
		_, _, err := in.Load(ctx, c)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err), "unreachable object removed")
		if o.KeepHistory {
			_, err = in.LoadSerial(ctx, a, tid1)
			require.Equal(t, engine.KindPOSKey, engine.KindOf(err), "superseded revision removed")
			require.EqualValues(t, 3, res.Removed) // c, and the first revisions of the root and a
		} else {
			require.EqualValues(t, 1, res.Removed)
		}
		again, err := s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.Zero(t, again.Removed)
	})
}

// A state whose references cannot be read and that the root reaches stops
// garbage collection for the pack, and is reported.
func TestPackUnreadableReachableStateKeepsEverything(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		oids, err := s.TakeOIDs(ctx)
		require.NoError(t, err)
		bad, garbage := oids[0], oids[1]
		commit(t, in, nil, map[uint64]string{0: record(bad), bad: "not a pickle", garbage: record()})
		res, err := s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.True(t, res.GCSkipped)
		require.Len(t, res.Unreadable, 1)
		require.Equal(t, bad, res.Unreadable[0].OID)
		_, _, err = in.Load(ctx, garbage)
		require.NoError(t, err)
	})
}

// bigRecord is record(refs...) carrying n bytes of data as well.
func bigRecord(n int, refs ...uint64) string {
	r := record(refs...)
	data := make([]byte, 5+n)
	data[0] = 'B' // BINBYTES, before the list's end
	binary.LittleEndian.PutUint32(data[1:], uint32(n))
	return r[:len(r)-2] + string(data) + r[len(r)-2:] // one more item of the list
}

// A transaction larger than what the analysis holds in memory at once
// (32 MB of states) is read in parts: everything it reaches is kept, and
// it is recorded as read only once whole (the next pack reads only what
// is new).
func TestPackSplitsLargeTransactions(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		kids := takeOIDs(t, s, 45)
		garbage, err := s.NewOID(ctx)
		require.NoError(t, err)
		states := map[uint64]string{0: record(kids...), garbage: record()}
		for i, oid := range kids {
			var next []uint64
			if i+1 < len(kids) {
				next = append(next, kids[i+1])
			}
			states[oid] = bigRecord(1<<20, next...)
		}
		tid := commit(t, in, nil, states)
		res, err := s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Garbage)
		for _, oid := range kids {
			_, _, err := in.Load(ctx, oid)
			require.NoError(t, err)
		}
		_, _, err = in.Load(ctx, garbage)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))

		// The root now reaches the chain from its 41st link only.
		commit(t, in, map[uint64]uint64{0: tid}, map[uint64]string{0: record(kids[40])})
		res, err = s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Analyzed, "only the new root revision is read")
		require.EqualValues(t, 40, res.Garbage)
	})
}

// A prepack-only pack reads references it cannot yet record as read (the
// transactions keep revisions the plan removes); a full pack after it reads
// them again, replacing those rows: no duplicate key, the same garbage.
func TestPackAfterPrepackOnlyReplacesItsReferences(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		a, b, c, tid1 := commitTree(t, s, in)
		commit(t, in, map[uint64]uint64{0: tid1}, map[uint64]string{0: record(a)})

		res, err := s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true, PrepackOnly: true})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Garbage)
		require.Zero(t, res.Removed)
		res, err = s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.EqualValues(t, 1, res.Garbage)
		for _, oid := range []uint64{0, a, b} {
			_, _, err := in.Load(ctx, oid)
			require.NoError(t, err)
		}
		_, _, err = in.Load(ctx, c)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
	})
}

// A pack whose plan spans several batches, most without an unreachable
// object's revision (on PostgreSQL and MySQL those go through a second
// connection while the first takes the others): every superseded revision
// and the unreachable object go, every current state stays.
func TestPackRemovesManyBatches(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		if !o.KeepHistory {
			t.Skip("history-free packs remove objects, not revisions")
		}
		s := open(t, o)
		in := instance(t, s)
		kids := takeOIDs(t, s, 6000)
		garbage, err := s.NewOID(ctx)
		require.NoError(t, err)
		states := map[uint64]string{0: record(kids...)}
		for _, oid := range kids {
			states[oid] = record()
		}
		serials := map[uint64]uint64{}
		first := commitRecorded(t, in, serials, states)
		// Two rewrites of every child: 12,000 superseded revisions in two
		// transactions (two batches); the root, rewritten last, reaches the
		// garbage object once and then no more.
		changed := map[uint64]string{}
		for i, oid := range kids {
			changed[oid] = record(kids[(i+1)%len(kids)])
		}
		commitRecorded(t, in, serials, changed)
		rewritten := commitRecorded(t, in, serials, changed)
		commitRecorded(t, in, serials, map[uint64]string{0: record(append(kids, garbage)...), garbage: record()})
		last := commit(t, in, serials, map[uint64]string{0: record(kids...)})

		res, err := s.Pack(ctx, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.NoError(t, err)
		require.Equal(t, last, res.PackTID)
		require.EqualValues(t, 1, res.Garbage)
		// 2 x 6,000 children, the root's 2 older revisions, the garbage object.
		require.EqualValues(t, 2*6000+2+1, res.Removed)
		for _, oid := range append(kids[:10], kids[5990:]...) {
			state, serial, err := in.Load(ctx, oid)
			require.NoError(t, err)
			require.Equal(t, rewritten, serial)
			require.Equal(t, changed[oid], string(state))
			_, err = in.LoadSerial(ctx, oid, first)
			require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
		}
		_, _, err = in.Load(ctx, garbage)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
	})
}

// An analysis of more states than two of its batches hold (on PostgreSQL
// and MySQL, history-preserving, written through two connections,
// committed in order): the next pack reads only what is new and follows
// the references every batch recorded, along the whole chain.
func TestPackReferencesOfManyBatchesServeTheNextPack(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		const n, perTxn = 12000, 1500
		kids := takeOIDs(t, s, n)
		extra, err := s.NewOID(ctx)
		require.NoError(t, err)
		serials := map[uint64]uint64{}
		// A chain root -> kids[0] -> kids[1] -> ... in transactions of
		// 1,500, the last link first, so that every state refers to one
		// written before it.
		for end := n; end > 0; end -= perTxn {
			states := map[uint64]string{}
			for i := end - perTxn; i < end; i++ {
				if i+1 < n {
					states[kids[i]] = record(kids[i+1])
				} else {
					states[kids[i]] = record(extra)
				}
			}
			if end == n {
				states[extra] = record()
			}
			commitRecorded(t, in, serials, states)
		}
		commitRecorded(t, in, serials, map[uint64]string{0: record(kids[0])})
		res, announced := packAnnounced(t, s, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.Zero(t, res.Garbage)
		require.EqualValues(t, n+2, res.Analyzed)
		require.EqualValues(t, n+2, announced)

		// The chain's last link lets go of the extra object: only that one
		// is garbage, found through every other link's recorded references.
		commit(t, in, serials, map[uint64]string{kids[n-1]: record()})
		res, announced = packAnnounced(t, s, engine.PackOptions{TID: pack.MaxTID, GC: true})
		require.EqualValues(t, 1, res.Analyzed, "only the new revision is read")
		require.EqualValues(t, 1, announced)
		require.EqualValues(t, 1, res.Garbage)
		_, _, err = in.Load(ctx, extra)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
		for i := 0; i < n; i += 97 {
			_, _, err := in.Load(ctx, kids[i])
			require.NoError(t, err)
		}
	})
}
