package netconn

import (
	"net"
	"sync"
)

// CountRoundTrips wraps a connection so that count is called once per round
// trip: each write that follows a read (or the first write) is a new request
// the client will wait for. Dialects use it in their round-trip tests.
func CountRoundTrips(c net.Conn, count func()) net.Conn {
	return &countingConn{Conn: c, count: count}
}

type countingConn struct {
	net.Conn
	count func()
	mu    sync.Mutex
	sent  bool // written since the last read
}

func (c *countingConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	if !c.sent {
		c.sent = true
		c.count()
	}
	c.mu.Unlock()
	return c.Conn.Write(b)
}

func (c *countingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 {
		c.mu.Lock()
		c.sent = false
		c.mu.Unlock()
	}
	return n, err
}
