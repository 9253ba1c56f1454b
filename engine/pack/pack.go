// Package pack packs a RelStorage database: it removes the revisions a
// history-preserving database no longer needs and, with garbage
// collection, the objects nothing reaches from the root. It reads and
// leaves RelStorage's tables (object_ref, object_refs_added, pack_object,
// pack_state, pack_state_tid) as RelStorage's zodbpack does, so either can
// pack after the other, or finish what the other prepared.
//
// It runs in three steps, each resumable:
//
//  1. analyze: the references of the states not yet read go into
//     object_ref (refs.go);
//  2. plan: pack_object gets the objects with revisions at or before the
//     pack time; the reachable ones are found in memory (graph.go) and the
//     others marked keep = false; pack_state lists the revisions to remove;
//  3. remove: by batches, each one database transaction (remove.go).
//     Transactions committed meanwhile are read before every batch, and
//     again under the commit lock when the batch removes unreachable
//     objects: what they reach is kept.
//
// The algorithm is written once, in SQL the four databases share; a
// dialect supplies the connections, its locks and a few spellings
// (adapter.Flavor).
package pack

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// MaxTID asks for a pack up to the newest transaction.
const MaxTID = 1<<63 - 2

// Options say what to pack.
type Options struct {
	KeepHistory bool
	// TID: pack to the newest transaction at or before it (history-
	// preserving: the newest not yet packed).
	TID         uint64
	GC          bool // pack-gc: remove objects unreachable from the root
	PrepackOnly bool // plan, leaving the pack tables for a later SkipPrepack
	SkipPrepack bool // remove what an earlier PrepackOnly planned
	// CheckRefs plans a garbage-collecting pack up to now and lists the
	// references of kept objects to objects that do not exist; nothing is removed.
	CheckRefs bool
	// BlobsInDB: blob_chunk holds the blobs, and Removed is told of the blob
	// revisions removed; otherwise (a shared blob directory, or none) it is
	// told of every revision removed.
	BlobsInDB bool
	// Removed is called after each committed batch with the revisions it
	// removed (history-preserving) or the objects (history-free), for the
	// caller's blob files and caches. May be nil.
	Removed  func(revs []Rev, oids []uint64)
	Progress func(Progress) // may be nil
	// Sized is told how many objects the plan holds, once known (its
	// memory grows with them). May be nil.
	Sized func(objects int)
	Logf  func(format string, args ...any)
}

// Rev is one revision of an object.
type Rev struct{ OID, TID uint64 }

// Progress is where a pack is.
type Progress struct {
	Phase string `json:"phase"` // analyze, traverse, plan, remove, cleanup
	Done  int64  `json:"done"`
	Total int64  `json:"total"` // 0 when not known
}

// Unreadable is a state whose references could not be read.
type Unreadable struct {
	OID   uint64 `json:"oid"`
	TID   uint64 `json:"tid"`
	Error string `json:"error"`
}

// Result says what a pack did.
type Result struct {
	PackTID     uint64       `json:"pack_tid"` // 0: nothing to pack
	Analyzed    int64        `json:"analyzed"` // states whose references were read
	Objects     int64        `json:"objects"`  // objects with revisions at or before the pack time
	Garbage     int64        `json:"garbage"`  // of them, unreachable
	Removed     int64        `json:"removed"`  // revisions (history-preserving) or objects removed
	Kept        int64        `json:"kept"`     // planned garbage kept: transactions committed during the pack reach it
	Unreadable  []Unreadable `json:"unreadable,omitempty"`
	GCSkipped   bool         `json:"gc_skipped"` // an unreadable state might reach anything: nothing was collected
	BrokenRefs  [][2]uint64  `json:"broken_refs,omitempty"`
	Warnings    []string     `json:"warnings,omitempty"`
	DurationSec float64      `json:"duration_sec"`
	// Phases: seconds spent in each phase (analyze, traverse, plan, remove, cleanup).
	Phases map[string]float64 `json:"phases"`
}

// packer is one run.
type packer struct {
	s   adapter.PackSession
	o   Options
	r   db // streaming reads
	w   db // changes
	res Result
	// scanned: every transaction up to it has been read for references.
	scanned uint64
	// g: the graph; during the analysis, its nodes and the edges found so
	// far (the analysis adds those it reads). Nil until needed.
	g *graph
	// deferred: transactions at or before the pack time whose kept
	// revisions were read, recorded as read once the others are removed.
	deferred []int64
	// badKeys: the transactions (history-free: objects) with a state that
	// could not be read; never recorded as read.
	badKeys map[int64]bool
	// stale: history-preserving, the transactions with object_ref rows that
	// object_refs_added does not list (an interrupted analysis's), sorted,
	// found by readGraph before the analysis; only their rows are replaced.
	stale []int64
	// recorded: history-preserving with garbage collection, the
	// transactions object_refs_added lists at the start, sorted.
	recorded []int64
	// toRead: history-preserving with garbage collection, how many states
	// the analysis will read (counted by readObjects, for the progress).
	toRead int64
	start  time.Time
	phase  string    // the current phase
	since  time.Time // when it began
}

