package tests_go

// A commit whose connection breaks after COMMIT was sent may have landed or
// not. These tests break it at that moment through a TCP proxy between the
// engine and the server, and check that the engine finds out on a new
// connection: a commit that landed is reported committed, one that did not
// is retryable (KindDisconnected), and one that cannot be checked is
// reported unknown with its tid, never retryable.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/dialecttest"
)

// cutMode says what the proxy does to the next exchange once armed.
type cutMode int

const (
	passThrough cutMode = iota
	// dropRequest discards the next chunk a client sends and closes its
	// connection: the server never sees it.
	dropRequest
	// stallRequest discards the next chunk a client sends and closes the
	// client's side only: the server's session stays, idle inside the
	// transaction, as when the network between them is cut.
	stallRequest
	// dropCommitReply forwards everything but discards the first server chunk
	// holding PostgreSQL's COMMIT completion, and closes the connection.
	dropCommitReply
	// dropReplies forwards the next chunk a client sends, discards every reply
	// to it and closes the connection a moment later: the server ran it.
	dropReplies
)

// proxy forwards TCP connections to a server and cuts one when armed.
type proxy struct {
	t      *testing.T
	target string
	ln     net.Listener

	mu    sync.Mutex
	mode  cutMode
	conns []net.Conn
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	p := &proxy{t: t, target: target, ln: ln}
	go p.serve()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *proxy) arm(m cutMode) {
	p.mu.Lock()
	p.mode = m
	p.mu.Unlock()
}

// take returns the armed mode if it is want, disarming it.
func (p *proxy) take(want cutMode) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode != want {
		return false
	}
	p.mode = passThrough
	return true
}

func (p *proxy) close() {
	p.ln.Close()
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
}

func (p *proxy) serve() {
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return
		}
		server, err := net.Dial("tcp", p.target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		var swallow sync.Mutex // held: replies are discarded
		swallowing := false
		go func() { // client -> server
			buf := make([]byte, 1<<16)
			for {
				n, err := client.Read(buf)
				if err != nil {
					server.Close()
					return
				}
				switch {
				case p.take(dropRequest):
					client.Close()
					server.Close()
					return
				case p.take(stallRequest):
					client.Close()
					return
				case p.take(dropReplies):
					swallow.Lock()
					swallowing = true
					swallow.Unlock()
					time.AfterFunc(500*time.Millisecond, func() { client.Close(); server.Close() })
				}
				if _, err := server.Write(buf[:n]); err != nil {
					client.Close()
					return
				}
			}
		}()
		go func() { // server -> client
			buf := make([]byte, 1<<16)
			for {
				n, err := server.Read(buf)
				if err != nil {
					client.Close()
					return
				}
				swallow.Lock()
				drop := swallowing
				swallow.Unlock()
				if !drop && bytes.Contains(buf[:n], []byte("COMMIT\x00")) && p.take(dropCommitReply) {
					client.Close()
					server.Close()
					return
				}
				if drop {
					continue
				}
				if _, err := client.Write(buf[:n]); err != nil {
					server.Close()
					return
				}
			}
		}()
	}
}

// proxiedServer is a server database reached through a proxy.
type proxiedServer struct {
	name     string
	landed   cutMode                       // the cut that loses the reply of a COMMIT the server ran
	options  func(port int) engine.Options // through the proxy on port, or directly for 0
	target   string
	zapFirst func()
}

func proxiedServers(t *testing.T) []proxiedServer {
	var out []proxiedServer
	if dsn, ok := dialecttest.PostgresDSN(""); ok {
		cfg, err := pgx.ParseConfig(dsn)
		require.NoError(t, err)
		out = append(out, proxiedServer{
			name: "postgresql", landed: dropCommitReply,
			target:   net.JoinHostPort(cfg.Host, strconv.Itoa(int(cfg.Port))),
			zapFirst: func() { must(dialecttest.ZapPostgres(dsn)) },
			options: func(port int) engine.Options {
				dsn := dsn
				if port != 0 {
					dsn = fmt.Sprintf("host=127.0.0.1 port=%d user=%s password=%s dbname=%s",
						port, cfg.User, cfg.Password, cfg.Database)
				}
				raw, _ := json.Marshal(map[string]any{"dsn": dsn})
				o := engine.DefaultOptions()
				o.Adapter, o.AdapterOptions = "postgresql", raw
				return o
			},
		})
	}
	if srv, ok := dialecttest.MySQL(""); ok {
		out = append(out, proxiedServer{
			name: "mysql", landed: dropReplies,
			target:   net.JoinHostPort(srv.Host, strconv.Itoa(srv.Port)),
			zapFirst: func() { must(srv.Zap()) },
			options: func(port int) engine.Options {
				opts := srv.Options()
				if port != 0 {
					opts["port"] = port
				}
				raw, _ := json.Marshal(opts)
				o := engine.DefaultOptions()
				o.Adapter, o.AdapterOptions = "mysql", raw
				return o
			},
		})
	}
	if len(out) == 0 {
		t.Skip("no database server configured (scripts/test starts PostgreSQL and MariaDB)")
	}
	return out
}

