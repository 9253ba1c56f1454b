package netconn

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// pair returns a blocking connection and the server side of it.
func pair(t *testing.T) (net.Conn, net.Conn) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := l.Accept()
		accepted <- c
	}()
	c, err := Dial(context.Background(), "tcp", l.Addr().String())
	require.NoError(t, err)
	s := <-accepted
	require.NotNil(t, s)
	t.Cleanup(func() { c.Close(); s.Close() })
	return c, s
}

func TestBlockingConnCarriesDataBothWays(t *testing.T) {
	c, s := pair(t)
	big := make([]byte, 4<<20) // larger than the socket buffers: Write must loop
	for i := range big {
		big[i] = byte(i)
	}
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(s, int64(len(big))))
		got <- b
	}()
	n, err := c.Write(big)
	require.NoError(t, err)
	require.Equal(t, len(big), n)
	require.Equal(t, big, <-got)

	_, err = s.Write([]byte("reply"))
	require.NoError(t, err)
	buf := make([]byte, 5)
	_, err = io.ReadFull(c, buf)
	require.NoError(t, err)
	require.Equal(t, "reply", string(buf))
	require.Equal(t, s.LocalAddr().String(), c.RemoteAddr().String())

	s.Close()
	_, err = c.Read(buf)
	require.ErrorIs(t, err, io.EOF)
}

func TestBlockingConnDeadlineInThePastTimesOut(t *testing.T) {
	c, _ := pair(t)
	require.NoError(t, c.SetReadDeadline(time.Now().Add(-time.Second)))
	_, err := c.Read(make([]byte, 1))
	var ne net.Error
	require.True(t, errors.As(err, &ne) && ne.Timeout(), "got %v", err)
	require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	require.NoError(t, c.SetReadDeadline(time.Time{}))
}

func TestBlockingConnCloseWakesAWaitingRead(t *testing.T) {
	c, _ := pair(t)
	done := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 1))
		done <- err
	}()
	time.Sleep(50 * time.Millisecond) // let the read block in the kernel
	require.NoError(t, c.Close())
	select {
	case err := <-done:
		require.Error(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not wake the read")
	}
	_, err := c.Write([]byte("x"))
	require.ErrorIs(t, err, net.ErrClosed)
	require.ErrorIs(t, c.Close(), net.ErrClosed)
}

// A server that vanishes without closing the socket is noticed by the
// kernel's keepalive probes: after 15 s idle, 3 probes 5 s apart.
func TestDialedSocketsProbeAVanishedServer(t *testing.T) {
	c, _ := pair(t)
	fd := c.(*blockingConn).fd
	got := map[int]int{}
	for _, opt := range []int{syscall.TCP_KEEPIDLE, syscall.TCP_KEEPINTVL, syscall.TCP_KEEPCNT} {
		v, err := syscall.GetsockoptInt(fd, syscall.IPPROTO_TCP, opt)
		require.NoError(t, err)
		got[opt] = v
	}
	on, err := syscall.GetsockoptInt(fd, syscall.SOL_SOCKET, syscall.SO_KEEPALIVE)
	require.NoError(t, err)
	require.Equal(t, 1, on)
	require.Equal(t, map[int]int{syscall.TCP_KEEPIDLE: 15, syscall.TCP_KEEPINTVL: 5, syscall.TCP_KEEPCNT: 3}, got)
}
