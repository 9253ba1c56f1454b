// The driver's floor: what the database driver alone costs to read objects,
// the mark gorelstorage bench measures the storages against.

package engine

import (
	"context"
	"time"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Floor measures what the database driver alone costs for reading oids'
// current states (the benchmark's floor): one primary-key read per object,
// then one batched read of them all, in one snapshot, without the cache.
// It returns the time per object of each.
func (s *Storage) Floor(ctx context.Context, oids []uint64) (single, batched time.Duration, err error) {
	if len(oids) == 0 {
		return 0, 0, Errorf(KindInvalidArgument, "floor: no oids given")
	}
	err = s.freshRead(ctx, func(c adapter.LoadConn) error {
		if _, err := c.Current(ctx, oids[:1]); err != nil { // the statement is prepared
			return classify(err, "floor")
		}
		start := time.Now()
		for _, oid := range oids {
			if _, err := c.Current(ctx, []uint64{oid}); err != nil {
				return classify(err, "floor")
			}
		}
		single = time.Since(start) / time.Duration(len(oids))
		start = time.Now()
		for i := 0; i < len(oids); i += prefetchBatch {
			if _, err := c.Current(ctx, oids[i:min(len(oids), i+prefetchBatch)]); err != nil {
				return classify(err, "floor")
			}
		}
		batched = time.Since(start) / time.Duration(len(oids))
		return nil
	})
	return single, batched, err
}
