package pack

import (
	"cmp"
	"context"
	"fmt"
	"runtime"
	"slices"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/pickle"
)

// Filling object_ref: RelStorage's cache of the references each stored
// state makes, kept between packs. A history-preserving database records
// which transactions were read in object_refs_added (tid), a history-free
// one which revision of each object (zoid, tid). The states not yet read
// stream in from one query; their references go in by batches, each batch
// one database transaction that first deletes what an interrupted run may
// have left, so a pack killed at any moment is resumed without a duplicate
// key. A state that cannot be read is reported and not recorded as read:
// the next pack reads it again.
//
// History-preserving, the revisions this pack removes because a later one
// was current at the pack time are not read: no pack ever follows their
// references. Their transactions are recorded as read only when those
// revisions are gone, in the same database transaction that removes them
// (removeRange); until then object_refs_added does not claim them.

// refBatchRows is about how many states, and at most how many object_ref
// rows, one batch holds.
const refBatchRows = 5000

// stateRow is one state to read: key is its tid (history-preserving) or
// oid (history-free), what object_refs_added records.
type stateRow struct {
	key, oid, tid int64
	state         []byte
}

// refBatch is what one batch writes.
type refBatch struct {
	keys []int64    // tids (history-preserving) or zoids (history-free) read
	done []int64    // their object_refs_added rows, one or two columns each
	refs [][3]int64 // object_ref rows, in the columns' order
	bad  []int64    // keys with an unreadable state: not added
	seen int64      // states read
	// unreadable: the states whose references could not be read.
	unreadable []Unreadable
	// edges: the references between nodes of the graph (planning only).
	edges []uint64
	// continued: the first key's references began in the previous batch
	// (they are kept); open: the last key's go on in the next batch (it is
	// not yet read whole).
	continued, open bool
}

// analyze reads the references of every state not yet in object_ref, up to
// the newest transaction at its start, and returns that transaction's tid.
// Three stages overlap: the states stream in, the pickles are read on every
// core, the references are written.
func (p *packer) analyze(ctx context.Context) (uint64, error) {
	last, err := p.lastTID(ctx, p.r)
	if err != nil {
		return 0, fmt.Errorf("read the newest transaction: %w", err)
	}
	var count, stream string
	if p.o.KeepHistory {
		// pack_state holds the revisions superseded at the pack time.
		pending := `FROM object_state o WHERE o.tid > 0 AND o.tid <= ?
			AND NOT EXISTS (SELECT 1 FROM pack_state s WHERE s.tid = o.tid AND s.zoid = o.zoid)
			AND NOT EXISTS (SELECT 1 FROM object_refs_added a WHERE a.tid = o.tid)`
		count = `SELECT COUNT(*) ` + pending
		stream = `SELECT o.tid, o.zoid, o.tid, o.state ` + pending + ` ORDER BY o.tid`
	} else {
		pending := `FROM object_state o LEFT JOIN object_refs_added a ON a.zoid = o.zoid
			WHERE o.tid <= ? AND (a.zoid IS NULL OR a.tid <> o.tid)`
		count = `SELECT COUNT(*) ` + pending
		stream = `SELECT o.zoid, o.zoid, o.tid, o.state ` + pending
	}
	p.progress("analyze", 0, 0)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The count, for the progress, runs on the write connection while the
	// stream's query starts on the read one; the first batch waits for it.
	var total int64
	counted := make(chan error, 1)
	go func() {
		var err error
		total, err = p.w.int64(ctx, count, int64(last))
		counted <- err
	}()
	waitCount := func() error {
		if counted == nil {
			return nil
		}
		err := <-counted
		counted = nil
		if err != nil {
			return fmt.Errorf("count the states to analyze: %w", err)
		}
		p.progress("analyze", 0, total)
		return nil
	}
	chunks := make(chan stateChunk, 1)
	batches := make(chan *refBatch, 1)
	var readErr error
	go func() {
		defer close(chunks)
		readErr = p.streamStates(ctx, stream, int64(last), chunks)
	}()
	go func() {
		defer close(batches)
		for chunk := range chunks {
			select {
			case batches <- p.scan(chunk):
			case <-ctx.Done():
				return
			}
		}
	}()
	var done int64
	for b := range batches {
		for _, u := range b.unreadable {
			p.unreadable(u)
		}
		for _, k := range b.bad {
			p.badKeys[k] = true
		}
		if p.g != nil {
			for _, e := range b.edges {
				p.g.addEdge(e)
			}
		}
		if err == nil {
			err = waitCount()
		}
		if err == nil {
			err = p.writeRefs(ctx, b)
		}
		if err != nil {
			cancel() // the stages stop; the channels drain
			continue
		}
		done += b.seen
		p.progress("analyze", done, total)
	}
	if cerr := waitCount(); err == nil {
		err = cerr
	}
	if err == nil {
		err = readErr
	}
	if err != nil {
		return 0, fmt.Errorf("analyze references: %w", err)
	}
	p.res.Analyzed = done
	if p.o.KeepHistory {
		// Transactions without states (tid 0, transactions emptied by undo)
		// are read too: RelStorage would otherwise list them every time.
		_, err = p.w.exec(ctx, `INSERT INTO object_refs_added (tid)
			SELECT t.tid FROM {TXN} t WHERE t.tid <= ?
			AND NOT EXISTS (SELECT 1 FROM object_refs_added a WHERE a.tid = t.tid)
			AND NOT EXISTS (SELECT 1 FROM object_state o WHERE o.tid = t.tid)`, int64(last))
		if err != nil {
			return 0, fmt.Errorf("record the transactions without states: %w", err)
		}
	}
	return last, nil
}

