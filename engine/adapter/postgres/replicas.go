package postgres

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// connectReplica opens a connection to the first entry that answers (and,
// for writes, accepts them: a standby not yet promoted is passed over).
func (p *pool) connectReplica(ctx context.Context) (*pgx.Conn, uint64, error) {
	idx, hosts, _, err := p.replicas.Order()
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
			return c, p.replicas.Used(i), nil
		}
		if errors.Is(err, adapter.ErrBadConfig) {
			return nil, 0, err // wrong password or database: the next server would say the same
		}
		errs = append(errs, fmt.Errorf("%s: %w", hosts[i], err))
	}
	return nil, 0, fmt.Errorf("replica-conf %s: no server answered: %w", p.replicas.Path(), errors.Join(errs...))
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
