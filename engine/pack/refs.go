package pack

import (
	"cmp"
	"context"
	"errors"
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
		// readObjects counted these states: no count query (on MySQL, 2 s of
		// the server's time for a million objects).
		from := "object_state o"
		if hint := p.s.Flavor().ByTID; hint != "" {
			from += " " + hint
		}
		stream = `SELECT o.tid, o.zoid, o.tid, o.state FROM ` + from + ` WHERE o.tid > 0 AND o.tid <= ?
			AND NOT EXISTS (SELECT 1 FROM pack_state s WHERE s.tid = o.tid AND s.zoid = o.zoid)
			AND NOT EXISTS (SELECT 1 FROM object_refs_added a WHERE a.tid = o.tid) ORDER BY o.tid`
	} else {
		pending := `FROM object_state o LEFT JOIN object_refs_added a ON a.zoid = o.zoid
			WHERE o.tid <= ? AND (a.zoid IS NULL OR a.tid <> o.tid)`
		count = `SELECT COUNT(*) ` + pending
		stream = `SELECT o.zoid, o.zoid, o.tid, o.state ` + pending
	}
	p.progress("analyze", 0, 0)
	// History-preserving, the rows an interrupted analysis left go first,
	// in one transaction: the batches then only insert, and two connections
	// can write them (refOut).
	if len(p.stale) > 0 {
		err := p.inTxn(ctx, func() error {
			_, err := p.w.inBatches(ctx, `DELETE FROM object_ref WHERE tid IN (?)`, p.stale)
			return err
		})
		if err != nil {
			return 0, fmt.Errorf("remove the references an interrupted analysis left: %w", err)
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out := p.refWriters(ctx, cancel)
	// The count, for the progress, runs on the write connection while the
	// stream's query starts on the read one; the first batch waits for it.
	var total int64
	counted := make(chan error, 1)
	if count == "" {
		total = p.toRead
		counted <- nil
	} else {
		go func() {
			var err error
			total, err = p.w.int64(ctx, count, int64(last))
			counted <- err
		}()
	}
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
		out.total = total
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
			err = out.send(ctx, p.refWrite(b), b.seen)
		}
		if err != nil {
			cancel() // the stages stop; the channels drain
		}
	}
	done, werr := out.wait()
	if err == nil || errors.Is(err, context.Canceled) && werr != nil {
		err = werr
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
	order := func(x, y [3]int64) int {
		return cmp.Or(cmp.Compare(x[first], y[first]), cmp.Compare(x[second], y[second]), cmp.Compare(x[2], y[2]))
	}
	// Read through the tid index, the states come in that order already.
	if !slices.IsSortedFunc(b.refs, order) {
		slices.SortFunc(b.refs, order)
	}
	return b
}

// refWrite is what one batch writes: the keys whose rows an interrupted
// run may have left (history-free; deleted first), the object_ref rows and
// the object_refs_added rows, flat.
type refWrite struct {
	fresh, refs, done []int64
}

// refWrite returns the writes of batch b.
func (p *packer) refWrite(b *refBatch) refWrite {
	// Recorded as read: the keys whose every state was read, which
	// (history-preserving) excludes transactions at or before the pack time
	// until their superseded revisions are removed.
	width := 2
	if p.o.KeepHistory {
		width = 1
	}
	var w refWrite
	for i, k := range b.keys {
		switch {
		case b.open && i == len(b.keys)-1:
			// Recorded with the batch that ends it.
		case p.badKeys[k]:
		case p.o.KeepHistory && uint64(k) <= p.res.PackTID:
			p.deferred = append(p.deferred, k)
		default:
			w.done = append(w.done, b.done[i*width:(i+1)*width]...)
		}
	}
	w.refs = make([]int64, 0, 3*len(b.refs))
	for _, r := range b.refs {
		w.refs = append(w.refs, r[:]...)
	}
	if !p.o.KeepHistory {
		// What an interrupted run left of these objects goes first.
		w.fresh = b.keys
		if b.continued {
			w.fresh = w.fresh[1:]
		}
	}
	return w
}

