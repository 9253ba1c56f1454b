package sqlite

import (
	"os"
	"path/filepath"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Two SQLite libraries in one process (this engine's and Python's sqlite3
// module, which RelStorage uses) break SQLite's file locks: POSIX locks
// belong to the process, and either library closing its descriptor of a
// database file drops the locks the other holds, so both may write at once.
// RelStorage and GoRelStorage processes can share a data-dir; one process
// must not open it through both. When this engine has none of a data-dir's
// connections open, a descriptor of its main.sqlite3 in this process belongs
// to another library, and opening it is refused.

var (
	openDirsMu sync.Mutex
	openDirs   = map[string]int{} // data-dir: dialects of this engine holding it open
)

// claimDir records that a dialect opens dir, refusing when another SQLite
// library in this process has the data-dir's database open.
func claimDir(dir string) error {
	openDirsMu.Lock()
	defer openDirsMu.Unlock()
	if openDirs[dir] == 0 && openElsewhere(filepath.Join(dir, "main.sqlite3")) {
		return adapter.ConfigError("sqlite3: %s is already open in this process through another SQLite "+
			"library (RelStorage?); two SQLite libraries in one process break SQLite's file locks. "+
			"Open the data-dir with GoRelStorage only, or use RelStorage in another process", dir)
	}
	openDirs[dir]++
	return nil
}

// releaseDir records that a dialect closed dir.
func releaseDir(dir string) {
	openDirsMu.Lock()
	defer openDirsMu.Unlock()
	if openDirs[dir]--; openDirs[dir] <= 0 {
		delete(openDirs, dir)
	}
}

// openElsewhere tells whether a descriptor of this process refers to path
// (Linux's /proc; elsewhere nothing can be told and nothing is refused).
func openElsewhere(path string) bool {
	want, err := os.Stat(path)
	if err != nil {
		return false
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return false
	}
	for _, fd := range fds {
		st, err := os.Stat(filepath.Join("/proc/self/fd", fd.Name()))
		if err == nil && os.SameFile(st, want) {
			return true
		}
	}
	return false
}
