package pack

import (
	"context"
	"fmt"
	"slices"

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

// refBatchRows is how many object_ref rows one batch writes.
const refBatchRows = 20000

// refBatch is what one batch writes.
type refBatch struct {
	keys []int64 // tids (history-preserving) or zoids (history-free) read
	done [][]any // their object_refs_added rows
	refs [][]any // object_ref rows
	bad  []int64 // keys with an unreadable state: not added
	seen int64   // states read
}

// analyze reads the references of every state not yet in object_ref, up to
// the newest transaction at its start, and returns that transaction's tid.
func (p *packer) analyze(ctx context.Context) (uint64, error) {
	last, err := p.lastTID(ctx, p.r)
	if err != nil {
		return 0, fmt.Errorf("read the newest transaction: %w", err)
	}
	var count, stream string
	if p.o.KeepHistory {
		pending := `FROM object_state o WHERE o.tid > 0 AND o.tid <= ?
			AND NOT EXISTS (SELECT 1 FROM object_refs_added a WHERE a.tid = o.tid)`
		count = `SELECT COUNT(*) ` + pending
		stream = `SELECT o.tid, o.zoid, o.tid, o.state ` + pending + ` ORDER BY o.tid`
	} else {
		pending := `FROM object_state o LEFT JOIN object_refs_added a ON a.zoid = o.zoid
			WHERE o.tid <= ? AND (a.zoid IS NULL OR a.tid <> o.tid)`
		count = `SELECT COUNT(*) ` + pending
		stream = `SELECT o.zoid, o.zoid, o.tid, o.state ` + pending
	}
	total, err := p.r.int64(ctx, count, int64(last))
	if err != nil {
		return 0, fmt.Errorf("count the states to analyze: %w", err)
	}
	p.progress("analyze", 0, total)
	b := &refBatch{}
	var key int64 = -1
	var done int64
	err = p.r.each(ctx, stream, []any{int64(last)}, func(rows adapter.Rows) error {
		var k, oid, tid int64
		var state []byte
		if err := rows.Scan(&k, &oid, &tid, &state); err != nil {
			return err
		}
		if k != key {
			// A batch ends only between transactions (history-preserving).
			if len(b.refs) >= refBatchRows || b.seen >= refBatchRows {
				if err := p.writeRefs(ctx, b); err != nil {
					return err
				}
				done += b.seen
				p.progress("analyze", done, total)
				b = &refBatch{}
			}
			key = k
			b.keys = append(b.keys, k)
			if p.o.KeepHistory {
				b.done = append(b.done, []any{k})
			} else {
				b.done = append(b.done, []any{oid, tid})
			}
		}
		b.seen++
		if state == nil {
			return nil
		}
		to, err := pickle.OIDs(state)
		if err != nil {
			p.unreadable(uint64(oid), uint64(tid), err)
			b.bad = append(b.bad, k)
			return nil
		}
		slices.Sort(to)
		for _, t := range slices.Compact(to) {
			if p.o.KeepHistory {
				b.refs = append(b.refs, []any{oid, tid, int64(t)})
			} else {
				b.refs = append(b.refs, []any{oid, int64(t), tid})
			}
		}
		return nil
	})
	if err == nil {
		err = p.writeRefs(ctx, b)
		done += b.seen
	}
	if err != nil {
		return 0, fmt.Errorf("analyze references: %w", err)
	}
	p.res.Analyzed = done
	p.progress("analyze", done, total)
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
	done := b.done
	if len(b.bad) > 0 {
		done = nil
		for i, k := range b.keys {
			if !slices.Contains(b.bad, k) {
				done = append(done, b.done[i])
			}
		}
	}
	return p.inTxn(ctx, func() error {
		if _, err := p.w.inBatches(ctx, `DELETE FROM object_ref WHERE `+col+` IN (?)`, b.keys); err != nil {
			return err
		}
		if _, err := p.w.inBatches(ctx, `DELETE FROM object_refs_added WHERE `+col+` IN (?)`, b.keys); err != nil {
			return err
		}
		if err := p.w.insert(ctx, "object_ref", refCols, b.refs); err != nil {
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
