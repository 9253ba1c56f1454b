package blob

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestLayoutsAreZODBsAndRelStorages(t *testing.T) {
	// RelStorage's _BlobCacheLayout and ZODB's BushyLayout/LawnLayout name these files.
	require.Equal(t, filepath.Join("23", "0.03d167f919308700.blob"), cacheLayout{}.File(23, 0x03d167f919308700))
	require.Equal(t, filepath.Join("1", "2.0000000000000001.blob"), cacheLayout{}.File(997*2+1, 1))
	require.Equal(t, filepath.Join("0x00", "0x00", "0x00", "0x00", "0x00", "0x00", "0x01", "0x2a", "0x03d167f919308700.blob"),
		bushyLayout{}.File(0x12a, 0x03d167f919308700))
	require.Equal(t, filepath.Join("0x012a", "0x01.blob"), lawnLayout{}.File(0x12a, 1))
	require.Equal(t, "0x00", repr(0))
	require.Equal(t, "0x0100", repr(256))
}

func TestOpenChoosesAndKeepsTheLayout(t *testing.T) {
	root := t.TempDir()
	d, err := Open(filepath.Join(root, "cache"), false)
	require.NoError(t, err)
	require.Equal(t, "zeocache", d.Layout.Name())
	_, err = Open(filepath.Join(root, "cache"), true)
	require.ErrorContains(t, err, "set shared-blob-dir false")

	d, err = Open(filepath.Join(root, "shared"), true)
	require.NoError(t, err)
	require.Equal(t, "bushy", d.Layout.Name())
	_, err = Open(filepath.Join(root, "shared"), false)
	require.ErrorContains(t, err, "set shared-blob-dir true")

	// A used directory without a marker is ZODB's old lawn layout.
	old := filepath.Join(root, "old")
	require.NoError(t, os.MkdirAll(filepath.Join(old, "0x01"), 0o755))
	d, err = Open(old, true)
	require.NoError(t, err)
	require.Equal(t, "lawn", d.Layout.Name())
}

func TestFetchDownloadsOnceAndAtomically(t *testing.T) {
	d, err := Open(t.TempDir(), false)
	require.NoError(t, err)
	data := bytes.Repeat([]byte("blob"), 1<<18)
	var downloads atomic.Int32
	download := func(w io.Writer) (bool, error) {
		downloads.Add(1)
		for i := 0; i < len(data); i += 4096 {
			if _, err := w.Write(data[i : i+4096]); err != nil {
				return false, err
			}
			// A reader that looked now must not see a partial file.
			if _, err := os.Stat(d.Path(7, 9)); err == nil {
				return false, errors.New("the file is visible before it is whole")
			}
		}
		return true, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			path, _, err := d.Fetch(7, 9, true, download)
			if err == nil {
				var got []byte
				if got, err = os.ReadFile(path); err == nil && !bytes.Equal(got, data) {
					err = fmt.Errorf("read %d bytes, want %d", len(got), len(data))
				}
			}
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		require.NoError(t, err)
	}
	require.Equal(t, int32(1), downloads.Load())
}

func TestFetchOfAMissingOrFailedBlobLeavesNothing(t *testing.T) {
	for _, overlap := range []bool{true, false} {
		d, err := Open(t.TempDir(), false)
		require.NoError(t, err)
		_, _, err = d.Fetch(1, 2, overlap, func(io.Writer) (bool, error) { return false, nil })
		require.ErrorIs(t, err, ErrNotFound)
		_, _, err = d.Fetch(1, 2, overlap, func(w io.Writer) (bool, error) {
			w.Write([]byte("half"))
			return false, errors.New("connection lost")
		})
		require.ErrorContains(t, err, "connection lost")
		entries, err := os.ReadDir(filepath.Join(d.Root, d.Layout.Dir(1)))
		require.NoError(t, err)
		for _, e := range entries {
			require.Equal(t, lockName, e.Name(), "a failed download left a file (overlap %v)", overlap)
		}
	}
}

