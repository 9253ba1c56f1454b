// Pack: the storage's side of engine/pack. The dialect's pack session holds
// the pack lock; what the pack removes leaves the shared cache and the blob
// directory once each batch has committed.

package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"runtime/metrics"
	"sync/atomic"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/pack"
)

// PackOptions are pack()'s arguments and the pack options.
type PackOptions struct {
	TID         uint64 `json:"tid"` // pack to the newest transaction at or before it
	GC          bool   `json:"gc"`
	PrepackOnly bool   `json:"prepack_only"`
	SkipPrepack bool   `json:"skip_prepack"`
	CheckRefs   bool   `json:"check_refs"`
	// Progress, when set, is told where the pack is each time
	// PackProgress's answer changes, from the pack's goroutines.
	Progress func(pack.Progress) `json:"-"`
}

// PackResult is what a pack did, with its log.
type PackResult struct {
	pack.Result
	Log []string `json:"log"`
}

// packProgress is the running pack's progress, if any.
type packProgress struct{ p atomic.Pointer[pack.Progress] }

// PackProgress returns where the pack running on s is, false when none runs.
func (s *Storage) PackProgress() (pack.Progress, bool) {
	if p := s.packing.p.Load(); p != nil {
		return *p, true
	}
	return pack.Progress{}, false
}

// Pack packs the database. It holds the pack lock throughout: a second pack,
// here or in another process (RelStorage's zodbpack included), is refused.
func (s *Storage) Pack(ctx context.Context, o PackOptions) (*PackResult, error) {
	if err := s.check(); err != nil {
		return nil, err
	}
	if s.opts.ReadOnly {
		return nil, Errorf(KindReadOnly, "pack: the storage is read-only")
	}
	packer, ok := s.dialect.(adapter.Packer)
	if !ok {
		return nil, Errorf(KindUnsupported, "pack: the %s adapter cannot pack", s.opts.Adapter)
	}
	if o.PrepackOnly && o.SkipPrepack {
		return nil, Errorf(KindInvalidArgument, "pack: prepack_only and skip_prepack exclude each other")
	}
	sess, err := packer.OpenPack(ctx)
	if errors.Is(err, adapter.ErrPackLocked) {
		return nil, Wrap(KindStorage, err, "pack")
	}
	if err != nil {
		return nil, classify(err, "pack")
	}
	defer sess.Close()
	out := &PackResult{}
	// Memory: the garbage collector runs as usual (at each doubling of the
	// heap) until the process's Go memory nears packMemory above what it
	// held before the pack, plus packBytesPerObject for each object the plan
	// holds; then as often as it takes. (At every 10% of growth instead, it
	// took a tenth of a pack's time on SQLite.)
	base := goMemory()
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(base + packMemory))
	sized := func(objects int) { debug.SetMemoryLimit(base + packMemory + packBytesPerObject*int64(objects)) }
	s.packing.p.Store(&pack.Progress{Phase: "start"})
	defer s.packing.p.Store(nil)
	res, err := pack.Run(ctx, sess, pack.Options{
		KeepHistory: s.opts.KeepHistory,
		TID:         o.TID,
		GC:          o.GC,
		PrepackOnly: o.PrepackOnly,
		SkipPrepack: o.SkipPrepack,
		CheckRefs:   o.CheckRefs,
		BlobsInDB:   s.blobs != nil && !s.opts.SharedBlobDir,
		Removed:     s.packRemoved(),
		Progress: func(p pack.Progress) {
			s.packing.p.Store(&p)
			if o.Progress != nil {
				o.Progress(p)
			}
		},
		Sized: sized,
		Logf:  func(format string, args ...any) { out.Log = append(out.Log, fmt.Sprintf(format, args...)) },
	})
	if res != nil {
		out.Result = *res
	}
	if out.Removed > 0 {
		// Removed revisions must not be served from the cache (loadSerial
		// of a packed revision fails, as with every storage), nor from what
		// the instances remember (history-free).
		s.sh.packs.Add(1)
		s.sh.cache.Clear()
	}
	if err != nil {
		return out, classify(err, "pack")
	}
	return out, nil
}

// The pack's memory beyond what the process held before it (see Pack).
const (
	packMemory         = 24 << 20
	packBytesPerObject = 40 // the graph's node, mark and a few references
)

// goMemory is the memory the Go runtime holds from the system.
func goMemory() int64 {
	sample := []metrics.Sample{{Name: "/memory/classes/total:bytes"}}
	metrics.Read(sample)
	return int64(sample[0].Value.Uint64())
}

// packRemoved drops the blob files of what a committed batch removed; nil
// without a blob directory.
func (s *Storage) packRemoved() func(revs []pack.Rev, oids []uint64) {
	if s.blobs == nil {
		return nil
	}
	return func(revs []pack.Rev, oids []uint64) {
		for _, r := range revs {
			s.blobs.dir.Remove(r.OID, r.TID)
		}
		for _, oid := range oids {
			s.blobs.dir.RemoveObject(oid)
		}
	}
}
