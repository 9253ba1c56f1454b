package blob

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// markerFile names the file at the root that records the layout, as ZODB's
// FilesystemHelper writes it.
const markerFile = ".layout"

// lockName is the lock file of one layout directory; RelStorage (through
// zc.lockfile) takes flock on the same file, so both exclude each other.
const lockName = ".lock"

// Dir is an open blob directory: a cache of blobs kept in the database, or,
// shared, the only copy of them.
type Dir struct {
	Root   string
	Temp   string // where uncommitted files wait: ZODB's <root>/tmp
	Layout Layout
	Shared bool
}

// Open opens (creating it if needed) the blob directory at root. A cache
// uses RelStorage's "zeocache" layout; a shared directory keeps the layout
// its marker names, else ZODB's choice: "bushy" when new or empty, "lawn"
// when it holds files but no marker.
func Open(root string, shared bool) (*Dir, error) {
	root, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("blob-dir %q: %w", root, err)
	}
	marker := filepath.Join(root, markerFile)
	name, err := readMarker(marker)
	if err != nil {
		return nil, err
	}
	if name == "" {
		name = "zeocache"
		if shared {
			name = "bushy"
			if used, err := hasVisibleFiles(root); err != nil {
				return nil, err
			} else if used {
				name = "lawn"
			}
		}
	}
	layout, ok := layouts[name]
	switch {
	case !ok:
		return nil, fmt.Errorf("blob-dir %s: its %s file names an unknown layout %q", root, markerFile, name)
	case shared && name == "zeocache":
		return nil, fmt.Errorf("blob-dir %s is a cache of blobs stored in the database (layout zeocache), "+
			"not a shared blob directory: set shared-blob-dir false, or name another directory", root)
	case !shared && name != "zeocache":
		return nil, fmt.Errorf("blob-dir %s is a shared blob directory (layout %s) holding the only copy of "+
			"its blobs: set shared-blob-dir true, or name another directory for the cache", root, name)
	}
	d := &Dir{Root: root, Temp: filepath.Join(root, "tmp"), Layout: layout, Shared: shared}
	if err := os.MkdirAll(d.Temp, 0o755); err != nil {
		return nil, fmt.Errorf("blob-dir: %w", err)
	}
	if err := writeMarker(marker, name); err != nil {
		return nil, err
	}
	d.removeStale(timeNow().Add(-staleAfter))
	return d, nil
}

// staleAfter is how old a file this package left in tmp must be to be
// removed at open: no transaction holds one that long, so its process died.
const staleAfter = 24 * time.Hour

// removeStale removes what crashed processes left in the temporary
// directory: files staged for a commit, by GoRelStorage's names only (ZODB
// keeps its own uncommitted files there too).
func (d *Dir) removeStale(before time.Time) {
	entries, err := os.ReadDir(d.Temp)
	if err != nil {
		return
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, "staged-") && !strings.HasPrefix(name, "undo-") {
			continue
		}
		if info, err := e.Info(); err == nil && info.Mode().IsRegular() && info.ModTime().Before(before) {
			os.Remove(filepath.Join(d.Temp, name))
		}
	}
}

func readMarker(path string) (string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("blob-dir: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// writeMarker writes the layout's name once; a directory opened by several
// processes at once gets the same name from each.
func writeMarker(path, name string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".layout-*")
	if err != nil {
		return fmt.Errorf("blob-dir: %w", err)
	}
	_, err = tmp.WriteString(name)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("blob-dir: %w", err)
	}
	return nil
}

func hasVisibleFiles(root string) (bool, error) {
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("blob-dir: %w", err)
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			return true, nil
		}
	}
	return false, nil
}

// Path is the absolute path of oid's blob committed by tid.
func (d *Dir) Path(oid, tid uint64) string {
	return filepath.Join(d.Root, d.Layout.File(oid, tid))
}

// Cached returns the path of oid's blob of tid when the file is on disk,
// marking it used, without waiting for anything.
func (d *Dir) Cached(oid, tid uint64) (string, bool) {
	path := d.Path(oid, tid)
	return path, touch(path)
}

