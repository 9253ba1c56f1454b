package pack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Removing what the plan lists, by batches, each one database transaction.
// A history-preserving pack walks the packed transactions oldest first in
// ranges of about revsPerBatch revisions; a history-free one removes
// objectsPerBatch unreachable objects at a time.
//
// Writers keep committing meanwhile. Before each batch the transactions
// committed since the last look are read: an object they write, or refer
// to, is reachable after all, and so is everything it reaches (the graph is
// in memory). When the batch removes unreachable objects, the last look is
// taken under the commit lock, in the batch's own transaction, so that
// nothing commits between it and the removal; the lock is held for one
// batch only.

const (
	revsPerBatch    = 5000
	objectsPerBatch = 1000
)

func (p *packer) remove(ctx context.Context) error {
	if p.o.KeepHistory {
		return p.removeRevisions(ctx)
	}
	return p.removeObjects(ctx)
}

// guarded: batches may remove unreachable objects, so the transactions
// committed meanwhile must be read first.
func (p *packer) guarded() bool { return p.o.GC && p.res.Garbage > 0 }

// tidRange is a batch of the removal: the planned revisions of the
// transactions lo to hi. guarded: it holds the revision an unreachable
// object keeps at the pack time (see guard); current: it may hold an
// object's current revision (one that goes with its object).
type tidRange struct {
	lo, hi           uint64
	guarded, current bool
}

// ranges splits (0, PackTID] so that each range holds about revsPerBatch
// planned revisions; it returns them and the number of revisions.
func (p *packer) ranges(ctx context.Context) ([]tidRange, int64, error) {
	var out []tidRange
	var total, acc int64
	lo := uint64(1)
	err := p.r.each(ctx, `SELECT tid, COUNT(*) FROM pack_state WHERE tid <= ? GROUP BY tid ORDER BY tid`,
		[]any{int64(p.res.PackTID)}, func(rows adapter.Rows) error {
			var tid, n int64
			if err := rows.Scan(&tid, &n); err != nil {
				return err
			}
			total += n
			acc += n
			if acc >= revsPerBatch {
				out = append(out, tidRange{lo: lo, hi: uint64(tid)})
				lo, acc = uint64(tid)+1, 0
			}
			return nil
		})
	if lo <= p.res.PackTID {
		out = append(out, tidRange{lo: lo, hi: p.res.PackTID})
	}
	return out, total, err
}

