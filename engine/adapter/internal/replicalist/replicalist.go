// Package replicalist reads RelStorage's replica-conf and ro-replica-conf
// files and keeps the choice of server they describe, for any dialect: a
// file of entries, one per line (blank lines and # comments skipped), the
// first preferred. New connections try the entry in use first, then the ones
// after it, then the ones before; the entry in use moves to the one that
// answered. replica-timeout after leaving the first entry, new connections
// try the first again, and connections to another entry are dropped when
// next taken from a pool (a new generation). The file is read again when it
// changes.
package replicalist

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// List is one pool's replica list.
type List struct {
	path    string
	timeout time.Duration
	parse   func(line string) (string, error)

	mu      sync.Mutex
	stamp   string   // the file's size and modification time when read
	entries []string // as parse returned them
	current int
	left    time.Time // when current left entry 0
	gen     uint64    // counts the returns to entry 0: connections of an older one are dropped
}

// New reads the file at path; parse turns a line into an entry or says why
// it is not one.
func New(path string, timeout time.Duration, parse func(line string) (string, error)) (*List, error) {
	l := &List{path: path, timeout: timeout, parse: parse}
	if err := l.reload(); err != nil {
		return nil, err
	}
	return l, nil
}

// HostPort is the parser of host[:port] lines (PostgreSQL, MySQL): the
// entry is host:port, defaultPort when the line names none.
func HostPort(defaultPort int) func(string) (string, error) {
	return func(line string) (string, error) {
		host, port := line, strconv.Itoa(defaultPort)
		if h, p, err := net.SplitHostPort(line); err == nil {
			host, port = h, p
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
			return "", fmt.Errorf("%q is not host[:port]", line)
		}
		return net.JoinHostPort(host, port), nil
	}
}

// Path is the file's name, for messages.
func (l *List) Path() string { return l.path }

// reload reads the file when it changed since the last read; l.mu is held,
// or l is new.
func (l *List) reload() error {
	st, err := os.Stat(l.path)
	if err != nil {
		return adapter.ConfigError("replica-conf %s: %v", l.path, err)
	}
	stamp := fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	if stamp == l.stamp {
		return nil
	}
	f, err := os.Open(l.path)
	if err != nil {
		return adapter.ConfigError("replica-conf %s: %v", l.path, err)
	}
	defer f.Close()
	var entries []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		e, err := l.parse(line)
		if err != nil {
			return adapter.ConfigError("replica-conf %s line %d: %v", l.path, n, err)
		}
		entries = append(entries, e)
	}
	if err := sc.Err(); err != nil {
		return adapter.ConfigError("replica-conf %s: %v", l.path, err)
	}
	if len(entries) == 0 {
		return adapter.ConfigError("replica-conf %s names no server", l.path)
	}
	if l.current >= len(entries) || (len(l.entries) > 0 && l.entries[0] != entries[0]) {
		l.current, l.gen = 0, l.gen+1
	}
	l.stamp, l.entries = stamp, entries
	return nil
}

// Order returns the entries' indexes in the order to try, the entries and
// the generation.
func (l *List) Order() ([]int, []string, uint64, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if err := l.reload(); err != nil {
		return nil, nil, 0, err
	}
	l.expire()
	idx := make([]int, len(l.entries))
	for k := range idx {
		idx[k] = (l.current + k) % len(l.entries)
	}
	return idx, l.entries, l.gen, nil
}

// expire goes back to entry 0 after replica-timeout; l.mu is held.
func (l *List) expire() {
	if l.current != 0 && l.timeout > 0 && time.Since(l.left) >= l.timeout {
		l.current, l.gen = 0, l.gen+1
	}
}

// Generation is the current generation (after expiry).
func (l *List) Generation() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.expire()
	return l.gen
}

// Used records that entry i answered, and returns the generation.
func (l *List) Used(i int) uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if i != l.current {
		if l.current == 0 {
			l.left = time.Now()
		}
		l.current = i
		if i == 0 {
			l.gen++
		}
	}
	return l.gen
}