// Exists tells whether oid's blob of tid is on disk.
func (d *Dir) Exists(oid, tid uint64) bool {
	_, err := os.Stat(d.Path(oid, tid))
	return err == nil
}

// lockDir takes the lock of oid's directory, creating the directory.
func (d *Dir) lockDir(oid uint64) (*os.File, error) {
	dir := filepath.Join(d.Root, d.Layout.Dir(oid))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	return lock(filepath.Join(dir, lockName), true)
}

// Prepare makes the directories of oids' files, with their lock files, in
// another goroutine; the function returned waits for it to end. A commit's
// vote prepares the directories its blobs go to at finish while the files
// upload: after many files were deleted a directory and a lock file cost
// ext4 hundreds of microseconds each (1,000 blobs of 50 kB into a new cache
// on PostgreSQL: tpc_finish 0.11-0.67 s, nearly all of it making them,
// against 0.03-0.05 s prepared; the whole commit 0.95-1.46 -> 0.90-0.95 s).
// Failures are left to Install, which meets them again.
func (d *Dir) Prepare(oids []uint64) (wait func()) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		made := map[string]bool{}
		for _, oid := range oids {
			dir := filepath.Join(d.Root, d.Layout.Dir(oid))
			if made[dir] {
				continue
			}
			made[dir] = true
			if os.MkdirAll(dir, 0o755) != nil {
				continue
			}
			if f, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o644); err == nil {
				f.Close()
			}
		}
	}()
	return func() { <-done }
}

