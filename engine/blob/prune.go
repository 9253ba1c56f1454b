// Keeping the blob cache within blob-cache-size: once a process has
// downloaded blob-cache-size-check percent of the limit, the least recently
// used files go until the cache is back at the limit less that share, as
// RelStorage does. One pruner at a time per directory (check_size.lock,
// RelStorage's name, so its processes and ours take turns); a file being
// downloaded (its directory is locked) or read (a reader holds a shared
// flock on it) is skipped.

package blob

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

var timeNow = time.Now

var bucketName = regexp.MustCompile(`^\d+$`)

// PruneResult is what one pruning pass found and did.
type PruneResult struct {
	Locked   bool  // another pruner held the directory: nothing was done
	Size     int64 // bytes of blob files left
	Removed  int   // files removed
	Skipped  int   // files in use, left in place
	Duration time.Duration
}

type cachedFile struct {
	path  string
	size  int64
	atime int64
}

// Prune removes the least recently used files of the cache at root until
// it holds at most target bytes.
func Prune(root string, target int64) (PruneResult, error) {
	start := timeNow()
	var res PruneResult
	name, err := readMarker(filepath.Join(root, markerFile))
	if err != nil {
		return res, err
	}
	if name != "zeocache" {
		// Never prune a directory holding the only copy of its blobs.
		return res, errors.New("blob cache " + root + ": not a blob cache (layout " + name + "), refusing to prune")
	}
	l, err := lock(filepath.Join(root, "check_size.lock"), false)
	if errors.Is(err, errLocked) {
		time.Sleep(time.Second)
		l, err = lock(filepath.Join(root, "check_size.lock"), false)
	}
	if errors.Is(err, errLocked) {
		res.Locked = true
		return res, nil
	}
	if err != nil {
		return res, err
	}
	defer l.Close()
	// A second pass picks up what was downloaded during the first; files in
	// use can keep the cache above target, so it stops there.
	for pass := 0; pass < 2; pass++ {
		files, size, err := scan(root)
		if err != nil {
			return res, err
		}
		res.Size = size
		if size <= target {
			break
		}
		sort.Slice(files, func(i, j int) bool { return files[i].atime < files[j].atime })
		for _, f := range files {
			if res.Size <= target {
				break
			}
			if freed := removeUnused(f.path); freed > 0 || !exists(f.path) {
				res.Size -= f.size
				res.Removed++
			} else {
				res.Skipped++
			}
		}
	}
	res.Duration = time.Since(start)
	return res, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// scan lists the blob files of a cache directory and their total size.
func scan(root string) ([]cachedFile, int64, error) {
	buckets, err := os.ReadDir(root)
	if err != nil {
		return nil, 0, err
	}
	var files []cachedFile
	var total int64
	for _, b := range buckets {
		if !b.IsDir() || !bucketName.MatchString(b.Name()) {
			continue
		}
		dir := filepath.Join(root, b.Name())
		entries, err := os.ReadDir(dir)
		if err != nil {
			continue // removed meanwhile
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), Suffix+".tmp") {
				removeStaleDownload(filepath.Join(dir, e.Name()))
				continue
			}
			if !strings.HasSuffix(e.Name(), Suffix) {
				continue
			}
			path := filepath.Join(dir, e.Name())
			var st syscall.Stat_t
			if syscall.Stat(path, &st) != nil {
				continue
			}
			files = append(files, cachedFile{path: path, size: st.Size, atime: st.Atim.Nano()})
			total += st.Size
		}
	}
	return files, total, nil
}

// removeStaleDownload removes what a download killed midway left, once it
// is an hour old and no download holds its directory.
func removeStaleDownload(path string) {
	st, err := os.Stat(path)
	if err != nil || timeNow().Sub(st.ModTime()) < time.Hour {
		return
	}
	l, err := lock(filepath.Join(filepath.Dir(path), lockName), false)
	if err != nil {
		return
	}
	defer l.Close()
	os.Remove(path)
}

// removeUnused deletes a cached blob file unless it is being downloaded or
// read, and returns the bytes freed.
func removeUnused(path string) int64 {
	dirLock, err := lock(filepath.Join(filepath.Dir(path), lockName), false)
	if err != nil {
		return 0
	}
	defer dirLock.Close()
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	// Readers hold a shared flock while the file is open.
	if flock(f, syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return 0
	}
	st, err := f.Stat()
	if err != nil || os.Remove(path) != nil {
		return 0
	}
	return st.Size()
}

// Monitor counts what a process adds to one cache directory and prunes it
// in the background when blob-cache-size-check percent of the limit was
// added. It is shared by every instance of a storage.
type Monitor struct {
	root      string
	target    int64    // prune down to this
	threshold int64    // bytes added between checks
	command   []string // run as a separate process (blob-cache-size-check-external), else in a goroutine
	logf      func(format string, args ...any)

	mu      sync.Mutex
	added   int64
	running bool
	again   bool
	idle    *sync.Cond
}

// NewMonitor starts watching root, limited to limit bytes, checking every
// checkPercent percent of it; it prunes once at start, as RelStorage does.
// command, when set, is run with the directory and the target size as its
// last two arguments instead of pruning in this process.
func NewMonitor(root string, limit int64, checkPercent float64, command []string, logf func(string, ...any)) *Monitor {
	threshold := int64(float64(limit) * checkPercent / 100)
	m := &Monitor{root: root, target: max(limit-threshold, 0), threshold: max(threshold, 1),
		command: command, logf: logf}
	m.idle = sync.NewCond(&m.mu)
	m.mu.Lock()
	m.start()
	m.mu.Unlock()
	return m
}

// Added records n bytes added to the cache.
func (m *Monitor) Added(n int64) {
	if m == nil || n <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.added += n
	if m.added >= m.threshold {
		m.added = 0
		if m.running {
			m.again = true
			return
		}
		m.start()
	}
}

func (m *Monitor) start() {
	m.running = true
	go m.run()
}

func (m *Monitor) run() {
	for {
		m.pruneOnce()
		m.mu.Lock()
		if !m.again {
			m.running = false
			m.idle.Broadcast()
			m.mu.Unlock()
			return
		}
		m.again = false
		m.mu.Unlock()
	}
}

func (m *Monitor) pruneOnce() {
	if len(m.command) > 0 {
		args := append(append([]string(nil), m.command[1:]...), m.root, strconv.FormatInt(m.target, 10))
		out, err := exec.Command(m.command[0], args...).CombinedOutput()
		if err != nil {
			m.logf("blob cache %s: the pruning process failed: %v: %s", m.root, err, strings.TrimSpace(string(out)))
		}
		return
	}
	res, err := Prune(m.root, m.target)
	switch {
	case err != nil && !errors.Is(err, fs.ErrNotExist):
		m.logf("blob cache %s: pruning failed: %v", m.root, err)
	case res.Skipped > 0 && res.Size > m.target:
		m.logf("blob cache %s: %d bytes after pruning, above the target of %d: %d files are in use",
			m.root, res.Size, m.target, res.Skipped)
	}
}

// Wait blocks until no pruning runs (tests, and closing the storage).
func (m *Monitor) Wait() {
	if m == nil {
		return
	}
	m.mu.Lock()
	for m.running {
		m.idle.Wait()
	}
	m.mu.Unlock()
}
