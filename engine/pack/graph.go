package pack

import (
	"context"
	"slices"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// graph is the objects a pack may remove (pack_object's rows) and the
// references between them, in compact integer form: the oids sorted (8
// bytes each), a mark bit each, and the edges as sorted (from, to) index
// pairs packed in one uint64 (8 bytes a reference). A million objects with
// three references each take about 37 MB; no state is ever held.
type graph struct {
	oids   []uint64 // sorted
	keep   []uint64 // the tid of each object's revision current at the pack time
	marked []uint64 // bitset over oids' indexes
	edges  []uint64 // from<<32 | to, sorted
	first  []uint32 // edges[first[i]:first[i+1]] leave oids[i]
	// blocks gather the edges while they are found, in pieces of edgeBlock:
	// a growing slice would hold twice its length, and three times while it
	// is copied.
	blocks [][]uint64
}

const edgeBlock = 1 << 16

// addEdge records the edge e (see edge).
func (g *graph) addEdge(e uint64) {
	if n := len(g.blocks); n == 0 || len(g.blocks[n-1]) == edgeBlock {
		g.blocks = append(g.blocks, make([]uint64, 0, edgeBlock))
	}
	last := &g.blocks[len(g.blocks)-1]
	*last = append(*last, e)
}

// loadGraph reads pack_object (the nodes; with keepMarks, those whose keep
// is true are marked, with what they reach) and the references that count
// for the pack (readEdges).
func loadGraph(ctx context.Context, r db, keepMarks bool) (*graph, error) {
	g, keep, err := loadNodes(ctx, r)
	if err == nil {
		_, err = g.readEdges(ctx, r, false, nil)
	}
	if err != nil {
		return nil, err
	}
	g.indexEdges()
	if keepMarks {
		for _, i := range keep {
			g.markFrom(i, false)
		}
	}
	return g, nil
}

// loadNodes reads pack_object's oids and keep_tids, and the indexes of
// those kept.
func loadNodes(ctx context.Context, r db) (*graph, []uint32, error) {
	g := &graph{}
	var keep []uint32
	err := r.each(ctx, `SELECT zoid, keep_tid, CASE WHEN keep = {TRUE} THEN 1 ELSE 0 END FROM pack_object ORDER BY zoid`, nil,
		func(rows adapter.Rows) error {
			var oid, tid, k int64
			if err := rows.Scan(&oid, &tid, &k); err != nil {
				return err
			}
			if k == 1 {
				keep = append(keep, uint32(len(g.oids)))
			}
			g.oids = append(g.oids, uint64(oid))
			g.keep = append(g.keep, uint64(tid))
			return nil
		})
	g.marked = make([]uint64, (len(g.oids)+63)/64)
	return g, keep, err
}

// readEdges adds the references object_ref holds that count for the pack:
// those of each object's revision kept at the pack time and of later ones
// (object_ref.tid >= keep_tid). Before the analysis, these are what earlier
// packs read; the analysis adds what it reads itself (edge).
//
// With findStale (history-preserving), the rows of transactions not in
// recorded (object_refs_added's, sorted) are what an interrupted analysis
// left: they are no edges, and their transactions are returned, sorted, for
// the analysis to replace.
func (g *graph) readEdges(ctx context.Context, r db, findStale bool, recorded []int64) ([]int64, error) {
	var stale []int64
	err := r.each(ctx, `SELECT zoid, tid, to_zoid FROM object_ref`, nil, func(rows adapter.Rows) error {
		var from, tid, to int64
		if err := rows.Scan(&from, &tid, &to); err != nil {
			return err
		}
		if findStale {
			if _, ok := slices.BinarySearch(recorded, tid); !ok {
				if n := len(stale); n == 0 || stale[n-1] != tid {
					stale = append(stale, tid)
				}
				return nil
			}
		}
		i, ok := g.index(uint64(from))
		if !ok || uint64(tid) < g.keep[i] {
			return nil
		}
		if e, ok := g.edge(uint64(from), uint64(to)); ok {
			g.addEdge(e)
		}
		return nil
	})
	slices.Sort(stale)
	return slices.Compact(stale), err
}

// edge is the reference from -> to between two nodes, as an edge; ok is
// false when either is no node (or they are one). Safe for concurrent use
// while the nodes do not change.
func (g *graph) edge(from, to uint64) (uint64, bool) {
	i, ok := g.index(from)
	j, ok2 := g.index(to)
	if !ok || !ok2 || i == j {
		return 0, false
	}
	return uint64(i)<<32 | uint64(j), true
}

// indexEdges gathers the edges in one array of their exact size (each
// block freed once copied), sorts them and indexes them by the node they
// leave.
func (g *graph) indexEdges() {
	n := len(g.edges)
	for _, b := range g.blocks {
		n += len(b)
	}
	edges := make([]uint64, 0, n)
	edges = append(edges, g.edges...)
	for i, b := range g.blocks {
		edges = append(edges, b...)
		g.blocks[i] = nil
	}
	g.edges, g.blocks = edges, nil
	slices.Sort(g.edges)
	g.edges = slices.Compact(g.edges)
	g.first = make([]uint32, len(g.oids)+1)
	e := 0
	for i := range g.oids {
		g.first[i] = uint32(e)
		for e < len(g.edges) && g.edges[e]>>32 == uint64(i) {
			e++
		}
	}
	g.first[len(g.oids)] = uint32(e)
}

func (g *graph) index(oid uint64) (uint32, bool) {
	i, ok := slices.BinarySearch(g.oids, oid)
	return uint32(i), ok
}

func (g *graph) isMarked(i uint32) bool { return g.marked[i/64]&(1<<(i%64)) != 0 }

// mark marks oid and everything it reaches; it returns the oids newly
// marked (few: it serves the checks of transactions committed during a pack). An oid that is not a node (created after the pack time, or
// missing) is ignored.
func (g *graph) mark(oid uint64) []uint64 {
	i, ok := g.index(oid)
	if !ok || g.isMarked(i) {
		return nil
	}
	return g.markFrom(i, true)
}

// markFrom marks start and what it reaches, returning the oids newly
// marked when collect is set.
func (g *graph) markFrom(start uint32, collect bool) []uint64 {
	if g.isMarked(start) {
		return nil
	}
	var newly []uint64
	stack := []uint32{start}
	g.marked[start/64] |= 1 << (start % 64)
	for len(stack) > 0 {
		i := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if collect {
			newly = append(newly, g.oids[i])
		}
		for _, e := range g.edges[g.first[i]:g.first[i+1]] {
			j := uint32(e)
			if !g.isMarked(j) {
				g.marked[j/64] |= 1 << (j % 64)
				stack = append(stack, j)
			}
		}
	}
	return newly
}

// markAll marks every node (garbage collection called off).
func (g *graph) markAll() {
	for i := range g.marked {
		g.marked[i] = ^uint64(0)
	}
}

// unmarked returns the oids not marked, ascending.
func (g *graph) unmarked() []int64 {
	var out []int64
	for i, oid := range g.oids {
		if !g.isMarked(uint32(i)) {
			out = append(out, int64(oid))
		}
	}
	return out
}

// markRoot is mark without the list, for the roots of the first traversal.
func (g *graph) markRoot(oid uint64) {
	if i, ok := g.index(oid); ok {
		g.markFrom(i, false)
	}
}