// lock takes an exclusive flock on path (creating it); without wait it
// fails at once with errLocked when another holder has it.
func lock(path string, wait bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	how := syscall.LOCK_EX
	if !wait {
		how |= syscall.LOCK_NB
	}
	if err := flock(f, how); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, errLocked
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

var errLocked = errors.New("locked by another process or thread")

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// ErrNotFound is returned by Fetch when the database has no such blob.
var ErrNotFound = errors.New("no such blob")

// Fetch returns the path of oid's blob committed by tid, downloading it into
// the cache with download when it is missing. Several threads or processes
// asking at once download it once: the directory's lock is held while one
// writes it to a temporary name, and the file appears whole by a rename.
// With overlap, that file is created while download waits for a server's
// reply (see asyncFile); without, before download starts. n is the number
// of bytes downloaded (0 when the file was there).
func (d *Dir) Fetch(oid, tid uint64, overlap bool, download func(w io.Writer) (found bool, err error)) (path string, n int64, err error) {
	path, ok := d.Cached(oid, tid)
	if ok {
		return path, 0, nil
	}
	l, err := d.lockDir(oid)
	if err != nil {
		return "", 0, fmt.Errorf("blob cache: %w", err)
	}
	defer l.Close()
	if touch(path) { // another process fetched it while this one waited
		return path, 0, nil
	}
	tmp := path + ".tmp"
	f := createAsync(tmp, overlap)
	found, err := download(f)
	if cerr := f.Close(); cerr != nil {
		err = fmt.Errorf("blob cache: %w", cerr) // the file's own failure, whatever the download made of it
	}
	if err == nil && !found {
		err = ErrNotFound
	}
	if err == nil {
		err = syscall.Rename(tmp, path) // os.Rename would first check that path is no directory
	}
	if err != nil {
		os.Remove(tmp)
		return "", 0, err
	}
	return path, f.n, nil
}

// asyncFile is a file being created, in another goroutine while the download
// asks a database server for the blob: creating a file costs ext4 hundreds
// of microseconds when many were deleted shortly before (as a pruned cache's
// were), about as long as a small blob's round trip, and the two overlap
// (PostgreSQL, 1,000 blobs of 50 kB read cold: 1.24-2.73 s before, 0.76-1.71
// after; MariaDB 0.42-1.10 before, 0.30-0.43 after). An embedded database's
// read is shorter than the hand-over between threads (SQLite: 10-20% slower
// so): the file is created first. Writes wait for the file; they and Close
// report its creation's failure.
type asyncFile struct {
	created chan struct{}
	f       *os.File
	err     error // the creation's, then the first write's or close's
	n       int64 // bytes written
}

func createAsync(path string, overlap bool) *asyncFile {
	a := &asyncFile{created: make(chan struct{})}
	create := func() {
		defer close(a.created)
		a.f, a.err = os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	}
	if overlap {
		go create()
	} else {
		create()
	}
	return a
}

func (a *asyncFile) Write(p []byte) (int, error) {
	<-a.created
	if a.err != nil {
		return 0, a.err
	}
	n, err := a.f.Write(p)
	a.n += int64(n)
	if err != nil {
		a.err = err
	}
	return n, err
}

// Close waits for the creation and closes the file: the first error the
// file met, nil when none.
func (a *asyncFile) Close() error {
	<-a.created
	if a.f != nil {
		if err := a.f.Close(); a.err == nil {
			a.err = err
		}
		a.f = nil
	}
	return a.err
}

// touch marks path as used now (the pruner removes the least recently used
// first) and tells whether it exists. A file used in the last minute is left
// as it is: that precision is enough for pruning, and a hit then costs no write.
func touch(path string) bool {
	var st syscall.Stat_t
	if syscall.Stat(path, &st) != nil {
		return false
	}
	now := timeNow()
	if now.Sub(time.Unix(st.Atim.Unix())) > time.Minute {
		_ = os.Chtimes(path, now, time.Unix(st.Mtim.Unix()))
	}
	return true
}

// Stage takes over the file a transaction stores for oid (ZODB hands it to
// the storage): it waits for the commit in the temporary directory, moved
// there (or copied, from another file system) unless it is there already.
func (d *Dir) Stage(src string, oid uint64) (string, error) {
	st, err := os.Stat(src)
	if err != nil {
		return "", fmt.Errorf("blob file for oid %d: %w", oid, err)
	}
	if !st.Mode().IsRegular() {
		return "", fmt.Errorf("blob file for oid %d: %s is not a regular file", oid, src)
	}
	if abs, err := filepath.Abs(src); err == nil && filepath.Dir(abs) == d.Temp {
		return abs, nil
	}
	f, err := os.CreateTemp(d.Temp, fmt.Sprintf("staged-%d-*", oid))
	if err != nil {
		return "", fmt.Errorf("blob file for oid %d: %w", oid, err)
	}
	dst := f.Name()
	f.Close()
	if err := moveFile(src, dst); err != nil {
		os.Remove(dst)
		return "", fmt.Errorf("blob file for oid %d: %w", oid, err)
	}
	return dst, nil
}

// moveFile renames src to dst, or copies it and removes src when they are on
// different file systems.
func moveFile(src, dst string) error {
	err := os.Rename(src, dst)
	if !errors.Is(err, syscall.EXDEV) {
		return err
	}
	if err := copyFile(src, dst); err != nil {
		return err
	}
	return os.Remove(src)
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in) // copy_file_range or sendfile: no user-space buffer
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// Install puts a staged (or any) file in place as oid's blob of tid, under
// the directory's lock, read-only as ZODB leaves committed blobs.
func (d *Dir) Install(src string, oid, tid uint64) (string, error) {
	l, err := d.lockDir(oid)
	if err != nil {
		return "", err
	}
	defer l.Close()
	dst := d.Path(oid, tid)
	if err := moveFile(src, dst); err != nil {
		return "", err
	}
	// ZODB's set_not_writable: no write permission, read permission as the directory's.
	if st, err := os.Stat(dst); err == nil {
		perm := st.Mode().Perm() &^ 0o222
		if dirSt, err := os.Stat(filepath.Dir(dst)); err == nil {
			perm |= dirSt.Mode().Perm() & 0o444
		}
		_ = os.Chmod(dst, perm)
	}
	return dst, nil
}

// CopyRevision copies oid's blob of tid `from` to tid `to` (undo in a shared
// directory brings an old revision back under a new tid); found is false
// when there is no file to copy.
func (d *Dir) CopyRevision(oid, from, to uint64) (path string, found bool, err error) {
	src := d.Path(oid, from)
	if _, err := os.Stat(src); errors.Is(err, fs.ErrNotExist) {
		return "", false, nil
	}
	f, err := os.CreateTemp(d.Temp, fmt.Sprintf("undo-%d-*", oid))
	if err != nil {
		return "", false, err
	}
	tmp := f.Name()
	f.Close()
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return "", false, err
	}
	path, err = d.Install(tmp, oid, to)
	if err != nil {
		os.Remove(tmp)
		return "", false, err
	}
	return path, true, nil
}