func (p *packer) removeRevisions(ctx context.Context) error {
	ranges, total, err := p.ranges(ctx)
	if err != nil {
		return fmt.Errorf("read the plan: %w", err)
	}
	p.progress("remove", 0, total)
	p.guard(ranges)
	q := &rangeQueue{ranges: ranges, taken: make([]bool, len(ranges))}
	var wk adapter.PackWorker
	if ws, ok := p.s.(adapter.PackWorkers); ok && q.unguarded() > 1 {
		if wk, err = ws.Worker(ctx); err != nil {
			return fmt.Errorf("open a second write connection: %w", err)
		}
	}
	var mu sync.Mutex // the result, the callback, the progress
	done := func(revs []Rev, n int64) {
		mu.Lock()
		defer mu.Unlock()
		p.res.Removed += n
		if p.o.Removed != nil && len(revs) > 0 {
			p.o.Removed(revs, nil)
		}
		p.progress("remove", p.res.Removed, total)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// run removes r through w, in t's transactions; a guarded range goes
	// through batch, on the session.
	run := func(w db, t txns, r tidRange) error {
		var revs []Rev
		var n int64
		remove := func() error {
			var err error
			revs, n, err = p.removeRange(ctx, w, r)
			return err
		}
		err := p.again(r, &mu, func() error {
			if r.guarded {
				return p.batch(ctx, remove)
			}
			return inTxn(ctx, t, remove)
		})
		if err != nil {
			cancel()
			return fmt.Errorf("remove the revisions of transactions %d to %d: %w", r.lo, r.hi, err)
		}
		done(revs, n)
		return nil
	}
	workerErr := make(chan error, 1)
	if wk != nil {
		// Ranges without an unreachable object's kept revision need no look
		// at recent commits nor the commit lock: a second connection takes
		// them while this one goes on.
		go func() {
			defer wk.Close()
			w := db{wk.Write(), p.s.Flavor()}
			var err error
			for i := q.next(false); i >= 0 && err == nil; i = q.next(false) {
				err = run(w, wk, q.ranges[i])
			}
			workerErr <- err
		}()
	} else {
		workerErr <- nil
	}
	err = nil
	for i := q.next(true); i >= 0 && err == nil; i = q.next(true) {
		err = run(p.w, p.s, q.ranges[i])
	}
	if werr := <-workerErr; err == nil || errors.Is(err, context.Canceled) && werr != nil {
		err = werr
	}
	if err != nil {
		return err
	}
	return p.removeEmpty(ctx)
}

// deadlockRetries: how many times a batch the database chose as a deadlock's
// victim runs again. Two connections removing side by side deadlock now
// and then on InnoDB: one batch's UPDATE of prev_tid locks the index
// entries it reads before their rows, the other batch's DELETE the rows
// before their entries (4 to 9 times in a million objects' pack, of about
// 75 batches, while the reset covered every kept revision whose predecessor
// went; none in the slow-logged run since it covers only those whose
// predecessor's transaction goes).
const deadlockRetries = 10

// again runs remove, one database transaction, until it succeeds, fails
// otherwise than as a deadlock's victim (rolled back whole), or has been
// one deadlockRetries times; mu guards the log.
func (p *packer) again(r tidRange, mu *sync.Mutex, remove func() error) error {
	for try := 1; ; try++ {
		err := remove()
		if err == nil || !errors.Is(err, adapter.ErrDeadlock) || try > deadlockRetries {
			return err
		}
		mu.Lock()
		p.o.Logf("pack: removing the revisions of transactions %d to %d met a deadlock, run again (%d): %v", r.lo, r.hi, try, err)
		mu.Unlock()
	}
}

// guard marks the ranges that hold the revision an unreachable object
// keeps at the pack time: removing one takes a look at what committed
// meanwhile (batch). The other revisions planned, superseded at the pack
// time, go whatever a recent commit reaches. Every range is guarded when the
// unreachable objects are not known (a plan taken up from the tables), and
// may hold current revisions without garbage collection (objects deleted
// at the pack time).
func (p *packer) guard(ranges []tidRange) {
	known := p.g != nil && p.g.keep != nil
	var kept []uint64
	if known && p.guarded() {
		for i, tid := range p.g.keep {
			if !p.g.isMarked(uint32(i)) {
				kept = append(kept, tid)
			}
		}
		slices.Sort(kept)
	}
	for i := range ranges {
		r := &ranges[i]
		switch {
		case !p.guarded():
			r.current = !p.o.GC
		case !known:
			r.guarded, r.current = true, true
		default:
			j, _ := slices.BinarySearch(kept, r.lo)
			r.guarded = j < len(kept) && kept[j] <= r.hi
			r.current = r.guarded
		}
	}
}

// rangeQueue hands out the ranges, oldest first, each once.
type rangeQueue struct {
	mu     sync.Mutex
	ranges []tidRange
	taken  []bool
}

// next takes the oldest guarded range not yet taken, or else the oldest
// unguarded one (with guarded false, only those: a worker's); -1 when none
// is left. The session takes the guarded ones first, so that it and the
// worker remove side by side as long as both have ranges.
func (q *rangeQueue) next(guarded bool) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, want := range []bool{guarded, false} {
		for i, r := range q.ranges {
			if !q.taken[i] && r.guarded == want {
				q.taken[i] = true
				return i
			}
		}
	}
	return -1
}

func (q *rangeQueue) unguarded() int {
	n := 0
	for _, r := range q.ranges {
		if !r.guarded {
			n++
		}
	}
	return n
}

// batch runs remove in one database transaction. When the batch may remove
// unreachable objects, the transactions committed since the last look are
// read first outside any lock, then again under the commit lock (before
// remove, or after it where writers lock rows first); an object found
// reachable after remove ran means the batch is rolled back and run again
// without it.
func (p *packer) batch(ctx context.Context, remove func() error) error {
	if !p.guarded() {
		return p.inTxn(ctx, remove)
	}
	for {
		if err := p.catchUp(ctx); err != nil {
			return err
		}
		var newly []int64
		var newest uint64
		err := p.inTxn(ctx, func() error {
			if !p.s.Flavor().RowsFirst {
				if err := p.recheckLocked(ctx); err != nil {
					return err
				}
				return remove()
			}
			if err := remove(); err != nil {
				return err
			}
			var err error
			if newly, newest, err = p.recheck(ctx); err != nil {
				return err
			}
			if len(newly) > 0 {
				return errReachable
			}
			p.scanned = newest
			return nil
		})
		if !errors.Is(err, errReachable) {
			return err
		}
		if err := p.inTxn(ctx, func() error { return p.keep(ctx, newly) }); err != nil {
			return fmt.Errorf("keep what recent transactions reach: %w", err)
		}
		p.scanned = newest
	}
}