// The cache's file may be created while the download runs: when it cannot
// be, the download's writes fail, Fetch names the file's error (not what
// the download made of it), and nothing is left; an empty blob still gets
// its file.
func TestFetchReportsAFileThatCannotBeCreated(t *testing.T) {
	for _, overlap := range []bool{true, false} {
		d, err := Open(t.TempDir(), false)
		require.NoError(t, err)
		require.NoError(t, os.MkdirAll(d.Path(3, 4)+".tmp", 0o755)) // the download's name is taken
		var writeErr error
		_, _, err = d.Fetch(3, 4, overlap, func(w io.Writer) (bool, error) {
			_, writeErr = w.Write([]byte("data"))
			return writeErr == nil, errors.New("read failed")
		})
		require.ErrorIs(t, writeErr, syscall.EISDIR)
		require.ErrorIs(t, err, syscall.EISDIR)
		require.ErrorContains(t, err, "blob cache")
		_, err = os.Stat(d.Path(3, 4))
		require.ErrorIs(t, err, os.ErrNotExist)

		path, n, err := d.Fetch(5, 6, overlap, func(io.Writer) (bool, error) { return true, nil })
		require.NoError(t, err)
		require.Zero(t, n)
		st, err := os.Stat(path)
		require.NoError(t, err)
		require.Zero(t, st.Size())
	}
}

func fill(t *testing.T, d *Dir, n int, size int) []string {
	var paths []string
	for i := range n {
		path, _, err := d.Fetch(uint64(i), 1, true, func(w io.Writer) (bool, error) {
			_, err := w.Write(make([]byte, size))
			return true, err
		})
		require.NoError(t, err)
		// Distinct access times, oldest first.
		at := time.Now().Add(time.Duration(i-n) * time.Minute)
		require.NoError(t, os.Chtimes(path, at, at))
		paths = append(paths, path)
	}
	return paths
}

func TestPruneRemovesTheLeastRecentlyUsedAndSparesFilesInUse(t *testing.T) {
	d, err := Open(t.TempDir(), false)
	require.NoError(t, err)
	paths := fill(t, d, 10, 1000)
	// The oldest file is open for reading, with the shared lock readers take.
	f, err := os.Open(paths[0])
	require.NoError(t, err)
	defer f.Close()
	require.NoError(t, syscall.Flock(int(f.Fd()), syscall.LOCK_SH))

	res, err := Prune(d.Root, 4000)
	require.NoError(t, err)
	require.LessOrEqual(t, res.Size, int64(4000))
	require.Equal(t, 1, res.Skipped)
	require.FileExists(t, paths[0], "a file in use was removed")
	for _, p := range paths[1:7] {
		require.NoFileExists(t, p)
	}
	for _, p := range paths[7:] {
		require.FileExists(t, p, "a recently used file was removed before older ones")
	}
}

func TestPruneRemovesKilledDownloads(t *testing.T) {
	d, err := Open(t.TempDir(), false)
	require.NoError(t, err)
	fill(t, d, 1, 10)
	left := d.Path(3, 4) + ".tmp"
	require.NoError(t, os.MkdirAll(filepath.Dir(left), 0o755))
	require.NoError(t, os.WriteFile(left, []byte("half"), 0o644))
	_, err = Prune(d.Root, 1<<20)
	require.NoError(t, err)
	require.FileExists(t, left, "a download may be running")
	old := time.Now().Add(-2 * time.Hour)
	require.NoError(t, os.Chtimes(left, old, old))
	_, err = Prune(d.Root, 1<<20)
	require.NoError(t, err)
	require.NoFileExists(t, left)
}

func TestPruneRefusesASharedDirectory(t *testing.T) {
	d, err := Open(t.TempDir(), true)
	require.NoError(t, err)
	_, err = Prune(d.Root, 0)
	require.ErrorContains(t, err, "not a blob cache")
}

