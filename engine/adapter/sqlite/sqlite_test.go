package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"testing"

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

func TestInListAndChunks(t *testing.T) {
	in, args := inList([]uint64{3, 1, 2})
	require.Equal(t, "(?,?,?)", in)
	require.Equal(t, []any{int64(3), int64(1), int64(2)}, args)
	oids := make([]uint64, 2*maxParams+1)
	var sizes []int
	require.NoError(t, chunks(oids, func(part []uint64) error {
		sizes = append(sizes, len(part))
		return nil
	}))
	require.Equal(t, []int{maxParams, maxParams, 1}, sizes)
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