// stateChunk is a run of states; continued: its first key's states began
// in the previous chunk; open: its last key's go on in the next one.
type stateChunk struct {
	rows            []stateRow
	continued, open bool
}

// chunkBytes bounds the states one chunk holds: memory stays bounded
// whatever the size of a transaction or of a state.
const chunkBytes = 8 << 20

// streamStates sends the states of the query in chunks of about
// refBatchRows, each ending at a change of key, unless it holds chunkBytes
// of states first: a large transaction is then split.
func (p *packer) streamStates(ctx context.Context, q string, last int64, out chan<- stateChunk) error {
	var c stateChunk
	size := 0
	send := func(open bool) error {
		c.open = open
		select {
		case out <- c:
		case <-ctx.Done():
			return ctx.Err()
		}
		c, size = stateChunk{continued: open}, 0
		return nil
	}
	err := p.r.each(ctx, q, []any{last}, func(rows adapter.Rows) error {
		var r stateRow
		if err := rows.Scan(&r.key, &r.oid, &r.tid, &r.state); err != nil {
			return err
		}
		if n := len(c.rows); n > 0 {
			sameKey := c.rows[n-1].key == r.key
			if (n >= refBatchRows && !sameKey) || size >= chunkBytes {
				if err := send(sameKey); err != nil {
					return err
				}
			}
		}
		c.rows = append(c.rows, r)
		size += len(r.state)
		return nil
	})
	if err == nil && len(c.rows) > 0 {
		err = send(false)
	}
	return err
}

// scan reads the references of a chunk's states, on every core.
func (p *packer) scan(c stateChunk) *refBatch {
	chunk := c.rows
	refs := make([][]uint64, len(chunk))
	errs := make([]error, len(chunk))
	workers := min(runtime.GOMAXPROCS(0), (len(chunk)+999)/1000)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := w; i < len(chunk); i += workers {
				if chunk[i].state != nil {
					refs[i], errs[i] = pickle.OIDs(chunk[i].state)
				}
			}
		}(w)
	}
	wg.Wait()
	b := &refBatch{seen: int64(len(chunk)), continued: c.continued, open: c.open}
	for i, r := range chunk {
		if i == 0 || r.key != chunk[i-1].key {
			b.keys = append(b.keys, r.key)
			if p.o.KeepHistory {
				b.done = append(b.done, r.key)
			} else {
				b.done = append(b.done, r.oid, r.tid)
			}
		}
		if errs[i] != nil {
			b.unreadable = append(b.unreadable, Unreadable{OID: uint64(r.oid), TID: uint64(r.tid), Error: errs[i].Error()})
			b.bad = append(b.bad, r.key)
			continue
		}
		to := refs[i]
		slices.Sort(to)
		for _, t := range slices.Compact(to) {
			if p.o.KeepHistory {
				b.refs = append(b.refs, [3]int64{r.oid, r.tid, int64(t)})
			} else {
				b.refs = append(b.refs, [3]int64{r.oid, int64(t), r.tid})
			}
		}
	}
	if g := p.g; g != nil {
		for _, r := range b.refs {
			from, to := r[0], r[2]
			if !p.o.KeepHistory {
				to = r[1]
			}
			if e, ok := g.edge(uint64(from), uint64(to)); ok {
				b.edges = append(b.edges, e)
			}
		}
	}
	// In key order, the inserts append to object_ref's primary key: three
	// times faster than in the order the states came.
	// object_ref's key: (tid, zoid, to_zoid), or (zoid, to_zoid) history-free.
	first, second := 1, 0
	if !p.o.KeepHistory {
		first, second = 0, 1
	}
	slices.SortFunc(b.refs, func(x, y [3]int64) int {
		return cmp.Or(cmp.Compare(x[first], y[first]), cmp.Compare(x[second], y[second]), cmp.Compare(x[2], y[2]))
	})
	return b
}