// errReachable: a batch met objects found reachable after it removed them.
var errReachable = errors.New("objects planned as garbage are reachable")

// removeRange removes the planned revisions of the transactions in r and
// marks those transactions packed, inside the write transaction. Rows are
// found by key, from pack_state or from lists read first, so that no
// statement scans a table (or locks a row a writer holds) beyond what it
// removes.
func (p *packer) removeRange(ctx context.Context, w db, r tidRange) ([]Rev, int64, error) {
	lo, hi := int64(r.lo), int64(r.hi)
	// The blob files to remove afterwards: of the blob_chunk rows removed, or
	// (a shared blob directory) of every revision removed.
	q := `SELECT zoid, tid FROM pack_state WHERE tid BETWEEN ? AND ?`
	if p.o.BlobsInDB {
		q = `SELECT DISTINCT b.zoid, b.tid FROM blob_chunk b JOIN pack_state s
			ON s.zoid = b.zoid AND s.tid = b.tid WHERE s.tid BETWEEN ? AND ?`
	}
	var blobs []Rev
	if p.o.Removed != nil {
		var err error
		if blobs, err = revs(ctx, w, q, lo, hi); err != nil {
			return nil, 0, err
		}
	}
	// current_object first (it refers to object_state): the objects that go
	// entirely, whose current revision is planned. Not looked for where
	// none can be: it would touch (on MySQL, lock) the current_object rows
	// of the objects whose older revisions go.
	if r.current {
		if _, err := w.deletePlanned(ctx, "current_object", lo, hi); err != nil {
			return nil, 0, err
		}
	}
	if _, err := w.deletePlanned(ctx, "blob_chunk", lo, hi); err != nil {
		return nil, 0, err
	}
	removed, err := w.deletePlanned(ctx, "object_state", lo, hi)
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.exec(ctx, `UPDATE {TXN} SET packed = {TRUE}, is_empty = CASE WHEN EXISTS
			(SELECT 1 FROM object_state o WHERE o.tid = {TXN}.tid) THEN {FALSE} ELSE {TRUE} END
			WHERE tid BETWEEN ? AND ? AND tid > 0
			AND (packed = {FALSE} OR tid IN (SELECT tid FROM pack_state_tid WHERE tid BETWEEN ? AND ?))`,
		lo, hi, lo, hi); err != nil {
		return nil, 0, err
	}
	// A kept revision whose predecessor's transaction is left empty (and
	// removed at the end) gets prev_tid 0, so that it never names a
	// transaction that is gone (PostgreSQL's foreign key). RelStorage resets
	// every kept revision whose predecessor goes; nothing reads the prev_tid
	// of a revision in a packed transaction (undo refuses those), and
	// resetting them all took a third of MySQL's removal. Revisions another
	// batch removes are left as they are.
	emptied, err := w.int64s(ctx, `SELECT tid FROM {TXN} WHERE tid BETWEEN ? AND ? AND tid > 0
		AND packed = {TRUE} AND is_empty = {TRUE}`, lo, hi)
	if err != nil {
		return nil, 0, err
	}
	if _, err := w.inBatches(ctx, `UPDATE object_state SET prev_tid = 0 WHERE tid <= ? AND prev_tid IN (?)
		AND NOT EXISTS (SELECT 1 FROM pack_state s WHERE s.tid = object_state.tid AND s.zoid = object_state.zoid)`,
		emptied, int64(p.res.PackTID)); err != nil {
		return nil, 0, err
	}
	// The transactions read for references in this run are whole now.
	if i, j := rangeOf(p.deferred, lo, hi); i < j {
		if _, err := w.inBatches(ctx, `INSERT INTO object_refs_added (tid) SELECT tid FROM {TXN}
			WHERE tid IN (?)`, p.deferred[i:j]); err != nil {
			return nil, 0, err
		}
	}
	return blobs, removed, nil
}

