package postgres

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// replicas is RelStorage's replica-conf (or ro-replica-conf) for one pool: a
// file of host[:port] lines (blank lines and # comments skipped). New
// connections try the entry in use first, then the ones after it, then the
// ones before; the entry in use moves to the one that answered. replica-timeout
// after leaving the first entry, new connections try the first again, and
// the pool's idle connections to another entry are dropped. The file is read
// again when it changes.
type replicas struct {
	path    string
	timeout time.Duration

	mu      sync.Mutex
	stamp   string   // the file's size and modification time when read
	hosts   []string // host:port
	current int
	left    time.Time // when current left entry 0
	gen     uint64    // counts the returns to entry 0: connections of an older one are dropped
}

func newReplicas(path string, timeout time.Duration, defaultPort uint16) (*replicas, error) {
	r := &replicas{path: path, timeout: timeout}
	if err := r.reload(defaultPort); err != nil {
		return nil, err
	}
	return r, nil
}

// reload reads the file when it changed since the last read; r.mu is held,
// or r is new.
func (r *replicas) reload(defaultPort uint16) error {
	st, err := os.Stat(r.path)
	if err != nil {
		return adapter.ConfigError("replica-conf %s: %v", r.path, err)
	}
	stamp := fmt.Sprint(st.Size(), st.ModTime().UnixNano())
	if stamp == r.stamp {
		return nil
	}
	f, err := os.Open(r.path)
	if err != nil {
		return adapter.ConfigError("replica-conf %s: %v", r.path, err)
	}
	defer f.Close()
	var hosts []string
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		host, port := line, strconv.Itoa(int(defaultPort))
		if h, p, err := net.SplitHostPort(line); err == nil {
			host, port = h, p
		}
		if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" {
			return adapter.ConfigError("replica-conf %s line %d: %q is not host[:port]", r.path, n, line)
		}
		hosts = append(hosts, net.JoinHostPort(host, port))
	}
	if err := sc.Err(); err != nil {
		return adapter.ConfigError("replica-conf %s: %v", r.path, err)
	}
	if len(hosts) == 0 {
		return adapter.ConfigError("replica-conf %s names no server (host[:port] lines)", r.path)
	}
	if r.current >= len(hosts) || (len(r.hosts) > 0 && r.hosts[0] != hosts[0]) {
		r.current, r.gen = 0, r.gen+1
	}
	r.stamp, r.hosts = stamp, hosts
	return nil
}

// order returns the entries in the order to try and the generation.
func (r *replicas) order(defaultPort uint16) ([]int, []string, uint64, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.reload(defaultPort); err != nil {
		return nil, nil, 0, err
	}
	r.expire()
	idx := make([]int, len(r.hosts))
	for k := range idx {
		idx[k] = (r.current + k) % len(r.hosts)
	}
	return idx, r.hosts, r.gen, nil
}

// expire goes back to entry 0 after replica-timeout; r.mu is held.
func (r *replicas) expire() {
	if r.current != 0 && r.timeout > 0 && time.Since(r.left) >= r.timeout {
		r.current, r.gen = 0, r.gen+1
	}
}

// generation is the current generation (after expiry).
func (r *replicas) generation() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.expire()
	return r.gen
}

// used records that entry i answered, and returns the generation.
func (r *replicas) used(i int) uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	if i != r.current {
		if r.current == 0 {
			r.left = time.Now()
		}
		r.current = i
		if i == 0 {
			r.gen++
		}
	}
	return r.gen
}

// connectReplica opens a connection to the first entry that answers (and,
// for writes, accepts them: a standby not yet promoted is passed over).
func (p *pool) connectReplica(ctx context.Context) (*pgx.Conn, uint64, error) {
	idx, hosts, _, err := p.replicas.order(p.config.Port)
	if err != nil {
		return nil, 0, err
	}
	var errs []error
	for _, i := range idx {
		host, port, _ := net.SplitHostPort(hosts[i])
		n, _ := strconv.ParseUint(port, 10, 16)
		cfg := aimed(p.config, host, uint16(n))
		if p.writes {
			cfg.ValidateConnect = pgconn.ValidateConnectTargetSessionAttrsReadWrite
		}
		c, err := p.d.connect(ctx, cfg)
		if err == nil {
			return c, p.replicas.used(i), nil
		}
		if errors.Is(err, adapter.ErrBadConfig) {
			return nil, 0, err // wrong password or database: the next server would say the same
		}
		errs = append(errs, fmt.Errorf("%s: %w", hosts[i], err))
	}
	return nil, 0, fmt.Errorf("replica-conf %s: no server answered: %w", p.replicas.path, errors.Join(errs...))
}

// serverConfig is cfg aimed at the server c is connected to, whichever of
// several it is (replica-conf, a multi-host DSN): a lost commit's outcome
// can only be asked of that server.
func serverConfig(cfg *pgx.ConnConfig, c *pgx.Conn) *pgx.ConnConfig {
	out := cfg.Copy()
	if a, ok := c.PgConn().Conn().RemoteAddr().(*net.TCPAddr); ok {
		out = aimed(cfg, a.IP.String(), uint16(a.Port))
	}
	out.ValidateConnect = nil
	return out
}

// aimed is cfg for one server: its host and port, and the TLS fallbacks of
// sslmode (prefer: TLS, then plain) kept for that server only.
func aimed(cfg *pgx.ConnConfig, host string, port uint16) *pgx.ConnConfig {
	out := cfg.Copy()
	out.Host, out.Port = host, port
	seen := map[bool]bool{out.TLSConfig != nil: true}
	out.Fallbacks = nil
	for _, fb := range cfg.Fallbacks {
		if seen[fb.TLSConfig != nil] {
			continue
		}
		seen[fb.TLSConfig != nil] = true
		f := *fb
		f.Host, f.Port = host, port
		out.Fallbacks = append(out.Fallbacks, &f)
	}
	return out
}
