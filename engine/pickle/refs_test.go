package pickle

import (
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"
)

// A root mapping written by ZODB 6 (protocol 3) holding a mapping, a BTree,
// a weak reference to the mapping and a list with references inside a tuple
// and a dict; referencesf gives 1, 2, 1, 1, 2 (the weak reference is left out).
const rootRecord = "80036370657273697374656e742e6d617070696e670a50657273697374656e744d617070696e670a71002e80037d710158040000006461746171027d71032858010000006171044308000000000000000171056800867106515801000000627107430800000000000000027108634254726565732e4f4f42547265650a4f4f42547265650a710986710a51580100000077710b5d710c28680b680585710d655158040000006c697374710e5d710f28680568008671105168056800867111518571127d711358010000007171146808680986711551736575732e"

// The same record compressed by zc.zlibstorage.
const rootRecordZlib = "2e7a789c3d4ecb0e8230102c2f45f0fdf8074efd083d1b6ce2810b878a8d2551c2508ca7265ce0bb2545d9cbecce6466b671b252542a57b5286afae26599178fe03252e71f03421b47c34a5c42c89dd71cb6861325567f72b8279f0c63c193a4c38419e586e9a8d8f0b3e3b51242d138364bf047cc3a0483e38330c53c92a1f45a2c04337dcffe172c53ac2269d2d76cc00d6bb1d5d81927b097beec930e4c89b7a25f11c6388e"

func mustHex(t *testing.T, s string) []byte {
	b, err := hex.DecodeString(s)
	require.NoError(t, err)
	return b
}

func TestReferencesAsReferencesf(t *testing.T) {
	for _, rec := range []string{rootRecord, rootRecordZlib} {
		oids, err := OIDs(mustHex(t, rec))
		require.NoError(t, err)
		require.Equal(t, []uint64{1, 2, 1, 1, 2}, oids)
	}
}

// Python 2 era records: protocol 1 with SHORT_BINSTRING oids, and protocol 0
// with a PERSID line and a quoted STRING.
func TestOlderProtocols(t *testing.T) {
	// (cfoo\nBar\nq\x00Nt. then a state whose persistent id is ('\x00...\x07', None)
	p1 := []byte("(cfoo\nBar\nq\x00Nt.}q\x01(U\x01aq\x02(U\x08\x00\x00\x00\x00\x00\x00\x00\x07q\x03NtQu.")
	oids, err := OIDs(p1)
	require.NoError(t, err)
	require.Equal(t, []uint64{7}, oids)

	p0 := []byte("cfoo\nBar\np0\n.(dp1\nS'a'\np2\nPabcdefgh\nsS'b'\n(S'\\x00\\x00\\x00\\x00\\x00\\x00\\x00\\x09'\nNtQs.")
	refs, err := References(p0)
	require.NoError(t, err)
	require.Equal(t, [][]byte{[]byte("abcdefgh"), {0, 0, 0, 0, 0, 0, 0, 9}}, refs)
}

// Truncated and corrupted input is an error, never a panic.
func TestMalformedInputIsAnError(t *testing.T) {
	rec := mustHex(t, rootRecord)
	for n := range len(rec) {
		_, err := References(rec[:n])
		require.ErrorIs(t, err, ErrMalformed, "truncated at %d", n)
	}
	for i := range rec {
		for _, b := range []byte{0x00, 0xff, '.', '(', 'Q', 'h'} {
			bad := append([]byte(nil), rec...)
			bad[i] = b
			References(bad) // must not panic
		}
	}
	_, err := References([]byte(".zNOT ZLIB"))
	require.ErrorIs(t, err, ErrMalformed)
}

func FuzzReferences(f *testing.F) {
	f.Add(mustHexF(rootRecord))
	f.Add(mustHexF(rootRecordZlib))
	f.Fuzz(func(t *testing.T, data []byte) {
		References(data) // an answer or an error, never a panic
	})
}

func mustHexF(s string) []byte {
	b, _ := hex.DecodeString(s)
	return b
}
