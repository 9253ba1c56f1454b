package schema

import (
	"testing"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/stretchr/testify/require"
)

func TestLandedWeighsWhatTheDatabaseHolds(t *testing.T) {
	const tid = 100
	writes := []adapter.Write{{OID: 1, State: []byte("a")}, {OID: 2, State: nil}, {OID: 3, State: []byte("new")}}
	for _, c := range []struct {
		name          string
		keepHistory   bool
		ev            CommitEvidence
		landed, known bool
	}{
		{"history: the transaction row is there", true, CommitEvidence{TxnRow: true}, true, true},
		{"history: no transaction row", true, CommitEvidence{}, false, true},
		{"a row carries the tid", false, CommitEvidence{Current: map[uint64]uint64{1: 120, 3: tid}}, true, true},
		{"a written object is older", false, CommitEvidence{Current: map[uint64]uint64{1: 90}}, false, true},
		{"an object it deleted is still there", false, CommitEvidence{Current: map[uint64]uint64{2: 50, 1: 130}}, false, true},
		{"every row replaced or gone", false, CommitEvidence{Current: map[uint64]uint64{1: 130}}, false, false},
		{"nothing left at all", false, CommitEvidence{}, false, false},
	} {
		landed, known := Landed(c.keepHistory, tid, writes, c.ev)
		require.Equal(t, [2]bool{c.landed, c.known}, [2]bool{landed, known}, c.name)
	}
	landed, known := Landed(false, tid, nil, CommitEvidence{})
	require.True(t, landed && known, "a history-free commit without writes changed nothing")
}
