package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/stretchr/testify/require"
)

func TestPragmasAreCheckedAndOrdered(t *testing.T) {
	got, err := checkPragmas(map[string]string{"cache_size": "-2000", "busy_timeout": "1", "Journal_Mode": "delete"})
	require.NoError(t, err)
	require.Contains(t, got, "cache_size = -2000")
	require.Equal(t, "journal_mode = wal", got[len(got)-1], "WAL is required and applied last")
	for _, p := range got {
		require.NotContains(t, p, "busy_timeout", "commit-lock-timeout sets it")
		require.NotContains(t, p, "delete")
	}
	for _, bad := range []map[string]string{{"cache_size": "1; DROP TABLE x"}, {"x y": "1"}, {"a": ""}} {
		_, err := checkPragmas(bad)
		require.ErrorContains(t, err, "invalid pragma")
	}
}

// The pragmas the configuration names run on every connection the dialect
// opens, for reading and for writing.
func TestPragmasRunOnEveryConnection(t *testing.T) {
	raw, err := json.Marshal(Options{DataDir: filepath.Join(t.TempDir(), "data"),
		Pragmas: map[string]string{"cache_size": "-3000", "journal_size_limit": "1000"}})
	require.NoError(t, err)
	d, err := Open(context.Background(), adapter.Settings{KeepHistory: true, CreateSchema: true, Options: raw})
	require.NoError(t, err)
	defer d.Close()
	for _, db := range []*sql.DB{d.(*Dialect).readDB, d.(*Dialect).writeDB} {
		var cacheSize, limit int
		var mode string
		require.NoError(t, db.QueryRow(`PRAGMA cache_size`).Scan(&cacheSize))
		require.NoError(t, db.QueryRow(`PRAGMA journal_size_limit`).Scan(&limit))
		require.NoError(t, db.QueryRow(`PRAGMA journal_mode`).Scan(&mode))
		require.Equal(t, [3]any{-3000, 1000, "wal"}, [3]any{cacheSize, limit, mode})
	}
}

func openTestDialect(t *testing.T, dir string, pragmas map[string]string) *Dialect {
	raw, err := json.Marshal(Options{DataDir: dir, Pragmas: pragmas})
	require.NoError(t, err)
	d, err := Open(context.Background(), adapter.Settings{CreateSchema: true, Options: raw})
	require.NoError(t, err)
	return d.(*Dialect)
}

// A commit that writes more than wal_autocheckpoint pages returns before
// its pages are copied from the WAL into the database, which the
// checkpointer does afterwards; the connection goes back to the pool
// checkpointing as SQLite does, and the data survives a close and reopen.
func TestBigCommitIsCheckpointedInTheBackground(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "data")
	d := openTestDialect(t, dir, nil)
	require.NotNil(t, d.ckpt)
	state := make([]byte, 2*d.ckpt.big)
	for i := range state {
		state[i] = byte(i * 7)
	}
	main := filepath.Join(dir, "main.sqlite3")
	size := func() int64 {
		fi, err := os.Stat(main)
		require.NoError(t, err)
		return fi.Size()
	}
	d.ckpt.busy.Lock() // the checkpointer is kept from starting
	st, err := d.OpenStore(ctx)
	require.NoError(t, err)
	require.NoError(t, st.BeginCommit(ctx))
	require.NoError(t, st.Move(ctx, 1<<32, adapter.TxnInfo{}, []adapter.Write{{OID: 1, State: state}}))
	require.NoError(t, st.Commit(ctx))
	require.Less(t, size(), int64(len(state)), "the commit copied its pages into main.sqlite3 itself")
	d.ckpt.busy.Unlock()
	var pages int
	require.NoError(t, st.(*storeConn).conn.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages))
	require.Equal(t, d.ckpt.pages, pages, "the connection checkpoints as SQLite does again")
	require.NoError(t, st.Close())

	// The checkpointer copies them.
	deadline := time.Now().Add(30 * time.Second)
	for size() < int64(len(state)) {
		require.True(t, time.Now().Before(deadline), "main.sqlite3 is %d bytes: the WAL was not checkpointed", size())
		time.Sleep(10 * time.Millisecond)
	}
	require.NoError(t, d.Close())

	d = openTestDialect(t, dir, nil)
	defer d.Close()
	lc, err := d.OpenLoad(ctx)
	require.NoError(t, err)
	defer lc.Close()
	revs, err := lc.Current(ctx, []uint64{1})
	require.NoError(t, err)
	require.Len(t, revs, 1)
	require.Equal(t, state, revs[0].State)
}

// With wal_autocheckpoint 0 in the configuration, commits never checkpoint:
// no checkpointer either.
func TestNoCheckpointerWithoutAutomaticCheckpoints(t *testing.T) {
	d := openTestDialect(t, filepath.Join(t.TempDir(), "data"), map[string]string{"wal_autocheckpoint": "0"})
	defer d.Close()
	require.Nil(t, d.ckpt)
}

// The statements of many oids look each one up by primary key, in both
// schemas: SQLite scans nothing but the JSON array of oids.
func TestManyOidStatementsUseThePrimaryKey(t *testing.T) {
	for _, hp := range []bool{false, true} {
		raw, err := json.Marshal(Options{DataDir: filepath.Join(t.TempDir(), "data")})
		require.NoError(t, err)
		d, err := Open(context.Background(), adapter.Settings{KeepHistory: hp, CreateSchema: true, Options: raw})
		require.NoError(t, err)
		q := newQueries(hp)
		for _, text := range []string{q.currentMany, q.currentTIDs} {
			rows, err := d.(*Dialect).readDB.Query(`EXPLAIN QUERY PLAN `+text, `[1,2,3]`)
			require.NoError(t, err)
			var plan []string
			for rows.Next() {
				var id, parent, unused int
				var detail string
				require.NoError(t, rows.Scan(&id, &parent, &unused, &detail))
				plan = append(plan, detail)
			}
			require.NoError(t, rows.Err())
			rows.Close()
			for _, step := range plan {
				if strings.HasPrefix(step, "SCAN ") {
					require.True(t, strings.HasPrefix(step, "SCAN json_each"), "history-preserving %v, %s: %q", hp, text, plan)
				}
			}
			require.NotEmpty(t, plan)
		}
		require.NoError(t, d.Close())
	}
}
