package pack

import (
	"context"
	"fmt"
	"slices"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Planning: pack_state and pack_state_tid as RelStorage's pre_pack leaves
// them; pack_object too when the plan is kept for later (prepack-only) or
// read back (check-refs). The objects and the revisions each keeps come from
// one ordered read of object_state's keys and the reachability is found in
// memory, so a whole pack writes no pack_object row: on PostgreSQL, filling
// it and planning through it took a fifth of a pack's time.

// prepack plans the pack; res.PackTID stays 0 when there is nothing to pack.
func (p *packer) prepack(ctx context.Context) error {
	tid, err := p.choose(ctx)
	if err != nil {
		return fmt.Errorf("choose the pack transaction: %w", err)
	}
	if tid == 0 {
		p.o.Logf("pack: every transaction at or before the pack time is packed already")
		return nil
	}
	p.res.PackTID = tid
	p.o.Logf("pack: packing to transaction %d (gc %v)", tid, p.o.GC)
	p.progress("plan", 0, 0)
	tables := []string{"pack_object"}
	if p.o.KeepHistory {
		tables = append(tables, "pack_state", "pack_state_tid")
	}
	if err := p.w.empty(ctx, tables...); err != nil {
		return err
	}
	if p.o.GC && p.o.KeepHistory {
		// Before the objects: readObjects counts the states the analysis will
		// read, those of transactions not listed.
		if p.recorded, err = p.r.int64s(ctx, `SELECT tid FROM object_refs_added ORDER BY tid`); err != nil {
			return fmt.Errorf("read the transactions analyzed before: %w", err)
		}
	}
	g, err := p.readObjects(ctx)
	if err != nil {
		return fmt.Errorf("read the objects to pack: %w", err)
	}
	p.res.Objects = int64(len(g.oids))
	if p.o.Sized != nil {
		p.o.Sized(len(g.oids))
	}
	if p.o.GC {
		// The references earlier packs read; the analysis adds those it
		// reads, without reading them back.
		p.g = g
		p.progress("traverse", 0, p.res.Objects)
		if err := p.readGraph(ctx); err != nil {
			return fmt.Errorf("read the object graph: %w", err)
		}
		if p.scanned, err = p.analyze(ctx); err != nil {
			return err
		}
		if err := p.collect(ctx); err != nil {
			return err
		}
	}
	if p.o.KeepHistory {
		if err := p.planStates(ctx, g); err != nil {
			return err
		}
	}
	if p.o.PrepackOnly || p.o.CheckRefs {
		return p.fillPackObject(ctx, g)
	}
	return nil
}

// readGraph adds to the graph the references earlier packs read. History-
// preserving, it also finds the transactions whose references an
// interrupted analysis left unrecorded (p.stale): only those need removing
// before the analysis writes them again.
func (p *packer) readGraph(ctx context.Context) error {
	stale, err := p.g.readEdges(ctx, p.r, p.o.KeepHistory, p.recorded)
	p.stale = stale
	return err
}

// planBatch is how many rows one statement (or COPY) of the plan writes.
const planBatch = 20000

// readObjects returns the objects with revisions at or before the pack
// time (history-free: every object), each with the revision it keeps, the
// newest of those. History-preserving, the older revisions, which go
// whatever the traversal finds, are written into pack_state as they pass
// (on the write connection, while the read goes on): the analysis does not
// read them. With garbage collection, it also counts the states the
// analysis will read (p.toRead).
func (p *packer) readObjects(ctx context.Context) (*graph, error) {
	g := &graph{}
	hp := p.o.KeepHistory
	// In the primary key's order, with no condition on tid (the databases
	// would sort the rows again, in a third to a fifth of the time).
	q := `SELECT zoid, tid FROM object_state ORDER BY zoid`
	if hp {
		q = `SELECT zoid, tid FROM object_state ORDER BY zoid, tid`
	}
	count := hp && p.o.GC
	unread := func(tid int64) bool {
		_, ok := slices.BinarySearch(p.recorded, tid)
		return !ok
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	out, written := p.planWriter(ctx, cancel)
	var older []int64 // pack_state rows: tid, zoid
	err := p.r.each(ctx, q, nil, func(rows adapter.Rows) error {
		var oid, tid int64
		if err := rows.Scan(&oid, &tid); err != nil {
			return err
		}
		if count && unread(tid) {
			p.toRead++
		}
		if hp && uint64(tid) > p.res.PackTID {
			return nil // after the pack time
		}
		if n := len(g.oids); n > 0 && g.oids[n-1] == uint64(oid) {
			if count && unread(int64(g.keep[n-1])) {
				p.toRead-- // superseded: in pack_state, not read
			}
			older = append(older, int64(g.keep[n-1]), oid)
			g.keep[n-1] = uint64(tid)
			if len(older) >= 2*planBatch {
				select {
				case out <- older:
				case <-ctx.Done():
					return ctx.Err()
				}
				older = make([]int64, 0, 2*planBatch)
			}
			return nil
		}
		g.oids = append(g.oids, uint64(oid))
		g.keep = append(g.keep, uint64(tid))
		return nil
	})
	if err == nil && len(older) > 0 {
		out <- older
	}
	close(out)
	if werr := <-written; werr != nil {
		err = werr // the read's error is then the cancellation
	}
	g.marked = make([]uint64, (len(g.oids)+63)/64)
	return g, err
}

// planWriter writes the batches of pack_state rows sent on the channel
// returned, each in a transaction of the write connection, until it is
// closed; then the second channel gives the first error (after which it
// called cancel and dropped the rest).
func (p *packer) planWriter(ctx context.Context, cancel func()) (chan<- []int64, <-chan error) {
	in, done := make(chan []int64, 1), make(chan error, 1)
	go func() {
		var err error
		for rows := range in {
			if err == nil {
				err = p.inTxn(ctx, func() error { return p.w.insert(ctx, "pack_state", []string{"tid", "zoid"}, rows) })
				if err != nil {
					cancel()
				}
			}
		}
		done <- err
	}()
	return in, done
}

// fillPackObject writes the plan's objects into pack_object, as RelStorage's
// pre_pack leaves it: keep false for the unreachable ones.
func (p *packer) fillPackObject(ctx context.Context, g *graph) error {
	p.progress("plan", 0, 0)
	var kept, garbage []int64
	for i, oid := range g.oids {
		if !p.o.GC || g.isMarked(uint32(i)) {
			kept = append(kept, int64(oid), int64(g.keep[i]))
		} else {
			garbage = append(garbage, int64(oid), int64(g.keep[i]))
		}
	}
	for _, part := range []struct {
		rows []int64
		keep string
	}{{kept, "{TRUE}"}, {garbage, "{FALSE}"}} {
		for rows := part.rows; len(rows) > 0; {
			n := min(len(rows), 2*planBatch)
			err := p.inTxn(ctx, func() error {
				return p.w.insertWith(ctx, "pack_object", []string{"zoid", "keep_tid"}, rows[:n], "keep", part.keep)
			})
			if err != nil {
				return fmt.Errorf("fill pack_object: %w", err)
			}
			rows = rows[n:]
		}
	}
	return nil
}

// collect finds the unreachable objects.
func (p *packer) collect(ctx context.Context) error {
	p.progress("traverse", 0, p.res.Objects)
	g := p.g
	g.indexEdges()
	g.markRoot(0)
	tid := int64(p.res.PackTID)
	// Objects changed after the pack time, and what states written after it
	// refer to, are kept with what they reach.
	roots := []string{`SELECT zoid FROM object_state WHERE tid > ?`,
		`SELECT DISTINCT to_zoid FROM object_ref WHERE tid > ?`}
	if p.o.KeepHistory {
		roots[0] = `SELECT zoid FROM current_object WHERE tid > ?`
	}
	for _, q := range roots {
		err := p.r.each(ctx, q, []any{tid}, func(rows adapter.Rows) error {
			var oid int64
			if err := rows.Scan(&oid); err != nil {
				return err
			}
			g.markRoot(uint64(oid))
			return nil
		})
		if err != nil {
			return fmt.Errorf("read the recent objects: %w", err)
		}
	}
	if oid, ok := p.unreadableReached(); ok {
		p.res.GCSkipped = true
		p.warn("the references of oid %d cannot be read and it is reachable: it may refer to any object, "+
			"so no object is collected by this pack (see the unreadable states listed)", oid)
		g.markAll()
	}
	garbage := g.unmarked()
	p.res.Garbage = int64(len(garbage))
	p.progress("traverse", p.res.Objects, p.res.Objects)
	p.o.Logf("pack: %d of %d objects are unreachable", len(garbage), len(g.oids))
	return nil
}

// unreadableReached returns an unreadable state that counts: one whose
// references the traversal would have followed.
func (p *packer) unreadableReached() (uint64, bool) {
	for _, u := range p.res.Unreadable {
		if u.TID > p.res.PackTID {
			return u.OID, true
		}
		i, ok := p.g.index(u.OID)
		if !ok || !p.g.isMarked(i) {
			continue
		}
		if !p.o.KeepHistory || u.TID >= p.g.keep[i] {
			return u.OID, true
		}
	}
	return 0, false
}

// planStates completes pack_state, which holds the superseded revisions
// already (readObjects): with garbage collection, the revisions the
// unreachable objects keep at the pack time; without, the objects deleted
// at or before it (their current revision is the deletion). Then
// pack_state_tid lists their transactions (history-preserving).
func (p *packer) planStates(ctx context.Context, g *graph) error {
	p.progress("plan", 0, 0)
	return p.inTxn(ctx, func() error {
		if p.o.GC {
			var rows []int64
			for i, oid := range g.oids {
				if !g.isMarked(uint32(i)) {
					rows = append(rows, int64(g.keep[i]), int64(oid))
				}
			}
			if err := p.w.insert(ctx, "pack_state", []string{"tid", "zoid"}, rows); err != nil {
				return fmt.Errorf("plan the revisions to remove: %w", err)
			}
		} else {
			_, err := p.w.exec(ctx, `INSERT INTO pack_state (tid, zoid) SELECT o.tid, o.zoid
				FROM object_state o JOIN current_object c ON c.zoid = o.zoid AND c.tid = o.tid
				WHERE o.state IS NULL AND o.tid <= ?`, int64(p.res.PackTID))
			if err != nil {
				return fmt.Errorf("plan the revisions to remove: %w", err)
			}
		}
		if _, err := p.w.exec(ctx, `INSERT INTO pack_state_tid (tid) SELECT DISTINCT tid FROM pack_state`); err != nil {
			return fmt.Errorf("plan the transactions to pack: %w", err)
		}
		return nil
	})
}

// resumePlan takes up a plan left by a prepack-only pack (ours or RelStorage's).
func (p *packer) resumePlan(ctx context.Context) error {
	v, err := p.r.int64(ctx, `SELECT MAX(keep_tid) FROM pack_object`)
	if err != nil {
		return fmt.Errorf("read the prepared pack: %w", err)
	}
	if v == 0 {
		p.warn("skip-prepack: no prepared pack was found (pack_object is empty); nothing was packed")
		return nil
	}
	p.res.PackTID = uint64(v)
	// Everything after the newest object in the plan is read again before
	// anything is removed.
	p.scanned = uint64(v)
	garbage, err := p.r.int64(ctx, `SELECT COUNT(*) FROM pack_object WHERE keep = {FALSE}`)
	p.res.Garbage = garbage
	return err
}

// checkRefs lists the references of kept objects to objects that do not
// exist (zodbpack --check-refs-only). One level deep, as RelStorage's.
func (p *packer) checkRefs(ctx context.Context) error {
	exists := `SELECT 1 FROM object_state o WHERE o.zoid = r.to_zoid AND o.state IS NOT NULL`
	if p.o.KeepHistory {
		exists = `SELECT 1 FROM current_object c JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid
			WHERE c.zoid = r.to_zoid AND o.state IS NOT NULL`
	}
	return p.r.each(ctx, `SELECT DISTINCT r.zoid, r.to_zoid FROM pack_object p JOIN object_ref r ON r.zoid = p.zoid
		WHERE p.keep = {TRUE} AND r.tid >= p.keep_tid AND NOT EXISTS (`+exists+`) ORDER BY r.zoid, r.to_zoid`, nil,
		func(rows adapter.Rows) error {
			var from, to int64
			if err := rows.Scan(&from, &to); err != nil {
				return err
			}
			p.res.BrokenRefs = append(p.res.BrokenRefs, [2]uint64{uint64(from), uint64(to)})
			p.o.Logf("pack: check-refs: object %d refers to object %d, which does not exist", from, to)
			return nil
		})
}