// writeRefs replaces, in one database transaction, the references of the
// batch's transactions (or objects) and records them as read.
func (p *packer) writeRefs(ctx context.Context, b *refBatch) error {
	if len(b.keys) == 0 {
		return nil
	}
	col := "zoid"
	refCols := []string{"zoid", "to_zoid", "tid"}
	addCols := []string{"zoid", "tid"}
	if p.o.KeepHistory {
		col = "tid"
		refCols = []string{"zoid", "tid", "to_zoid"}
		addCols = []string{"tid"}
	}
	// Recorded as read: the keys whose every state was read, which
	// (history-preserving) excludes transactions at or before the pack time
	// until their superseded revisions are removed.
	width := len(addCols)
	var done []int64
	for i, k := range b.keys {
		switch {
		case b.open && i == len(b.keys)-1:
			// Recorded with the batch that ends it.
		case p.badKeys[k]:
		case p.o.KeepHistory && uint64(k) <= p.res.PackTID:
			p.deferred = append(p.deferred, k)
		default:
			done = append(done, b.done[i*width:(i+1)*width]...)
		}
	}
	refs := make([]int64, 0, 3*len(b.refs))
	for _, r := range b.refs {
		refs = append(refs, r[:]...)
	}
	fresh := b.keys // what an interrupted run may have left of them goes first
	if b.continued {
		fresh = fresh[1:]
	}
	if p.o.KeepHistory {
		// Only the transactions an interrupted analysis left rows of; none
		// is in object_refs_added (the stream's condition).
		var left []int64
		for _, k := range fresh {
			if _, ok := slices.BinarySearch(p.stale, k); ok {
				left = append(left, k)
			}
		}
		fresh = left
	}
	return p.inTxn(ctx, func() error {
		if _, err := p.w.inBatches(ctx, `DELETE FROM object_ref WHERE `+col+` IN (?)`, fresh); err != nil {
			return err
		}
		if !p.o.KeepHistory {
			if _, err := p.w.inBatches(ctx, `DELETE FROM object_refs_added WHERE `+col+` IN (?)`, fresh); err != nil {
				return err
			}
		}
		if err := p.w.insert(ctx, "object_ref", refCols, refs); err != nil {
			return err
		}
		return p.w.insert(ctx, "object_refs_added", addCols, done)
	})
}

// statesSince returns the oids written after tid and the oids their states
// refer to, on conn, with the newest tid seen. A state that cannot be read
// is an error: what it refers to cannot be known.
func (p *packer) statesSince(ctx context.Context, conn db, tid uint64) (written, referenced []uint64, newest uint64, err error) {
	newest = tid
	err = conn.each(ctx, `SELECT zoid, tid, state FROM object_state WHERE tid > ?`, []any{int64(tid)},
		func(rows adapter.Rows) error {
			var oid, t int64
			var state []byte
			if err := rows.Scan(&oid, &t, &state); err != nil {
				return err
			}
			written = append(written, uint64(oid))
			newest = max(newest, uint64(t))
			if state == nil {
				return nil
			}
			to, err := pickle.OIDs(state)
			if err != nil {
				return fmt.Errorf("oid %d, committed in transaction %d while packing, cannot be read (%v); "+
					"what it refers to cannot be known, so nothing more is removed", oid, t, err)
			}
			referenced = append(referenced, to...)
			return nil
		})
	return written, referenced, newest, err
}