// emptyBatch is how many empty transactions one database transaction
// removes.
const emptyBatch = 5000

// removeEmpty removes the packed transactions left empty, with their
// references, once every batch is done, as RelStorage's pack does: until
// then a revision a later batch removes may name one as its prev_tid.
func (p *packer) removeEmpty(ctx context.Context) error {
	empty, err := p.r.int64s(ctx, `SELECT tid FROM {TXN} WHERE tid > 0 AND packed = {TRUE} AND is_empty = {TRUE}`)
	if err != nil {
		return fmt.Errorf("read the empty transactions: %w", err)
	}
	for len(empty) > 0 {
		n := min(len(empty), emptyBatch)
		err := p.inTxn(ctx, func() error {
			for _, table := range []string{"object_refs_added", "object_ref", "{TXN}"} {
				if _, err := p.w.inBatches(ctx, `DELETE FROM `+table+` WHERE tid IN (?)`, empty[:n]); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove the empty transactions: %w", err)
		}
		empty = empty[n:]
	}
	return nil
}

// rangeOf returns the indexes of sorted's values in [lo, hi].
func rangeOf(sorted []int64, lo, hi int64) (int, int) {
	i, _ := slices.BinarySearch(sorted, lo)
	j, _ := slices.BinarySearch(sorted, hi+1)
	return i, j
}

// revs reads (zoid, tid) rows inside w's write transaction.
func revs(ctx context.Context, w db, q string, args ...any) ([]Rev, error) {
	var out []Rev
	err := w.each(ctx, q, args, func(rows adapter.Rows) error {
		var oid, tid int64
		if err := rows.Scan(&oid, &tid); err != nil {
			return err
		}
		out = append(out, Rev{uint64(oid), uint64(tid)})
		return nil
	})
	return out, err
}

func (p *packer) removeObjects(ctx context.Context) error {
	var garbage []int64
	if p.g != nil {
		garbage = p.g.unmarked()
	} else {
		var err error
		garbage, err = p.r.int64s(ctx, `SELECT zoid FROM pack_object WHERE keep = {FALSE} ORDER BY zoid`)
		if err != nil {
			return fmt.Errorf("read the plan: %w", err)
		}
	}
	total := int64(len(garbage))
	p.progress("remove", 0, total)
	var done int64
	for len(garbage) > 0 {
		n := min(len(garbage), objectsPerBatch)
		planned := garbage[:n]
		garbage = garbage[n:]
		done += int64(n)
		var removed []uint64
		err := p.batch(ctx, func() error {
			batch := p.stillGarbage(planned)
			removed = removed[:0]
			if len(batch) == 0 {
				return nil
			}
			// Only revisions the plan saw: a writer's newer one stays, and the
			// check after (or before) finds it.
			upTo := int64(p.scanned)
			for _, q := range []string{
				`DELETE FROM blob_chunk WHERE tid <= ? AND zoid IN (?)`,
				`DELETE FROM object_state WHERE tid <= ? AND zoid IN (?)`,
			} {
				if _, err := p.w.inBatches(ctx, q, batch, upTo); err != nil {
					return err
				}
			}
			for _, q := range []string{`DELETE FROM object_ref WHERE zoid IN (?)`, `DELETE FROM object_refs_added WHERE zoid IN (?)`} {
				if _, err := p.w.inBatches(ctx, q, batch); err != nil {
					return err
				}
			}
			for _, oid := range batch {
				removed = append(removed, uint64(oid))
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("remove unreachable objects: %w", err)
		}
		p.res.Removed += int64(len(removed))
		if p.o.Removed != nil && len(removed) > 0 {
			p.o.Removed(nil, removed)
		}
		p.progress("remove", done, total)
	}
	return nil
}

// stillGarbage drops from oids those found reachable since the plan.
func (p *packer) stillGarbage(oids []int64) []int64 {
	if p.g == nil {
		return oids
	}
	out := oids[:0:0]
	for _, oid := range oids {
		if i, ok := p.g.index(uint64(oid)); ok && !p.g.isMarked(i) {
			out = append(out, oid)
		}
	}
	return out
}

// catchUp reads the transactions committed since the last look, outside any
// lock, and keeps what they reach.
func (p *packer) catchUp(ctx context.Context) error {
	written, referenced, newest, err := p.statesSince(ctx, p.r, p.scanned)
	if err != nil {
		return err
	}
	newly, err := p.reach(ctx, written, referenced)
	if err != nil {
		return err
	}
	if len(newly) > 0 {
		if err := p.inTxn(ctx, func() error { return p.keep(ctx, newly) }); err != nil {
			return fmt.Errorf("keep what recent transactions reach: %w", err)
		}
	}
	p.scanned = newest
	return nil
}

// recheckLocked takes the commit lock in the write transaction, reads what
// committed since the last look and keeps what it reaches, in the same
// transaction.
func (p *packer) recheckLocked(ctx context.Context) error {
	newly, newest, err := p.recheck(ctx)
	if err == nil {
		err = p.keep(ctx, newly)
	}
	if err == nil {
		p.scanned = newest
	}
	return err
}

// recheck takes the commit lock in the write transaction and returns the
// planned garbage that what committed since the last look reaches (marked in
// the graph, not yet in the tables), with the newest tid it read.
func (p *packer) recheck(ctx context.Context) ([]int64, uint64, error) {
	if err := p.s.LockCommit(ctx); err != nil {
		return nil, 0, fmt.Errorf("take the commit lock: %w", err)
	}
	written, referenced, newest, err := p.statesSince(ctx, p.w, p.scanned)
	if err != nil {
		return nil, 0, err
	}
	newly, err := p.reach(ctx, written, referenced)
	return newly, newest, err
}

// reach marks the planned garbage among the oids, and what it reaches, as
// reachable in the graph, and returns the oids newly marked.
func (p *packer) reach(ctx context.Context, lists ...[]uint64) ([]int64, error) {
	if len(lists[0]) == 0 {
		return nil, nil
	}
	if p.g == nil {
		// A plan taken up from the tables (skip-prepack): the graph is read
		// once something was committed meanwhile.
		g, err := loadGraph(ctx, p.r, true)
		if err != nil {
			return nil, fmt.Errorf("read the object graph: %w", err)
		}
		p.g = g
	}
	var newly []int64
	for _, oids := range lists {
		for _, oid := range oids {
			for _, o := range p.g.mark(oid) {
				newly = append(newly, int64(o))
			}
		}
	}
	return newly, nil
}

// keep records newly reachable objects in pack_object (when the plan is
// there: a prepack-only pack's, taken up), and (history-preserving) takes
// their revision current at the pack time out of pack_state.
func (p *packer) keep(ctx context.Context, newly []int64) error {
	if len(newly) == 0 {
		return nil
	}
	p.res.Kept += int64(len(newly))
	p.o.Logf("pack: %d objects planned as garbage are reachable from transactions committed during the pack; kept", len(newly))
	if _, err := p.w.inBatches(ctx, `UPDATE pack_object SET keep = {TRUE} WHERE zoid IN (?)`, newly); err != nil {
		return err
	}
	if !p.o.KeepHistory {
		return nil
	}
	revs := make([]Rev, 0, len(newly))
	for _, oid := range newly {
		i, _ := p.g.index(uint64(oid)) // newly marked: a node
		revs = append(revs, Rev{OID: uint64(oid), TID: p.g.keep[i]})
	}
	if _, err := p.w.onRevs(ctx, `DELETE FROM pack_state`, revs); err != nil {
		return err
	}
	// Every older revision of theirs is still planned, and a batch that
	// already passed them left their prev_tid as it was (they were
	// planned then), though it may name a transaction that batch emptied:
	// reset here, whatever that transaction becomes (a few rows).
	_, err := p.w.onRevs(ctx, `UPDATE object_state SET prev_tid = 0`, revs)
	return err
}

// cleanup empties the pack tables, as RelStorage leaves them after a pack.
func (p *packer) cleanup(ctx context.Context) error {
	p.progress("cleanup", 0, 0)
	tables, changed := []string{"pack_object"}, []string{"object_state"}
	if p.o.KeepHistory {
		tables = append(tables, "pack_state", "pack_state_tid")
		changed = append(changed, "current_object")
	}
	if err := p.w.empty(ctx, tables...); err != nil {
		return err
	}
	if verb := p.s.Flavor().Analyze; verb != "" && p.res.Removed > 0 {
		for _, t := range changed {
			if _, err := p.w.exec(ctx, verb+" "+t); err != nil {
				return fmt.Errorf("refresh the statistics of %s: %w", t, err)
			}
		}
	}
	return nil
}
