package cache

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"
)

func rec(oid, tid, checkpoint uint64, data string) Record {
	return Record{Entry: Entry{OID: oid, TID: tid, Data: []byte(data)}, Checkpoint: checkpoint}
}

func TestCacheFileRoundTripsAndIsOwnerOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.cache")
	c := New(Options{Bytes: 1 << 20, ObjectMax: 16384, Compression: "zlib"})
	c.Put(1, 10, state(1, 500)) // compressed
	c.Put(2, 20, []byte("short"))
	var recs []Record
	for _, e := range c.Entries() {
		recs = append(recs, Record{Entry: e, Checkpoint: 30})
	}
	n, err := WriteFile(path, recs, 1<<20)
	require.NoError(t, err)
	require.Equal(t, 2, n)
	for _, p := range []string{path, path + ".lock"} {
		fi, err := os.Stat(p)
		require.NoError(t, err)
		require.Equal(t, os.FileMode(0o600), fi.Mode().Perm(), p)
	}

	back, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, back, 2)
	d := New(Options{Bytes: 1 << 20, ObjectMax: 16384})
	for _, r := range back {
		require.Equal(t, uint64(30), r.Checkpoint)
		d.PutEntry(r.Entry)
	}
	got, ok := d.Get(1, 10)
	require.True(t, ok)
	require.Equal(t, state(1, 500), got, "a compressed entry reads back as the state")
	got, ok = d.Get(2, 20)
	require.True(t, ok)
	require.Equal(t, []byte("short"), got)
}

func TestDamagedCacheFilesAreRefusedNotTrusted(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "c.cache")
	_, err := WriteFile(path, []Record{rec(1, 10, 10, "one"), rec(2, 20, 20, "two")}, 1<<20)
	require.NoError(t, err)
	good, err := os.ReadFile(path)
	require.NoError(t, err)

	missing, err := ReadFile(filepath.Join(dir, "none"))
	require.NoError(t, err, "no file is an empty cache")
	require.Empty(t, missing)

	for name, data := range map[string][]byte{
		"empty":     {},
		"truncated": good[:len(good)-7],
		"flipped":   append(append([]byte{}, good[:20]...), append([]byte{good[20] ^ 1}, good[21:]...)...),
		"not ours":  []byte("SQLite format 3\x00 and then some more bytes to pass the size check"),
		"doubled":   append(append([]byte{}, good...), good...),
	} {
		require.NoError(t, os.WriteFile(path, data, 0o600))
		_, err := ReadFile(path)
		require.ErrorIs(t, err, ErrCorrupt, name)
	}

	// Writing over a damaged file replaces it.
	_, err = WriteFile(path, []Record{rec(3, 30, 30, "three")}, 1<<20)
	require.NoError(t, err)
	back, err := ReadFile(path)
	require.NoError(t, err)
	require.Len(t, back, 1)
	require.Equal(t, uint64(3), back[0].OID)
}

func TestWritersMergeKeepingTheNewerRecordAndTheLimit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.cache")
	_, err := WriteFile(path, []Record{rec(1, 10, 50, "a1"), rec(2, 20, 50, "b1"), rec(3, 30, 50, "c1")}, 1<<20)
	require.NoError(t, err)
	// A second process knew oid 2 at a later checkpoint, oid 1 at an earlier one.
	n, err := WriteFile(path, []Record{rec(2, 60, 70, "b2"), rec(1, 5, 40, "a0"), rec(4, 40, 70, "d1")}, 1<<20)
	require.NoError(t, err)
	require.Equal(t, 4, n)
	back, err := ReadFile(path)
	require.NoError(t, err)
	byOID := map[uint64]Record{}
	for _, r := range back {
		byOID[r.OID] = r
	}
	require.Equal(t, "b2", string(byOID[2].Data), "the later checkpoint wins")
	require.Equal(t, "a1", string(byOID[1].Data), "the later checkpoint wins, whoever wrote last")
	require.Equal(t, "c1", string(byOID[3].Data), "the other process's objects are kept")
	require.Equal(t, "d1", string(byOID[4].Data))

	// The limit keeps the writer's own records first.
	n, err = WriteFile(path, []Record{rec(9, 90, 90, "z")}, 2*(entryOverhead+2))
	require.NoError(t, err)
	require.Equal(t, 2, n)
	back, err = ReadFile(path)
	require.NoError(t, err)
	require.Equal(t, uint64(9), back[0].OID)
}
