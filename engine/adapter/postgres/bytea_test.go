package postgres

import (
	"testing"

	"github.com/jackc/pgx/v5/pgtype"
	"github.com/stretchr/testify/require"
)

// byteaArray's one-piece encoding is byte for byte pgx's own ArrayCodec's,
// NULL and empty elements included, and appends to what the buffer holds.
func TestByteaArrayEncodesAsPgxDoes(t *testing.T) {
	cases := [][][]byte{
		{},
		{[]byte("a state")},
		{nil, {}, []byte("x"), make([]byte, 70000), nil},
	}
	m := pgtype.NewMap()
	registerTypes(m)
	for _, c := range cases {
		want, err := pgtype.NewMap().Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, c, []byte("head"))
		require.NoError(t, err)
		got, err := m.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, byteaArray(c), []byte("head"))
		require.NoError(t, err)
		require.Equal(t, want, got)
		// Other bytea[] values still go through pgx's codec on a registered map.
		other, err := m.Encode(pgtype.ByteaArrayOID, pgtype.BinaryFormatCode, c, []byte("head"))
		require.NoError(t, err)
		require.Equal(t, want, other)
	}
}
