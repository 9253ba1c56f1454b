package postgres

import (
	"context"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/replicalist"
)

// pool keeps idle connections of one kind (load or store), last in first out.
type pool struct {
	d      *dialect
	config *pgx.ConnConfig
	// replicas, when set, chooses the server of each new connection;
	// writes makes it pass over servers that refuse writes.
	replicas *replicalist.List
	writes   bool

	mu     sync.Mutex
	idle   []*pgx.Conn
	gens   map[*pgx.Conn]uint64 // with replicas: the generation each connection was opened in
	closed bool
}

// get returns an idle connection or opens one. With replicas, an idle
// connection of an older generation (before a return to the first entry)
// is closed rather than used.
func (p *pool) get(ctx context.Context) (*pgx.Conn, error) {
	var gen uint64
	if p.replicas != nil {
		gen = p.replicas.Generation()
	}
	p.mu.Lock()
	for n := len(p.idle); n > 0; n = len(p.idle) {
		c := p.idle[n-1]
		p.idle = p.idle[:n-1]
		if p.replicas != nil && p.gens[c] != gen {
			delete(p.gens, c)
			p.mu.Unlock()
			c.Close(context.Background())
			p.mu.Lock()
			continue
		}
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	return p.open(ctx)
}

// dial opens a connection outside the pool (the pack's): to the configured
// server, or the replica list's choice.
func (p *pool) dial(ctx context.Context) (*pgx.Conn, error) {
	if p.replicas == nil {
		return p.d.connect(ctx, p.config)
	}
	c, _, err := p.connectReplica(ctx)
	return c, err
}

// open opens a new connection: to the configured server, or the replica
// list's choice.
func (p *pool) open(ctx context.Context) (*pgx.Conn, error) {
	if p.replicas == nil {
		return p.d.connect(ctx, p.config)
	}
	c, gen, err := p.connectReplica(ctx)
	if err != nil {
		return nil, err
	}
	p.mu.Lock()
	if p.gens == nil {
		p.gens = map[*pgx.Conn]uint64{}
	}
	p.gens[c] = gen
	p.mu.Unlock()
	return c, nil
}

// put keeps c for reuse, or closes it when the pool is full or closed or c
// is broken or inside a transaction.
func (p *pool) put(c *pgx.Conn) {
	if c == nil {
		return
	}
	if c.IsClosed() || c.PgConn().TxStatus() != 'I' {
		p.forget(c)
		c.Close(context.Background())
		return
	}
	p.mu.Lock()
	if !p.closed && len(p.idle) < maxIdle {
		p.idle = append(p.idle, c)
		p.mu.Unlock()
		return
	}
	delete(p.gens, c)
	p.mu.Unlock()
	c.Close(context.Background())
}

// forget drops what the pool knows of a connection it will not see again.
func (p *pool) forget(c *pgx.Conn) {
	if p.replicas != nil {
		p.mu.Lock()
		delete(p.gens, c)
		p.mu.Unlock()
	}
}

// close closes the idle connections; connections put back later are closed too.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	conns := p.idle
	p.idle, p.gens = nil, nil
	p.mu.Unlock()
	for _, c := range conns {
		c.Close(context.Background())
	}
}

// session is one pooled connection running one transaction at a time. Its
// BEGIN is not sent on its own: it travels in the same pipelined batch as
// the transaction's first statements.
type session struct {
	pool    *pool
	conn    *pgx.Conn
	begin   string // the BEGIN statement, with its isolation level
	pending bool   // the transaction has begun; BEGIN goes out with the next batch
	inTxn   bool   // BEGIN was sent
}

// send runs the queued statements, BEGIN first when it is pending (after
// ROLLBACK when a transaction is still open), and hands
// the results to read. A transaction's first batch is retried once on a new
// connection when the pooled one turns out dead (the server restarted while
// it sat idle): the server rolled back whatever it had seen of it. Errors of
// the statements pass through classify; a failed reconnection is returned
// as the dialect reported it.
func (s *session) send(ctx context.Context, queue func(*pgx.Batch), read func(pgx.BatchResults) error,
	classify func(error) error) error {
	if s.conn == nil {
		return classify(errors.New("postgresql: the connection was released"))
	}
	for attempt := 0; ; attempt++ {
		begin := s.pending
		end := begin && s.inTxn // a transaction still open ends first
		b := &pgx.Batch{}
		if end {
			b.Queue("ROLLBACK")
		}
		if begin {
			b.Queue(s.begin)
		}
		queue(b)
		br := s.conn.SendBatch(ctx, b)
		var err error
		if end {
			_, err = br.Exec()
		}
		if begin && err == nil {
			_, err = br.Exec()
		}
		if err == nil {
			err = read(br)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		if begin {
			s.pending, s.inTxn = false, true
		}
		if err == nil {
			return nil
		}
		if begin && attempt == 0 && isDisconnect(s.conn, err) {
			s.pool.forget(s.conn)
			s.conn.Close(context.Background())
			s.inTxn = false
			conn, cerr := s.pool.open(ctx)
			if cerr != nil {
				return cerr
			}
			s.conn, s.pending = conn, true
			continue
		}
		return classify(err)
	}
}

// rollback ends the transaction, if any; a connection that cannot roll back is closed.
func (s *session) rollback() {
	s.pending = false
	if s.inTxn {
		s.inTxn = false
		if s.conn != nil && !s.conn.IsClosed() {
			if _, err := s.conn.Exec(context.Background(), "ROLLBACK"); err != nil {
				s.conn.Close(context.Background())
			}
		}
	}
}

// release ends the transaction and returns the connection to its pool.
func (s *session) release() {
	s.rollback()
	s.pool.put(s.conn)
	s.conn = nil
}
