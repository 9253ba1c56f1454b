// Exports of the two-phase commit and undo.

package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "result.h"
*/
import "C"

import (
	"encoding/binary"

	"github.com/gorelstorage/gorelstorage/engine"
)

//export grs_tpc_begin
func grs_tpc_begin(h C.uint64_t, meta *C.uint8_t, n C.int64_t, restoreTID C.uint64_t, packed C.int32_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		m, err := decodeTxnMeta(goBytes(meta, n))
		if err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "tpc_begin: transaction metadata: %v", err)
		}
		return in.Begin(m, uint64(restoreTID), packed != 0)
	})
}

// grs_store_many buffers a transaction's store() calls, in order: each is the
// oid and the serial (8 bytes each, big-endian, as ZODB spells them) and the
// state (the codec's byte string: a little-endian u64 length, then the bytes).
//
//export grs_store_many
func grs_store_many(h C.uint64_t, buf *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		records, err := decodeStores(goBytes(buf, n))
		if err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "store: %v", err)
		}
		return in.StoreMany(records)
	})
}

//export grs_restore
func grs_restore(h, oid C.uint64_t, data *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		var state []byte
		if n >= 0 {
			state = goBytes(data, n)
		}
		return in.Restore(uint64(oid), state)
	})
}

//export grs_delete_object
func grs_delete_object(h, oid, serial C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.DeleteObject(uint64(oid), uint64(serial))
	})
}

// grs_check_current_many records a transaction's checkCurrentSerialInTransaction
// calls: n/16 pairs of little-endian u64s (oid, serial) in buf.
//
//export grs_check_current_many
func grs_check_current_many(h C.uint64_t, buf *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		b := goBytes(buf, n)
		if len(b)%16 != 0 {
			return engine.Errorf(engine.KindInvalidArgument, "checkCurrentSerialInTransaction: %d bytes are not (oid, serial) pairs", len(b))
		}
		pairs := make([][2]uint64, len(b)/16)
		for i := range pairs {
			pairs[i] = [2]uint64{binary.LittleEndian.Uint64(b[16*i:]), binary.LittleEndian.Uint64(b[16*i+8:])}
		}
		return in.CheckCurrentMany(pairs)
	})
}

//export grs_undo
func grs_undo(h, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		oids, err := in.Undo(bg, uint64(tid))
		setData(r, encodeOIDs(oids))
		return err
	})
}

// grs_restore_batch commits whole transactions under their tids (see
// engine.Instance.RestoreBatch); buf is decodeRestoreTxns's.
//
//export grs_restore_batch
func grs_restore_batch(h C.uint64_t, buf *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		txns, err := decodeRestoreTxns(goBytes(buf, n))
		if err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "restore batch: %v", err)
		}
		return in.RestoreBatch(bg, txns)
	})
}

//export grs_vote
func grs_vote(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		conflicts, err := in.Vote(bg)
		objects, _ := in.LockWaits()
		r.v[1] = C.uint64_t(objects.Nanoseconds())
		if err != nil {
			return err
		}
		r.v[0] = C.uint64_t(len(conflicts))
		setData(r, encodeConflicts(conflicts))
		return nil
	})
}

//export grs_resolve
func grs_resolve(h C.uint64_t, buf *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		res, err := decodeResolutions(goBytes(buf, n))
		if err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "resolve: %v", err)
		}
		return in.Resolve(res)
	})
}

//export grs_finish_lock
func grs_finish_lock(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		tid, err := in.FinishLock(bg)
		_, commit := in.LockWaits()
		r.v[0], r.v[1] = C.uint64_t(tid), C.uint64_t(commit.Nanoseconds())
		return err
	})
}

//export grs_finish_commit
func grs_finish_commit(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.FinishCommit(bg)
	})
}

//export grs_abort
func grs_abort(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		in.Abort()
		return nil
	})
}

//export grs_store_blob
func grs_store_blob(h, oid, serial C.uint64_t, data *C.uint8_t, n C.int64_t, path *C.uint8_t, pn C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.StoreBlob(uint64(oid), uint64(serial), goBytes(data, n), string(goBytes(path, pn)))
	})
}

//export grs_restore_blob
func grs_restore_blob(h, oid C.uint64_t, data *C.uint8_t, n C.int64_t, path *C.uint8_t, pn C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.RestoreBlob(uint64(oid), goBytes(data, n), string(goBytes(path, pn)))
	})
}