// writeRefs writes w through conn, inside its transaction.
func (p *packer) writeRefs(ctx context.Context, conn db, w refWrite) error {
	refCols := []string{"zoid", "to_zoid", "tid"}
	addCols := []string{"zoid", "tid"}
	if p.o.KeepHistory {
		refCols = []string{"zoid", "tid", "to_zoid"}
		addCols = []string{"tid"}
	}
	for _, table := range []string{"object_ref", "object_refs_added"} {
		if _, err := conn.inBatches(ctx, `DELETE FROM `+table+` WHERE zoid IN (?)`, w.fresh); err != nil {
			return err
		}
	}
	if err := conn.insert(ctx, "object_ref", refCols, w.refs); err != nil {
		return err
	}
	return conn.insert(ctx, "object_refs_added", addCols, w.done)
}

// refWriter is a write connection of the analysis.
type refWriter struct {
	conn db
	txns txns
}

// refOut writes the batches, each in one database transaction, through the
// session's write connection and a second one when the session has workers:
// while one connection writes a batch, the other writes the next. Batches
// commit in their order, so that object_refs_added never lists a
// transaction whose references a batch not yet committed holds (a
// transaction's states may span two batches). History-preserving, the
// batches only insert (the rows an interrupted run left are deleted
// before). History-free, each batch deletes its objects' rows first, and one
// connection writes them all: InnoDB's delete locks the row just past its
// keys as it reads it, which a later batch may have inserted and holds until
// its commit, itself waiting for this batch (a lock wait timeout in the tests).
type refOut struct {
	p       *packer
	cancel  func()
	free    chan refWriter // the writers not writing
	worker  adapter.PackWorker
	prev    chan struct{} // closed when the batch sent last has committed
	mu      sync.Mutex    // err, done, the progress
	err     error
	done    int64
	total   int64 // the states to write, for the progress; set before the first send
	pending sync.WaitGroup
}

func (p *packer) refWriters(ctx context.Context, cancel func()) *refOut {
	o := &refOut{p: p, cancel: cancel, prev: make(chan struct{})}
	close(o.prev)
	o.free = make(chan refWriter, 2)
	o.free <- refWriter{p.w, p.s}
	if ws, ok := p.s.(adapter.PackWorkers); ok && p.o.KeepHistory {
		// Without a worker, one connection writes.
		wk, err := ws.Worker(ctx)
		switch {
		case err != nil:
			p.o.Logf("pack: the analysis writes through one connection: a second one failed to open: %v", err)
		case wk != nil:
			o.worker = wk
			o.free <- refWriter{db{wk.Write(), p.s.Flavor()}, wk}
		}
	}
	return o
}

// send starts writing w, once a writer is free; seen: the states it holds.
func (o *refOut) send(ctx context.Context, w refWrite, seen int64) error {
	var wr refWriter
	select {
	case wr = <-o.free:
	case <-ctx.Done():
		return ctx.Err()
	}
	if err := o.failed(); err != nil {
		o.free <- wr
		return err
	}
	prev, mine := o.prev, make(chan struct{})
	o.prev = mine
	o.pending.Add(1)
	go func() {
		defer o.pending.Done()
		err := inTxn(ctx, wr.txns, func() error {
			if err := o.p.writeRefs(ctx, wr.conn, w); err != nil {
				return err
			}
			select {
			case <-prev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
		o.mu.Lock()
		if err != nil {
			if o.err == nil {
				o.err = err
			}
			o.cancel()
		} else {
			close(mine)
			o.done += seen
			// The count may miss states committed since it was taken.
			o.p.progress("analyze", o.done, max(o.total, o.done))
		}
		o.mu.Unlock()
		o.free <- wr
	}()
	return nil
}

func (o *refOut) failed() error {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.err
}

// wait waits for every batch sent, closes the worker, and returns the
// states written and the first error.
func (o *refOut) wait() (int64, error) {
	o.pending.Wait()
	var err error
	if o.worker != nil {
		err = o.worker.Close()
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		err = o.err
	}
	return o.done, err
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
