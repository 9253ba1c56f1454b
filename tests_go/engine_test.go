// Engine tests against real databases. Each test runs for every database in
// databases() and both history modes: SQLite always; PostgreSQL, MySQL/MariaDB
// and Oracle when GORELSTORAGE_PG_DSN, GORELSTORAGE_MYSQL_URI and
// GORELSTORAGE_ORACLE_DSN (with _USER) name servers (scripts/test starts
// PostgreSQL and MariaDB; no Oracle server can run here).
package tests_go

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/sqlite"
)

var ctx = context.Background()

type database struct {
	name string
	// options returns options for a fresh database kept under dir.
	options func(dir string) engine.Options
}

func databases() []database {
	dbs := []database{{
		name: "sqlite",
		options: func(dir string) engine.Options {
			raw, _ := json.Marshal(map[string]any{"data_dir": filepath.Join(dir, "data")})
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "sqlite3", raw
			return o
		},
	}}
	if pg, ok := postgresDatabase(); ok {
		dbs = append(dbs, pg)
	}
	if my, ok := mysqlDatabase(); ok {
		dbs = append(dbs, my)
	}
	if ora, ok := oracleDatabase(); ok {
		dbs = append(dbs, ora)
	}
	return dbs
}

// eachDatabase runs fn for every database x history mode with fresh options.
func eachDatabase(t *testing.T, fn func(t *testing.T, opts engine.Options)) {
	for _, db := range databases() {
		for _, hp := range []bool{true, false} {
			mode := map[bool]string{true: "hp", false: "hf"}[hp]
			t.Run(db.name+"/"+mode, func(t *testing.T) {
				o := db.options(t.TempDir())
				o.KeepHistory = hp
				fn(t, o)
			})
		}
	}
}

func open(t *testing.T, o engine.Options) *engine.Storage {
	t.Helper()
	s, err := engine.Open(ctx, o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return s
}

func instance(t *testing.T, s *engine.Storage) *engine.Instance {
	t.Helper()
	in, err := s.NewInstance()
	require.NoError(t, err)
	t.Cleanup(in.Release)
	return in
}

// commit stores states (oid -> state, based on serials) and returns the tid.
func commit(t *testing.T, in *engine.Instance, serials map[uint64]uint64, states map[uint64]string) uint64 {
	t.Helper()
	require.NoError(t, in.Begin(engine.TxnMeta{User: []byte("u"), Description: []byte("d")}, 0, false))
	for oid, state := range states {
		require.NoError(t, in.Store(oid, serials[oid], []byte(state)))
	}
	conflicts, err := in.Vote(ctx)
	require.NoError(t, err)
	require.Empty(t, conflicts)
	tid, err := in.FinishLock(ctx)
	require.NoError(t, err)
	require.NoError(t, in.FinishCommit(ctx))
	return tid
}

func TestCommitThenLoad(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		oid, err := s.NewOID(ctx)
		require.NoError(t, err)
		tid1 := commit(t, in, nil, map[uint64]string{0: "root", oid: "one"})
		tid2 := commit(t, in, map[uint64]uint64{oid: tid1}, map[uint64]string{oid: "two"})
		require.Greater(t, tid2, tid1)

		state, tid, err := in.Load(ctx, oid)
		require.NoError(t, err)
		require.Equal(t, "two", string(state))
		require.Equal(t, tid2, tid)

		rev, end, found, err := in.LoadBefore(ctx, oid, tid2)
		if o.KeepHistory {
			require.NoError(t, err)
			require.True(t, found)
			require.Equal(t, "one", string(rev.State))
			require.Equal(t, tid2, end)
			old, err := in.LoadSerial(ctx, oid, tid1)
			require.NoError(t, err)
			require.Equal(t, "one", string(old))
		} else {
			require.NoError(t, err)
			require.False(t, found, "history-free keeps no older revision")
		}

		_, _, err = in.Load(ctx, oid+1000)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
		last, err := in.LastTransaction(ctx)
		require.NoError(t, err)
		require.Equal(t, tid2, last)
	})
}

func TestStaleWriteIsReportedAtVoteAndCanBeResolved(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		a, b := instance(t, s), instance(t, s)
		tid0 := commit(t, a, nil, map[uint64]string{0: "v0"})
		tid1 := commit(t, a, map[uint64]uint64{0: tid0}, map[uint64]string{0: "v1"})

		require.NoError(t, b.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, b.Store(0, tid0, []byte("v0+b")))
		conflicts, err := b.Vote(ctx)
		require.NoError(t, err)
		require.Len(t, conflicts, 1)
		c := conflicts[0]
		require.Equal(t, uint64(0), c.OID)
		require.Equal(t, tid1, c.CommittedTID)
		require.Equal(t, tid0, c.OldTID)
		require.Equal(t, "v1", string(c.CommittedState))
		require.Equal(t, "v0+b", string(c.NewState))

		_, err = b.FinishLock(ctx)
		require.Equal(t, engine.KindTransaction, engine.KindOf(err), "finish before the conflict is resolved")
		require.NoError(t, b.Resolve([]engine.Resolution{{OID: 0, CommittedTID: tid1, State: []byte("v1+b")}}))
		tid2, err := b.FinishLock(ctx)
		require.NoError(t, err)
		require.NoError(t, b.FinishCommit(ctx))

		state, tid, err := a.Load(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, "v1+b", string(state))
		require.Equal(t, tid2, tid)
	})
}

