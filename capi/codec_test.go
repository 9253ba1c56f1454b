package main

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestCodecRoundTrip(t *testing.T) {
	var e encoder
	e.u64(42)
	e.bytes(nil)
	e.bytes([]byte{})
	e.bytes([]byte("state"))
	d := decoder{b: e.b}
	require.Equal(t, uint64(42), d.u64())
	require.Nil(t, d.bytes(), "None stays None")
	require.Equal(t, []byte{}, d.bytes(), "empty stays empty")
	require.Equal(t, []byte("state"), d.bytes())
	require.NoError(t, d.err)
	require.Empty(t, d.b)
}

func TestDecoderReportsTruncation(t *testing.T) {
	var e encoder
	e.bytes([]byte("0123456789"))
	d := decoder{b: e.b[:12]}
	require.Nil(t, d.bytes())
	require.ErrorIs(t, d.err, errShort)
}
