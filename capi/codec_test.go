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

func TestDecodeStores(t *testing.T) {
	var e encoder
	e.b = append(e.b, 0, 0, 0, 0, 0, 0, 1, 2) // oid 0x102, as ZODB spells it
	e.b = append(e.b, 0, 0, 0, 0, 0, 0, 0, 9) // serial 9
	e.bytes([]byte("ab"))
	e.b = append(e.b, make([]byte, 16)...) // oid 0, serial 0 (a new object)
	e.bytes([]byte{})
	recs, err := decodeStores(e.b)
	require.NoError(t, err)
	require.Len(t, recs, 2)
	require.Equal(t, uint64(0x102), recs[0].OID)
	require.Equal(t, uint64(9), recs[0].Serial)
	require.Equal(t, []byte("ab"), recs[0].State)
	require.Equal(t, 2, cap(recs[0].State), "a state cannot grow into the next record")
	require.Equal(t, []byte{}, recs[1].State)

	_, err = decodeStores(e.b[:len(e.b)-3])
	require.ErrorIs(t, err, errShort, "a cut record is refused, not stored in part")
}