func TestUnresolvedConflictFailsTheVote(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		a, b := instance(t, s), instance(t, s)
		tid0 := commit(t, a, nil, map[uint64]string{0: "v0"})
		commit(t, a, map[uint64]uint64{0: tid0}, map[uint64]string{0: "v1"})
		require.NoError(t, b.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, b.Store(0, tid0, []byte("b")))
		conflicts, err := b.Vote(ctx)
		require.NoError(t, err)
		require.Len(t, conflicts, 1)
		err = b.Resolve(nil)
		require.Equal(t, engine.KindConflict, engine.KindOf(err))
		b.Abort()
		// The lock is released: a commits again.
		state, tid, err := a.Load(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, "v1", string(state))
		commit(t, a, map[uint64]uint64{0: tid}, map[uint64]string{0: "v2"})
	})
}

func TestReadCurrentViolationIsAReadConflict(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		a, b := instance(t, s), instance(t, s)
		tid0 := commit(t, a, nil, map[uint64]string{0: "root", 1: "x"})
		commit(t, a, map[uint64]uint64{1: tid0}, map[uint64]string{1: "y"})
		require.NoError(t, b.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, b.CheckCurrent(1, tid0))
		require.NoError(t, b.Store(0, tid0, []byte("root2")))
		_, err := b.Vote(ctx)
		require.Equal(t, engine.KindReadConflict, engine.KindOf(err))
		var e *engine.Error
		require.ErrorAs(t, err, &e)
		require.Equal(t, uint64(1), e.OID)
		b.Abort()
	})
}

func TestPollReportsOtherCommitsOnly(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		a, b := instance(t, s), instance(t, s)
		tid0 := commit(t, a, nil, map[uint64]string{0: "r", 1: "a", 2: "b"})
		_, all, err := b.Poll(ctx)
		require.NoError(t, err)
		require.True(t, all, "the first poll invalidates everything")

		// b's snapshot holds while a commits.
		commit(t, a, map[uint64]uint64{1: tid0}, map[uint64]string{1: "a2"})
		state, _, err := b.Load(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, "a", string(state), "a polled instance reads its snapshot")
		tidB := commit(t, b, map[uint64]uint64{2: tid0}, map[uint64]string{2: "b2"})

		oids, all, err := b.Poll(ctx)
		require.NoError(t, err)
		require.False(t, all)
		require.Equal(t, []uint64{1}, oids, "own commits are not reported")
		state, _, err = b.Load(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, "a2", string(state))
		last, err := b.LastTransaction(ctx)
		require.NoError(t, err)
		require.Equal(t, tidB, last)
	})
}

func TestOIDsAscendInBlocksAndAreNeverReissued(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		var got []uint64
		for range 20 {
			oid, err := s.NewOID(ctx)
			require.NoError(t, err)
			got = append(got, oid)
		}
		require.True(t, sort.SliceIsSorted(got, func(i, j int) bool { return got[i] < got[j] }))
		require.Equal(t, uint64(1), got[0], "block 1 is oids 1..16")
		require.Equal(t, uint64(17), got[16])

		// A restored high oid raises the counter for every process.
		in := instance(t, s)
		require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, in.Restore(1000, []byte("imported")))
		_, err := in.Vote(ctx)
		require.NoError(t, err)
		_, err = in.FinishLock(ctx)
		require.NoError(t, err)
		require.NoError(t, in.FinishCommit(ctx))
		s.Close()
		s2 := open(t, o)
		oid, err := s2.NewOID(ctx)
		require.NoError(t, err)
		require.Greater(t, oid, uint64(1000))
	})
}

func TestAbortWritesNothing(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, in.Store(0, 0, []byte("x")))
		_, err := in.Vote(ctx)
		require.NoError(t, err)
		_, err = in.FinishLock(ctx)
		require.NoError(t, err)
		in.Abort() // even after the rows were written, before commit
		_, _, err = in.Load(ctx, 0)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
		n, _, err := s.Size(ctx)
		require.NoError(t, err)
		require.Zero(t, n)
	})
}