// Run packs through s, which holds the pack lock.
func Run(ctx context.Context, s adapter.PackSession, o Options) (*Result, error) {
	if o.PrepackOnly && o.SkipPrepack {
		return nil, errors.New("pack: prepack-only and skip-prepack exclude each other")
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	p := &packer{s: s, o: o, r: db{s.Read(), s.Flavor()}, w: db{s.Write(), s.Flavor()}, start: time.Now(),
		badKeys: map[int64]bool{}}
	err := p.run(ctx)
	p.endPhase()
	p.res.DurationSec = time.Since(p.start).Seconds()
	if err != nil {
		s.Rollback(context.WithoutCancel(ctx))
		return &p.res, err
	}
	return &p.res, nil
}

func (p *packer) run(ctx context.Context) error {
	if p.o.CheckRefs {
		p.o.GC, p.o.TID = true, MaxTID
		if err := p.prepack(ctx); err != nil || p.res.PackTID == 0 {
			return err
		}
		return p.checkRefs(ctx)
	}
	if !p.o.KeepHistory && !p.o.GC {
		p.warn("garbage collection is off (pack-gc false) and the storage is history-free: a pack has nothing to do")
		return nil
	}
	if p.o.SkipPrepack {
		if err := p.resumePlan(ctx); err != nil {
			return err
		}
	} else if err := p.prepack(ctx); err != nil {
		return err
	}
	if p.o.PrepackOnly {
		return nil
	}
	if p.res.PackTID == 0 {
		if p.o.KeepHistory {
			// What a pack stopped before its end left.
			return p.removeEmpty(ctx)
		}
		return nil
	}
	if err := p.remove(ctx); err != nil {
		return err
	}
	return p.cleanup(ctx)
}

func (p *packer) endPhase() {
	if p.phase != "" {
		if p.res.Phases == nil {
			p.res.Phases = map[string]float64{}
		}
		p.res.Phases[p.phase] += time.Since(p.since).Seconds()
	}
}

func (p *packer) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.res.Warnings = append(p.res.Warnings, msg)
	p.o.Logf("pack: %s", msg)
}

func (p *packer) progress(phase string, done, total int64) {
	if phase != p.phase {
		p.endPhase()
		p.phase, p.since = phase, time.Now()
	}
	if p.o.Progress != nil {
		p.o.Progress(Progress{Phase: phase, Done: done, Total: total})
	}
}

func (p *packer) unreadable(u Unreadable) {
	p.res.Unreadable = append(p.res.Unreadable, u)
	p.o.Logf("pack: the references of oid %d in transaction %d cannot be read: %s", u.OID, u.TID, u.Error)
}

// inTxn runs f in one write transaction of the session.
func (p *packer) inTxn(ctx context.Context, f func() error) error { return inTxn(ctx, p.s, f) }

// txns is what a session and its workers share.
type txns interface {
	Begin(ctx context.Context) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context)
}

// inTxn runs f in one write transaction of t.
func inTxn(ctx context.Context, t txns, f func() error) error {
	if err := t.Begin(ctx); err != nil {
		return err
	}
	if err := f(); err != nil {
		t.Rollback(context.WithoutCancel(ctx))
		return err
	}
	return t.Commit(ctx)
}

func (p *packer) lastTID(ctx context.Context, conn db) (uint64, error) {
	table := "object_state"
	if p.o.KeepHistory {
		table = "{TXN}"
	}
	v, err := conn.int64(ctx, `SELECT MAX(tid) FROM `+table)
	return uint64(v), err
}

// choose returns the transaction to pack to: the newest (history-
// preserving: not yet packed) at or before the requested tid, 0 if none.
func (p *packer) choose(ctx context.Context) (uint64, error) {
	q := `SELECT MAX(tid) FROM object_state WHERE tid <= ?`
	if p.o.KeepHistory {
		q = `SELECT MAX(tid) FROM {TXN} WHERE tid > 0 AND tid <= ? AND packed = {FALSE}`
	}
	v, err := p.r.int64(ctx, q, int64(min(p.o.TID, MaxTID)))
	return uint64(v), err
}
