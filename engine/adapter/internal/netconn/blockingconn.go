// Package netconn is what the network dialects (PostgreSQL, MySQL) put under
// their drivers: sockets with blocking descriptors and short polling
// (blocking reads, below), and a round-trip counter for their tests.
package netconn

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
)

// Blocking sockets for the database drivers.
//
// Inside the c-shared library every engine call runs on the thread Python
// called from, a cgo callback locked to its OS thread. When a goroutine
// locked like that waits for a reply on a socket of Go's network poller, the
// reply reaches it through other threads (the locked thread hands off its
// scheduler slot, another thread polls, then hands back): measured 70 us per
// primary-key read on loopback PostgreSQL and MariaDB, where a Go program or
// libpq takes about 25. A socket in blocking mode is woken by the kernel
// directly, as libpq's is. So the dialects connect with Dial below: the
// connection is made the usual way (timeouts, DNS, Unix sockets), then its
// descriptor is taken out of the poller and reads and writes are plain
// blocking system calls (the runtime lets other goroutines run meanwhile).
// A read first polls the socket for up to pollFor: on a virtual machine an
// idle core takes tens of microseconds to wake, longer than a loopback reply
// takes to come (20-40 us per read with polling against 40-70 without). The
// price is the CPU spent polling, yielding the processor between polls.
//
// Deadlines map to SO_RCVTIMEO / SO_SNDTIMEO. They are not used to interrupt
// a read already waiting (the engine passes no cancellable context to the
// drivers); a deadline in the past makes the next read or write time out.

// keepAlive makes a read waiting for a server that vanished (its host down,
// the network cut: nothing closes the socket) fail after about 30 s instead
// of the system's two hours, or Go's default of several minutes: a COMMIT
// whose reply never comes is then checked on a new connection.
var keepAlive = net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 5 * time.Second, Count: 3}

// Dial connects like net.Dialer and returns a connection with a blocking descriptor.
func Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	c, err := (&net.Dialer{KeepAliveConfig: keepAlive}).DialContext(ctx, network, addr)
	if err != nil {
		return nil, err
	}
	return Blocking(c)
}

// Blocking turns a connection from net into one with a blocking descriptor;
// c is closed (its socket lives on in the returned connection).
func Blocking(c net.Conn) (net.Conn, error) {
	defer c.Close()
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("blocking socket: %T has no descriptor", c)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return nil, err
	}
	fd := -1
	var dupErr error
	if err := raw.Control(func(s uintptr) { fd, dupErr = dupCloexec(int(s)) }); err != nil {
		return nil, err
	}
	if dupErr != nil {
		return nil, fmt.Errorf("blocking socket: dup: %w", dupErr)
	}
	if err := syscall.SetNonblock(fd, false); err != nil {
		syscall.Close(fd)
		return nil, fmt.Errorf("blocking socket: %w", err)
	}
	return &blockingConn{fd: fd, local: c.LocalAddr(), remote: c.RemoteAddr()}, nil
}

func dupCloexec(fd int) (int, error) {
	n, _, errno := syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), syscall.F_DUPFD_CLOEXEC, 0)
	if errno != 0 {
		return -1, errno
	}
	return int(n), nil
}

type blockingConn struct {
	mu            sync.RWMutex // held shared by reads and writes, exclusively by Close
	fd            int          // -1 once closed
	local, remote net.Addr
}

func (c *blockingConn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return 0, net.ErrClosed
	}
	if n, ok := c.pollRead(b); ok {
		return n, nil
	}
	for {
		n, err := syscall.Read(c.fd, b)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return 0, c.opError("read", os.ErrDeadlineExceeded)
		case err != nil:
			return 0, c.opError("read", err)
		case n == 0:
			return 0, io.EOF
		}
		return n, nil
	}
}

// pollRead reads what the socket holds without blocking, trying for up to
// pollFor; false when nothing came (or the socket failed: the blocking read
// that follows reports it).
func (c *blockingConn) pollRead(b []byte) (int, bool) {
	start := time.Now()
	for i := 0; ; i++ {
		n, _, err := syscall.Recvfrom(c.fd, b, syscall.MSG_DONTWAIT)
		if err == nil && n > 0 {
			return n, true
		}
		if err != syscall.EAGAIN && err != syscall.EINTR {
			return 0, false
		}
		if i&7 == 7 && time.Since(start) > pollFor {
			return 0, false
		}
		syscall.Syscall(syscall.SYS_SCHED_YIELD, 0, 0, 0)
	}
}

const pollFor = 60 * time.Microsecond

func (c *blockingConn) Write(b []byte) (int, error) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return 0, net.ErrClosed
	}
	done := 0
	for done < len(b) {
		n, err := syscall.Write(c.fd, b[done:])
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			return done, c.opError("write", os.ErrDeadlineExceeded)
		case err != nil:
			return done, c.opError("write", err)
		}
		done += n
	}
	return done, nil
}

func (c *blockingConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: c.remote.Network(), Source: c.local, Addr: c.remote, Err: err}
}

// Close shuts the socket down first, which wakes a read or write waiting on
// it in another goroutine, then waits for it before closing the descriptor.
func (c *blockingConn) Close() error {
	c.mu.RLock()
	fd := c.fd
	c.mu.RUnlock()
	if fd < 0 {
		return net.ErrClosed
	}
	syscall.Shutdown(fd, syscall.SHUT_RDWR)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	err := syscall.Close(c.fd)
	c.fd = -1
	return err
}

func (c *blockingConn) LocalAddr() net.Addr  { return c.local }
func (c *blockingConn) RemoteAddr() net.Addr { return c.remote }

func (c *blockingConn) SetDeadline(t time.Time) error {
	if err := c.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

func (c *blockingConn) SetReadDeadline(t time.Time) error {
	return c.setTimeout(syscall.SO_RCVTIMEO, t)
}

func (c *blockingConn) SetWriteDeadline(t time.Time) error {
	return c.setTimeout(syscall.SO_SNDTIMEO, t)
}

func (c *blockingConn) setTimeout(opt int, t time.Time) error {
	var tv syscall.Timeval // zero: no timeout
	if !t.IsZero() {
		d := max(time.Until(t), time.Microsecond) // a past deadline: time out at once
		tv = syscall.NsecToTimeval(d.Nanoseconds())
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.fd < 0 {
		return net.ErrClosed
	}
	return os.NewSyscallError("setsockopt", syscall.SetsockoptTimeval(c.fd, syscall.SOL_SOCKET, opt, &tv))
}
