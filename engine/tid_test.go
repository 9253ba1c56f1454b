package engine

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// Reference values from persistent.TimeStamp(y, m, d, h, mi, s).raw().
func TestTIDAtMatchesPersistentTimeStamp(t *testing.T) {
	cases := []struct {
		at   time.Time
		want uint64
	}{
		{time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), 0x0331620000000000},
		{time.Date(2026, 11, 21, 19, 13, 30, 500_000_000, time.UTC), 0x040d2bc182222222},
		{time.Date(1999, 12, 31, 23, 59, 59, 999_000_000, time.UTC), 0x033161fffffee861},
	}
	for _, c := range cases {
		require.Equal(t, c.want, TIDAt(c.at), c.at.String())
	}
}

func TestNextTIDNeverGoesBack(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	require.Equal(t, TIDAt(now), NextTID(now, 1))
	future := TIDAt(now.Add(time.Hour))
	require.Equal(t, future+1, NextTID(now, future), "a clock behind the database still moves forward")
}

func TestParseOptionsRejectsUnknownKeys(t *testing.T) {
	_, err := ParseOptions([]byte(`{"adapter": "sqlite3", "replica_conf_file": "/tmp/r"}`))
	require.Error(t, err)
	require.Equal(t, KindConfig, KindOf(err))
	require.Contains(t, err.Error(), "replica_conf_file")

	o, err := ParseOptions([]byte(`{"adapter": "sqlite3", "keep_history": false}`))
	require.NoError(t, err)
	require.False(t, o.KeepHistory)
	require.Equal(t, 30.0, o.CommitLockTimeout, "defaults are RelStorage's")

	_, err = ParseOptions([]byte(`{"adapter": "sqlite3", "commit_lock_timeout": -1}`))
	require.ErrorContains(t, err, "commit-lock-timeout")

	require.Equal(t, 10.0, o.BlobCacheSizeCheck, "blob-cache-size-check defaults to RelStorage's 10 %")
	require.Equal(t, 1<<20, o.BlobChunkSize)
	for bad, name := range map[string]string{
		`"blob_cache_size_check": 100`: "blob-cache-size-check",
		`"blob_chunk_size": 0`:         "blob-chunk-size",
		`"blob_cache_size": 10`:        "need blob-dir",
		`"blob_dir": "/b", "shared_blob_dir": true, "blob_cache_size": 10`: "never pruned",
	} {
		_, err = ParseOptions([]byte(`{"adapter": "sqlite3", ` + bad + `}`))
		require.ErrorContains(t, err, name, bad)
	}
}
