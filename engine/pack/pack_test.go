package pack

import (
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func TestRewriteSpellsEachDatabase(t *testing.T) {
	q := `UPDATE {TXN} SET packed = {TRUE} WHERE tid BETWEEN ? AND ? AND is_empty = {FALSE}`
	pg := &adapter.Flavor{Numbered: "$", True: "TRUE", False: "FALSE", Txn: "transaction"}
	require.Equal(t, `UPDATE transaction SET packed = TRUE WHERE tid BETWEEN $1 AND $2 AND is_empty = FALSE`, rewrite(pg, q))
	ora := &adapter.Flavor{Numbered: ":", True: "'Y'", False: "'N'", Txn: "transaction"}
	require.Equal(t, `UPDATE transaction SET packed = 'Y' WHERE tid BETWEEN :1 AND :2 AND is_empty = 'N'`, rewrite(ora, q))
	lite := &adapter.Flavor{True: "1", False: "0", Txn: `"transaction"`, Empty: "DELETE FROM"}
	require.Equal(t, `UPDATE "transaction" SET packed = 1 WHERE tid BETWEEN ? AND ? AND is_empty = 0`, rewrite(lite, q))
	require.Equal(t, `DELETE FROM pack_object`, rewrite(lite, `{EMPTY} pack_object`))
}

func TestInsertRows(t *testing.T) {
	cols := []string{"zoid", "tid"}
	require.Equal(t, `INSERT INTO object_refs_added (zoid, tid) VALUES (?, ?), (?, ?)`,
		insertRows(&adapter.Flavor{}, "object_refs_added", cols, 2))
	require.Equal(t, `INSERT ALL INTO object_refs_added (zoid, tid) VALUES (?, ?) INTO object_refs_added (zoid, tid) VALUES (?, ?) SELECT 1 FROM DUAL`,
		insertRows(&adapter.Flavor{InsertAll: true}, "object_refs_added", cols, 2))
	require.Equal(t, `INSERT INTO pack_object (zoid, tid, keep) VALUES (?, ?, {FALSE}), (?, ?, {FALSE})`,
		insertRows(&adapter.Flavor{}, "pack_object", cols, 2, "keep", "{FALSE}"))
}

// newGraph builds a graph from oids and (from, to) references, as loadGraph does.
func newGraph(oids []uint64, refs [][2]uint64) *graph {
	g := &graph{oids: oids, marked: make([]uint64, (len(oids)+63)/64)}
	for _, r := range refs {
		i, ok := g.index(r[0])
		j, ok2 := g.index(r[1])
		if ok && ok2 {
			g.addEdge(uint64(i)<<32 | uint64(j))
		}
	}
	g.indexEdges()
	return g
}

func TestGraphMarksWhatTheRootsReach(t *testing.T) {
	// 0 -> 1 -> 2 -> 1 (a cycle); 3 -> 4 unreachable; 5 alone; 9 is no node.
	g := newGraph([]uint64{0, 1, 2, 3, 4, 5}, [][2]uint64{{0, 1}, {1, 2}, {2, 1}, {3, 4}, {2, 9}})
	g.markRoot(0)
	require.Equal(t, []int64{3, 4, 5}, g.unmarked())
	// A commit during the pack refers to 3: it and 4 become reachable, once.
	require.ElementsMatch(t, []uint64{3, 4}, g.mark(3))
	require.Empty(t, g.mark(4))
	require.Empty(t, g.mark(9))
	require.Equal(t, []int64{5}, g.unmarked())
	g.markAll()
	require.Empty(t, g.unmarked())
}

func TestGraphBeyondOneWordOfMarks(t *testing.T) {
	var oids []uint64
	var refs [][2]uint64
	for i := uint64(0); i < 200; i++ {
		oids = append(oids, i*3)
		if i > 0 && i%2 == 0 {
			refs = append(refs, [2]uint64{(i - 2) * 3, i * 3}) // a chain over the even ones
		}
	}
	g := newGraph(oids, refs)
	g.markRoot(0)
	require.Len(t, g.unmarked(), 100) // of 200
	for _, oid := range g.unmarked() {
		require.EqualValues(t, 3, oid%6, "only the odd ones are unreachable")
	}
}

// A removal batch the database rolled back to break a deadlock runs again,
// up to deadlockRetries times; any other error ends it at once.
func TestRemovalRunsADeadlocksVictimAgain(t *testing.T) {
	var logged []string
	p := &packer{o: Options{Logf: func(f string, a ...any) { logged = append(logged, f) }}}
	var mu sync.Mutex
	r := tidRange{lo: 1, hi: 2}
	deadlock := fmt.Errorf("mysql: %w: Error 1213", adapter.ErrDeadlock)

	runs := 0
	require.NoError(t, p.again(r, &mu, func() error {
		runs++
		if runs < 3 {
			return deadlock
		}
		return nil
	}))
	require.Equal(t, 3, runs)
	require.Len(t, logged, 2)

	runs = 0
	require.ErrorIs(t, p.again(r, &mu, func() error { runs++; return deadlock }), adapter.ErrDeadlock)
	require.Equal(t, deadlockRetries+1, runs)

	runs = 0
	other := errors.New("disk full")
	require.ErrorIs(t, p.again(r, &mu, func() error { runs++; return other }), other)
	require.Equal(t, 1, runs)
}
