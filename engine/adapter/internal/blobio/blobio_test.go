package blobio

import (
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/stretchr/testify/require"
)

// files writes one file per size and returns them as staged blobs, oid i+1.
func files(t *testing.T, sizes ...int) []adapter.StagedBlob {
	dir := t.TempDir()
	var out []adapter.StagedBlob
	for i, n := range sizes {
		path := filepath.Join(dir, string(rune('a'+i)))
		data := make([]byte, n)
		for j := range data {
			data[j] = byte(i)
		}
		require.NoError(t, os.WriteFile(path, data, 0o644))
		out = append(out, adapter.StagedBlob{OID: uint64(i + 1), Path: path})
	}
	return out
}

// Small files go in batches of at most batchBytes, larger ones alone, in
// the blobs' order, each small file's bytes whole.
func TestGroupKeepsTheOrderAndTheBatchBounds(t *testing.T) {
	blobs := files(t, 10, 20, 30, 100, 5, 40, 0)
	var got []string
	err := Group(blobs, 50, 60, func(batch []Small) error {
		held := 0
		for _, s := range batch {
			require.Len(t, s.Data, []int{10, 20, 30, 100, 5, 40, 0}[s.OID-1])
			for _, b := range s.Data {
				require.Equal(t, byte(s.OID-1), b)
			}
			held += len(s.Data)
			got = append(got, string(rune('0'+s.OID)))
		}
		require.LessOrEqual(t, held, 60)
		got = append(got, "|")
		return nil
	}, func(b adapter.StagedBlob) error {
		got = append(got, "L"+string(rune('0'+b.OID)), "|")
		return nil
	})
	require.NoError(t, err)
	require.Equal(t, []string{"1", "2", "3", "|", "L4", "|", "5", "6", "7", "|"}, got)
}

// An error from small ends Group with it, and the reading goroutine ends
// too; a file that cannot be read is reported after the batches completed
// before it (the one it would have joined is not sent).
func TestGroupStopsAtTheFirstError(t *testing.T) {
	before := runtime.NumGoroutine()
	blobs := files(t, 10, 10, 10, 10)
	calls := 0
	boom := errors.New("boom")
	err := Group(blobs, 50, 10, func([]Small) error {
		calls++
		return boom
	}, nil)
	require.ErrorIs(t, err, boom)
	require.Equal(t, 1, calls)

	blobs[2].Path = filepath.Join(t.TempDir(), "missing")
	var sent []uint64
	err = Group(blobs, 50, 10, func(batch []Small) error {
		for _, s := range batch {
			sent = append(sent, s.OID)
		}
		return nil
	}, nil)
	require.ErrorContains(t, err, "read blob file")
	require.Equal(t, []uint64{1}, sent)

	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	require.LessOrEqual(t, runtime.NumGoroutine(), before, "Group's reader is still running")
}