// commitCut commits state as oid's new revision, arming the proxy between
// the commit's writes and its COMMIT; it returns the tid and FinishCommit's error.
func commitCut(t *testing.T, in *engine.Instance, p *proxy, m cutMode, oid, serial uint64, state []byte) (uint64, error) {
	require.NoError(t, in.Begin(engine.TxnMeta{Description: []byte("cut")}, 0, false))
	require.NoError(t, in.Store(oid, serial, state))
	conflicts, err := in.Vote(ctx)
	require.NoError(t, err)
	require.Empty(t, conflicts)
	tid, err := in.FinishLock(ctx)
	require.NoError(t, err)
	p.arm(m)
	err = in.FinishCommit(ctx)
	p.arm(passThrough)
	return tid, err
}

// current reads oid through a new instance.
func current(t *testing.T, s *engine.Storage, oid uint64) ([]byte, uint64) {
	in := instance(t, s)
	state, tid, err := in.Load(ctx, oid)
	require.NoError(t, err)
	return state, tid
}

func TestCommitOutcomeIsFoundOnANewConnection(t *testing.T) {
	for _, srv := range proxiedServers(t) {
		for _, hp := range []bool{true, false} {
			t.Run(srv.name+"/"+map[bool]string{true: "hp", false: "hf"}[hp], func(t *testing.T) {
				srv.zapFirst()
				p := newProxy(t, srv.target)
				o := srv.options(p.port())
				o.KeepHistory = hp
				s := open(t, o)
				oid, err := s.NewOID(ctx)
				require.NoError(t, err)
				// Every commit goes through a new instance, which never polled:
				// its store connection is the only one talking during COMMIT.
				serial, err := commitCut(t, instance(t, s), p, passThrough, oid, 0, []byte("v1"))
				require.NoError(t, err)

				tid, err := commitCut(t, instance(t, s), p, srv.landed, oid, serial, []byte("v2"))
				require.NoError(t, err, "the server committed; only the reply was lost")
				state, cur := current(t, s, oid)
				require.Equal(t, []byte("v2"), state)
				require.Equal(t, tid, cur)

				_, err = commitCut(t, instance(t, s), p, dropRequest, oid, cur, []byte("v3"))
				require.Equal(t, engine.KindDisconnected, engine.KindOf(err), "%v", err)
				state, _ = current(t, s, oid)
				require.Equal(t, []byte("v2"), state, "a commit reported retryable must not have landed")

				// The server still runs the transaction, holding its locks: the
				// check ends that session (PostgreSQL after 2 s in progress).
				_, err = commitCut(t, instance(t, s), p, stallRequest, oid, cur, []byte("v4"))
				require.Equal(t, engine.KindDisconnected, engine.KindOf(err), "%v", err)
				state, _ = current(t, s, oid)
				require.Equal(t, []byte("v2"), state)
				tid, err = commitCut(t, instance(t, s), p, passThrough, oid, cur, []byte("v5"))
				require.NoError(t, err, "the ended session's locks are gone")
				state, cur = current(t, s, oid)
				require.Equal(t, []byte("v5"), state)
				require.Equal(t, tid, cur)
			})
		}
	}
}

func TestCommitOutcomeThatCannotBeCheckedIsUnknown(t *testing.T) {
	wait := adapter.OutcomeWait
	adapter.OutcomeWait = time.Second
	t.Cleanup(func() { adapter.OutcomeWait = wait })
	for _, srv := range proxiedServers(t) {
		t.Run(srv.name, func(t *testing.T) {
			srv.zapFirst()
			p := newProxy(t, srv.target)
			o := srv.options(p.port())
			s := open(t, o)
			oid, err := s.NewOID(ctx)
			require.NoError(t, err)
			in := instance(t, s)
			require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
			require.NoError(t, in.Store(oid, 0, []byte("v1")))
			_, err = in.Vote(ctx)
			require.NoError(t, err)
			tid, err := in.FinishLock(ctx)
			require.NoError(t, err)
			// The reply is lost and no new connection can reach the server.
			p.ln.Close()
			p.arm(srv.landed)
			err = in.FinishCommit(ctx)
			var e *engine.Error
			require.True(t, errors.As(err, &e), "%v", err)
			require.Equal(t, engine.KindCommitUnknown, e.Kind, "%v", err)
			require.Equal(t, tid, e.Serials[0])
			require.Contains(t, err.Error(), strconv.FormatUint(tid, 10))

			// It had landed: reading directly shows it.
			direct := srv.options(0)
			state, cur := current(t, open(t, direct), oid)
			require.Equal(t, []byte("v1"), state)
			require.Equal(t, tid, cur)
		})
	}
}