func TestUndoRestoresThePreviousState(t *testing.T) {
	for _, db := range databases() {
		t.Run(db.name, func(t *testing.T) {
			s := open(t, db.options(t.TempDir()))
			in := instance(t, s)
			tid1 := commit(t, in, nil, map[uint64]string{0: "v1"})
			tid2 := commit(t, in, map[uint64]uint64{0: tid1}, map[uint64]string{0: "v2"})
			require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
			oids, err := in.Undo(ctx, tid2)
			require.NoError(t, err)
			require.Equal(t, []uint64{0}, oids)
			_, err = in.Vote(ctx)
			require.NoError(t, err)
			_, err = in.FinishLock(ctx)
			require.NoError(t, err)
			require.NoError(t, in.FinishCommit(ctx))
			state, _, err := in.Load(ctx, 0)
			require.NoError(t, err)
			require.Equal(t, "v1", string(state))

			require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
			_, err = in.Undo(ctx, tid1)
			require.Equal(t, engine.KindUndo, engine.KindOf(err), "undoing the root's creation")
			in.Abort()
		})
	}
}

func TestHistoryModeMismatchIsRefused(t *testing.T) {
	for _, db := range databases() {
		t.Run(db.name, func(t *testing.T) {
			o := db.options(t.TempDir())
			s := open(t, o)
			require.NoError(t, s.Close())
			o.KeepHistory = false
			_, err := engine.Open(ctx, o)
			require.Error(t, err)
			require.Contains(t, err.Error(), "history-preserving but keep-history is false")
		})
	}
}

func TestReadOnlyRefusesWrites(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		commit(t, instance(t, s), nil, map[uint64]string{0: "root"})
		s.Close()
		o.ReadOnly = true
		ro := open(t, o)
		in := instance(t, ro)
		state, _, err := in.Load(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, "root", string(state))
		require.Equal(t, engine.KindReadOnly, engine.KindOf(in.Begin(engine.TxnMeta{}, 0, false)))
		_, err = ro.NewOID(ctx)
		require.Equal(t, engine.KindReadOnly, engine.KindOf(err))
	})
}

func TestConcurrentCommittersAllLand(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		commit(t, instance(t, s), nil, map[uint64]string{0: "root"})
		const workers, each = 4, 25
		errs := make(chan error, workers)
		for w := range workers {
			go func() {
				in, err := s.NewInstance()
				if err != nil {
					errs <- err
					return
				}
				defer in.Release()
				for i := range each {
					oid := uint64(100 + w*each + i)
					if err := in.Begin(engine.TxnMeta{}, 0, false); err != nil {
						errs <- err
						return
					}
					in.Store(oid, 0, []byte(fmt.Sprint(oid)))
					if _, err := in.Vote(ctx); err != nil {
						errs <- err
						return
					}
					if _, err := in.FinishLock(ctx); err != nil {
						errs <- err
						return
					}
					if err := in.FinishCommit(ctx); err != nil {
						errs <- err
						return
					}
				}
				errs <- nil
			}()
		}
		for range workers {
			require.NoError(t, <-errs)
		}
		n, _, err := s.Size(ctx)
		require.NoError(t, err)
		require.Equal(t, int64(1+workers*each), n)
	})
}

// In history-free mode a deletion removes the row holding the newest tid, so
// the newest tid in the database goes back; polling and the next tid must not.
func TestDeletingTheNewestObjectDoesNotTurnTimeBack(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		a, b := instance(t, s), instance(t, s)
		commit(t, a, nil, map[uint64]string{0: "root"})
		tid1 := commit(t, a, nil, map[uint64]string{5: "doomed"})
		_, _, err := b.Poll(ctx)
		require.NoError(t, err)

		require.NoError(t, a.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, a.DeleteObject(5, tid1))
		_, err = a.Vote(ctx)
		require.NoError(t, err)
		tidDel, err := a.FinishLock(ctx)
		require.NoError(t, err)
		require.NoError(t, a.FinishCommit(ctx))

		_, _, err = b.Poll(ctx)
		require.NoError(t, err, "a deletion is not the database going back in time")
		tidNext := commit(t, a, nil, map[uint64]string{6: "after"})
		require.Greater(t, tidNext, tidDel)
		_, _, err = b.Load(ctx, 5)
		require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
	})
}

// A load connection's Current answers each existing oid once, however often
// it is asked for, and skips oids that do not exist (prefetch may pass both).
func TestCurrentAnswersEachObjectOnce(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		s := open(t, o)
		in := instance(t, s)
		a, err := s.NewOID(ctx)
		require.NoError(t, err)
		b := a + 1
		tid := commit(t, in, nil, map[uint64]string{a: "a", b: "b"})

		openDialect, ok := adapter.Lookup(o.Adapter)
		require.True(t, ok)
		d, err := openDialect(ctx, adapter.Settings{KeepHistory: o.KeepHistory, Options: o.AdapterOptions})
		require.NoError(t, err)
		defer d.Close()
		c, err := d.OpenLoad(ctx)
		require.NoError(t, err)
		defer c.Close()
		for range 7 { // past PostgreSQL's five custom plans of a prepared statement
			revs, err := c.Current(ctx, []uint64{b, a, b, a + 1000, a})
			require.NoError(t, err)
			got := map[uint64]string{}
			for _, r := range revs {
				require.Equal(t, tid, r.TID)
				got[r.OID] = string(r.State)
			}
			require.Len(t, revs, 2)
			require.Equal(t, map[uint64]string{a: "a", b: "b"}, got)
		}
	})
}
