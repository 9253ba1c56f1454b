// Exports of an instance's snapshot and reads: poll, sync, loads, prefetch,
// history and iteration.

package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "result.h"
*/
import "C"

import (
	"unsafe"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

//export grs_load
func grs_load(h, oid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		state, tid, err := in.Load(bg, uint64(oid))
		if err == nil {
			setData(r, state)
			r.v[0] = C.uint64_t(tid)
		}
		return err
	})
}

// grs_load_cached is grs_load answered from the shared cache without waiting
// for anything: v[1] is 1 with the state and tid, or 0 (call grs_load). The
// Python side calls it with the GIL held: a hit costs less than handing the
// GIL to another thread and back.
//
//export grs_load_cached
func grs_load_cached(h, oid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		state, tid, ok := in.LoadCached(uint64(oid))
		if ok {
			setData(r, state)
			r.v[0], r.v[1] = C.uint64_t(tid), 1
		}
		return nil
	})
}

//export grs_load_serial
func grs_load_serial(h, oid, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		state, err := in.LoadSerial(bg, uint64(oid), uint64(tid))
		setData(r, state)
		return err
	})
}

//export grs_load_before
func grs_load_before(h, oid, before C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		rev, end, found, err := in.LoadBefore(bg, uint64(oid), uint64(before))
		if err == nil && found {
			setData(r, rev.State)
			r.v[0], r.v[1], r.v[2] = C.uint64_t(rev.TID), C.uint64_t(end), 1
		}
		return err
	})
}

func oidArray(p *C.uint64_t, n C.int64_t) []uint64 {
	if n <= 0 || p == nil {
		return nil
	}
	return append([]uint64(nil), unsafe.Slice((*uint64)(unsafe.Pointer(p)), int(n))...)
}

//export grs_prefetch
func grs_prefetch(h C.uint64_t, oids *C.uint64_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.Prefetch(bg, oidArray(oids, n))
	})
}

//export grs_poll
func grs_poll(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		oids, all, err := in.Poll(bg)
		if err != nil {
			return err
		}
		if all {
			r.v[0] = 1
			return nil
		}
		setData(r, encodeOIDs(oids))
		return nil
	})
}

//export grs_sync
func grs_sync(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		in.Sync()
		return nil
	})
}

//export grs_last_transaction
func grs_last_transaction(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		tid, err := in.LastTransaction(bg)
		r.v[0] = C.uint64_t(tid)
		return err
	})
}

//export grs_history
func grs_history(h, oid C.uint64_t, size C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		entries, err := in.History(bg, uint64(oid), int(size))
		if err != nil {
			return err
		}
		setData(r, encodeHistory(entries))
		return nil
	})
}

// Flags of grs_transactions.
const (
	txnNewestFirst = 1
	txnSkipPacked  = 2
)

//export grs_transactions
func grs_transactions(h, start, stop C.uint64_t, flags, offset, limit C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		if offset < 0 || limit < 0 {
			return engine.Errorf(engine.KindInvalidArgument, "offset and limit must be >= 0")
		}
		txns, err := in.Transactions(bg, adapter.TxnQuery{Start: uint64(start), Stop: uint64(stop),
			NewestFirst: flags&txnNewestFirst != 0, SkipPacked: flags&txnSkipPacked != 0,
			Offset: int(offset), Limit: int(limit)})
		if err != nil {
			return err
		}
		setData(r, encodeTxns(txns))
		return nil
	})
}

//export grs_txn_records
func grs_txn_records(h, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		revs, err := in.TxnRecords(bg, uint64(tid))
		setData(r, encodeRevisions(revs))
		return err
	})
}

//export grs_current_from
func grs_current_from(h, start C.uint64_t, limit C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		revs, err := in.CurrentFrom(bg, uint64(start), int(limit))
		setData(r, encodeRevisions(revs))
		return err
	})
}

// grs_load_blob_cached is grs_load_blob answered from the files on disk,
// without waiting for anything: v[0] is 1 with the path, or 0 (call
// grs_load_blob). Called with the GIL held, as grs_load_cached.
//
//export grs_load_blob_cached
func grs_load_blob_cached(h, oid, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		if path, ok := in.CachedBlob(uint64(oid), uint64(tid)); ok {
			setData(r, []byte(path))
			r.v[0] = 1
		}
		return nil
	})
}

//export grs_load_blob
func grs_load_blob(h, oid, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		path, err := in.LoadBlob(bg, uint64(oid), uint64(tid))
		setData(r, []byte(path))
		return err
	})
}