// Remove deletes oid's blob of tid (a commit that did not land), and its
// directory when nothing else is left in it.
func (d *Dir) Remove(oid, tid uint64) {
	path := d.Path(oid, tid)
	if os.Remove(path) == nil {
		d.removeEmptyDirs(filepath.Dir(path))
	}
}

// removeEmptyDirs removes dir and its empty parents below the root, leaving
// any that holds something other than its lock file.
func (d *Dir) removeEmptyDirs(dir string) {
	for dir != d.Root && strings.HasPrefix(dir, d.Root+string(filepath.Separator)) {
		entries, err := os.ReadDir(dir)
		if err != nil {
			return
		}
		for _, e := range entries {
			if e.Name() != lockName {
				return
			}
		}
		os.Remove(filepath.Join(dir, lockName))
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}

// RemoveOlder deletes the cached files of oid's blob older than tid that no
// one is reading (a history-free database keeps only the newest), and
// returns the bytes freed. Cache layout only.
func (d *Dir) RemoveOlder(oid, tid uint64) int64 {
	dir := filepath.Join(d.Root, d.Layout.Dir(oid))
	prefix := fmt.Sprintf("%d.", oid/cacheBuckets)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	keep := filepath.Base(d.Layout.File(oid, tid))
	var freed int64
	for _, e := range entries {
		name := e.Name()
		// The tid is 16 hex digits: names compare as tids do.
		if strings.HasPrefix(name, prefix) && strings.HasSuffix(name, Suffix) && len(name) == len(keep) && name < keep {
			freed += removeUnused(filepath.Join(dir, name))
		}
	}
	return freed
}

// Lookup finds oid's blob of tid in the blob directory at root without
// opening it as a storage does (nothing is created): a closed storage still
// serves the files it has, as ZODB's storages do.
func Lookup(root string, oid, tid uint64) (string, bool) {
	name, err := readMarker(filepath.Join(root, markerFile))
	layout, ok := layouts[name]
	if err != nil || !ok {
		return "", false
	}
	path := filepath.Join(root, layout.File(oid, tid))
	return path, touch(path)
}

// RemoveObject deletes every file of oid's blob (a pack removed the object).
func (d *Dir) RemoveObject(oid uint64) {
	if d.Layout.Name() == "zeocache" {
		d.RemoveOlder(oid, math.MaxUint64)
		return
	}
	dir := filepath.Join(d.Root, d.Layout.Dir(oid))
	if os.RemoveAll(dir) == nil {
		d.removeEmptyDirs(filepath.Dir(dir))
	}
}

// RemoveAll removes every blob file, keeping the directory itself, its
// layout marker, lock files and tmp (files of transactions not yet
// committed).
func (d *Dir) RemoveAll() error {
	entries, err := os.ReadDir(d.Root)
	if err != nil {
		return fmt.Errorf("blob-dir %s: %w", d.Root, err)
	}
	for _, e := range entries {
		if !e.IsDir() || filepath.Join(d.Root, e.Name()) == d.Temp {
			continue
		}
		if err := os.RemoveAll(filepath.Join(d.Root, e.Name())); err != nil {
			return fmt.Errorf("blob-dir %s: %w", d.Root, err)
		}
	}
	return nil
}
