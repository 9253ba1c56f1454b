package replicalist

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func TestReplicaConfIsReadWithRelStoragesSyntax(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replicas")
	require.NoError(t, os.WriteFile(path, []byte("# primary first\ndb1.example.com\n\n  10.0.0.2:6543 \n[::1]:5433\n"), 0o644))
	l, err := New(path, time.Minute, HostPort(5432))
	require.NoError(t, err)
	require.Equal(t, []string{"db1.example.com:5432", "10.0.0.2:6543", "[::1]:5433"}, l.entries)

	for _, bad := range []string{"", "# nothing\n", "db:notaport\n"} {
		require.NoError(t, os.WriteFile(path, []byte(bad), 0o644))
		_, err := New(path, time.Minute, HostPort(5432))
		require.ErrorIs(t, err, adapter.ErrBadConfig, "%q", bad)
		require.ErrorContains(t, err, path)
	}
	_, err = New(filepath.Join(t.TempDir(), "missing"), time.Minute, HostPort(5432))
	require.ErrorIs(t, err, adapter.ErrBadConfig)
}

func TestReplicaOrderFollowsTheEntryInUseAndReturnsAfterTheTimeout(t *testing.T) {
	path := filepath.Join(t.TempDir(), "replicas")
	require.NoError(t, os.WriteFile(path, []byte("a:1\nb:2\nc:3\n"), 0o644))
	l, err := New(path, 50*time.Millisecond, HostPort(5432))
	require.NoError(t, err)
	idx, _, gen, err := l.Order()
	require.NoError(t, err)
	require.Equal(t, []int{0, 1, 2}, idx)

	require.Equal(t, gen, l.Used(1), "leaving the first entry keeps the generation")
	idx, _, _, _ = l.Order()
	require.Equal(t, []int{1, 2, 0}, idx, "the entry that answered is tried first")

	time.Sleep(60 * time.Millisecond) // replica-timeout
	next := l.Generation()
	require.Greater(t, next, gen, "back to the first entry: older connections are dropped")
	idx, _, _, _ = l.Order()
	require.Equal(t, []int{0, 1, 2}, idx)

	// The file changed: read again; a new first entry starts a new generation.
	time.Sleep(10 * time.Millisecond)
	require.NoError(t, os.WriteFile(path, []byte("z:9\na:1\n"), 0o644))
	idx, entries, g, err := l.Order()
	require.NoError(t, err)
	require.Equal(t, []string{"z:9", "a:1"}, entries)
	require.Equal(t, []int{0, 1}, idx)
	require.Greater(t, g, next)
}