func TestMonitorPrunesAfterItsShareIsAdded(t *testing.T) {
	d, err := Open(t.TempDir(), false)
	require.NoError(t, err)
	fill(t, d, 20, 1000)
	m := NewMonitor(d.Root, 10000, 10, nil, t.Logf)
	m.Wait() // the check at start brings it to 9000
	_, size, err := scan(d.Root)
	require.NoError(t, err)
	require.LessOrEqual(t, size, int64(9000))
	fill(t, d, 5, 1000)
	m.Added(5000)
	m.Wait()
	_, size, err = scan(d.Root)
	require.NoError(t, err)
	require.LessOrEqual(t, size, int64(9000))
}

func TestStageAndInstall(t *testing.T) {
	d, err := Open(t.TempDir(), true)
	require.NoError(t, err)
	src := filepath.Join(t.TempDir(), "upload")
	require.NoError(t, os.WriteFile(src, []byte("data"), 0o644))
	staged, err := d.Stage(src, 5)
	require.NoError(t, err)
	require.NoFileExists(t, src, "the storage takes the file over")
	path, err := d.Install(staged, 5, 6)
	require.NoError(t, err)
	require.Equal(t, d.Path(5, 6), path)
	st, err := os.Stat(path)
	require.NoError(t, err)
	require.Zero(t, st.Mode().Perm()&0o222, "a committed blob file is writable")
	got, ok := Lookup(d.Root, 5, 6)
	require.True(t, ok)
	require.Equal(t, path, got)
	d.Remove(5, 6)
	require.NoFileExists(t, path)
	require.NoDirExists(t, filepath.Join(d.Root, d.Layout.Dir(5)), "an emptied oid directory stays")

	_, err = d.Stage(filepath.Join(t.TempDir(), "missing"), 5)
	require.ErrorContains(t, err, "no such file")
}

func TestOpenRemovesStaleStagedFiles(t *testing.T) {
	root := t.TempDir()
	d, err := Open(root, false)
	require.NoError(t, err)
	old := time.Now().Add(-48 * time.Hour)
	for _, name := range []string{"staged-abc", "undo-1-2", "savepoint-x", "fresh"} {
		path := filepath.Join(d.Temp, name)
		require.NoError(t, os.WriteFile(path, []byte("x"), 0o644))
		if name != "fresh" {
			require.NoError(t, os.Chtimes(path, old, old))
		}
	}
	require.NoError(t, os.WriteFile(filepath.Join(d.Temp, "staged-new"), []byte("x"), 0o644))
	_, err = Open(root, false)
	require.NoError(t, err)
	entries, err := os.ReadDir(d.Temp)
	require.NoError(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	require.ElementsMatch(t, []string{"savepoint-x", "fresh", "staged-new"}, names,
		"only GoRelStorage's own files older than a day go")
}

// Prepare makes each directory once, with its lock file, and skips one it
// cannot make: Install reports that one.
func TestPrepareMakesTheDirectoriesInstallUses(t *testing.T) {
	d, err := Open(t.TempDir(), false)
	require.NoError(t, err)
	blocked := uint64(5) // a file where its directory goes
	require.NoError(t, os.WriteFile(filepath.Join(d.Root, d.Layout.Dir(blocked)), nil, 0o644))
	d.Prepare([]uint64{1, 1 + cacheBuckets, 2, blocked})()
	for _, oid := range []uint64{1, 2} {
		require.FileExists(t, filepath.Join(d.Root, d.Layout.Dir(oid), lockName))
	}
	src := filepath.Join(d.Temp, "staged")
	require.NoError(t, os.WriteFile(src, []byte("x"), 0o644))
	path, err := d.Install(src, 1+cacheBuckets, 9)
	require.NoError(t, err)
	require.Equal(t, filepath.Join(d.Root, d.Layout.Dir(1)), filepath.Dir(path))
	require.NoError(t, os.WriteFile(src, []byte("y"), 0o644))
	_, err = d.Install(src, blocked, 9)
	require.ErrorIs(t, err, syscall.ENOTDIR)
}
