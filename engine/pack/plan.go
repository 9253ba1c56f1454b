package pack

import (
	"context"
	"fmt"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Planning: pack_object, the keep flags and pack_state, as RelStorage's
// pre_pack leaves them. One difference: pack_object starts with every
// object kept and only the garbage found is then marked keep = false, so a
// plan cut short never lists a reachable object as garbage.

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
	if p.o.KeepHistory {
		// pack_object first: analyze reads only the revisions it keeps.
		err = p.fillPackObject(ctx, `INSERT INTO pack_object (zoid, keep, keep_tid)
			SELECT zoid, {TRUE}, MAX(tid) FROM object_state WHERE tid > 0 AND tid <= ? GROUP BY zoid`, int64(tid))
	} else {
		// Every object, so that the graph holds what the recent ones refer to.
		err = p.fillPackObject(ctx, `INSERT INTO pack_object (zoid, keep, keep_tid)
			SELECT zoid, {TRUE}, tid FROM object_state`)
	}
	if err == nil && p.o.GC {
		// The graph's nodes and the references earlier packs read; the
		// analysis adds those it reads, without reading them back.
		p.progress("traverse", 0, p.res.Objects)
		if p.g, _, err = loadNodes(ctx, p.r); err == nil {
			err = p.g.readEdges(ctx, p.r)
		}
		if err != nil {
			return fmt.Errorf("read the object graph: %w", err)
		}
		p.scanned, err = p.analyze(ctx)
	}
	if err != nil {
		return err
	}
	if p.o.GC {
		if err := p.collect(ctx); err != nil {
			return err
		}
	}
	if p.o.KeepHistory {
		return p.planStates(ctx)
	}
	return nil
}

func (p *packer) fillPackObject(ctx context.Context, insert string, args ...any) error {
	p.progress("plan", 0, 0)
	if err := p.w.empty(ctx, "pack_object"); err != nil {
		return err
	}
	return p.inTxn(ctx, func() error {
		n, err := p.w.exec(ctx, insert, args...)
		if err != nil {
			return fmt.Errorf("fill pack_object: %w", err)
		}
		p.res.Objects = n
		return nil
	})
}

// collect finds the unreachable objects and marks them keep = false.
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
	if oid, ok := p.unreadableReached(ctx); ok {
		p.res.GCSkipped = true
		p.warn("the references of oid %d cannot be read and it is reachable: it may refer to any object, "+
			"so no object is collected by this pack (see the unreadable states listed)", oid)
		g.markAll()
	}
	garbage := g.unmarked()
	p.res.Garbage = int64(len(garbage))
	p.progress("traverse", p.res.Objects, p.res.Objects)
	p.o.Logf("pack: %d of %d objects are unreachable", len(garbage), len(g.oids))
	for len(garbage) > 0 {
		n := min(len(garbage), 20*maxIn)
		err := p.inTxn(ctx, func() error {
			_, err := p.w.inBatches(ctx, `UPDATE pack_object SET keep = {FALSE} WHERE zoid IN (?)`, garbage[:n])
			return err
		})
		if err != nil {
			return fmt.Errorf("mark the unreachable objects: %w", err)
		}
		garbage = garbage[n:]
	}
	return nil
}

// unreadableReached returns an unreadable state that counts: one whose
// references the traversal would have followed.
func (p *packer) unreadableReached(ctx context.Context) (uint64, bool) {
	for _, u := range p.res.Unreadable {
		if u.TID > p.res.PackTID {
			return u.OID, true
		}
		i, ok := p.g.index(u.OID)
		if !ok || !p.g.isMarked(i) {
			continue
		}
		if !p.o.KeepHistory {
			return u.OID, true
		}
		keep, err := p.r.int64(ctx, `SELECT keep_tid FROM pack_object WHERE zoid = ?`, int64(u.OID))
		if err != nil || u.TID >= uint64(keep) {
			return u.OID, true
		}
	}
	return 0, false
}

// planStates fills pack_state with the revisions to remove and
// pack_state_tid with their transactions (history-preserving).
func (p *packer) planStates(ctx context.Context) error {
	p.progress("plan", 0, 0)
	tid := int64(p.res.PackTID)
	// Revisions of kept objects older than the one current at the pack time.
	stmts := []string{`INSERT INTO pack_state (tid, zoid) SELECT o.tid, o.zoid
		FROM object_state o JOIN pack_object p ON p.zoid = o.zoid
		WHERE p.keep = {TRUE} AND o.tid > 0 AND o.tid <> p.keep_tid AND o.tid <= ?`}
	if p.o.GC {
		stmts = append(stmts, `INSERT INTO pack_state (tid, zoid) SELECT o.tid, o.zoid
			FROM object_state o JOIN pack_object p ON p.zoid = o.zoid
			WHERE p.keep = {FALSE} AND o.tid > 0 AND o.tid <= ?`)
	} else {
		// Without collection, objects deleted at or before the pack time go.
		stmts = append(stmts, `INSERT INTO pack_state (tid, zoid) SELECT o.tid, o.zoid
			FROM object_state o JOIN pack_object p ON p.zoid = o.zoid AND p.keep_tid = o.tid
			WHERE o.state IS NULL AND o.tid <= ?
			AND NOT EXISTS (SELECT 1 FROM object_state n WHERE n.zoid = o.zoid AND n.tid > o.tid)`)
	}
	if err := p.w.empty(ctx, "pack_state", "pack_state_tid"); err != nil {
		return err
	}
	return p.inTxn(ctx, func() error {
		for _, q := range stmts {
			if _, err := p.w.exec(ctx, q, tid); err != nil {
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
