// Command capi is the C ABI of GoRelStorage, built with -buildmode=c-shared.
// Every export takes opaque handles and plain C values, returns an error kind
// (0 for success) and fills a grs_result: scalar outputs in v, bytes in data
// (C memory the caller frees with grs_free_result), and on failure the error
// record. Panics are recovered into KindInternal errors. No logic lives here:
// each export translates and calls the engine.
package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "result.h"
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/debug"
	"unsafe"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/mysql"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/oracle"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/postgres"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/sqlite"
)

func main() {}

// abiVersion changes whenever an export's signature or the result layout does.
const abiVersion = 3

// call runs fn, recovering panics, and records its error in r.
func call(r *C.grs_result, fn func() error) (kind C.int32_t) {
	defer func() {
		if p := recover(); p != nil {
			kind = fail(r, engine.Errorf(engine.KindInternal, "internal error (please report): %v\n%s", p, debug.Stack()))
		}
	}()
	if r == nil {
		return C.int32_t(engine.KindInvalidArgument)
	}
	*r = C.grs_result{}
	if err := fn(); err != nil {
		return fail(r, err)
	}
	return 0
}

func fail(r *C.grs_result, err error) C.int32_t {
	var e *engine.Error
	if !errors.As(err, &e) {
		e = &engine.Error{Kind: engine.KindStorage, Msg: err.Error()}
	}
	r.kind = C.int32_t(e.Kind)
	if e.HasOID {
		r.has_oid = 1
		r.oid = C.uint64_t(e.OID)
	}
	r.serials[0] = C.uint64_t(e.Serials[0])
	r.serials[1] = C.uint64_t(e.Serials[1])
	r.message = C.CString(err.Error())
	return r.kind
}

func setData(r *C.grs_result, b []byte) {
	if len(b) == 0 {
		r.data, r.len = nil, 0
		return
	}
	r.data = (*C.uint8_t)(C.CBytes(b))
	r.len = C.int64_t(len(b))
}

// goBytes copies a caller's buffer; Go keeps no pointer into C memory.
func goBytes(p *C.uint8_t, n C.int64_t) []byte {
	if n <= 0 || p == nil {
		return []byte{}
	}
	return C.GoBytes(unsafe.Pointer(p), C.int(n))
}

var bg = context.Background()

//export grs_free_result
func grs_free_result(r *C.grs_result) {
	if r == nil {
		return
	}
	C.free(unsafe.Pointer(r.message))
	C.free(unsafe.Pointer(r.data))
	r.message, r.data, r.len = nil, nil, 0
}

//export grs_abi_version
func grs_abi_version() C.int32_t { return abiVersion }

//export grs_open
func grs_open(cfg *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		opts, err := engine.ParseOptions(goBytes(cfg, n))
		if err != nil {
			return err
		}
		s, err := engine.Open(bg, opts)
		if err != nil {
			return err
		}
		r.v[0] = C.uint64_t(putHandle(s))
		var e encoder
		e.bytes([]byte(s.Name()))
		e.bytes([]byte(s.SortKey()))
		encodeWarnings(&e, s)
		setData(r, e.b)
		return nil
	})
}

// encodeWarnings appends what the storage has to warn about; Python logs it.
func encodeWarnings(e *encoder, s *engine.Storage) {
	for _, w := range s.TakeWarnings() {
		e.bytes([]byte(w))
	}
}

//export grs_close
func grs_close(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return nil // closing twice is fine
		}
		dropHandle(uint64(h))
		err = s.Close()
		var e encoder
		encodeWarnings(&e, s)
		setData(r, e.b)
		return err
	})
}

//export grs_cache_stats
func grs_cache_stats(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		b, err := json.Marshal(s.CacheStats())
		setData(r, b)
		return err
	})
}

//export grs_bench_floor
func grs_bench_floor(h C.uint64_t, oids *C.uint64_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		single, batched, err := s.Floor(bg, oidArray(oids, n))
		r.v[0], r.v[1] = C.uint64_t(single.Nanoseconds()), C.uint64_t(batched.Nanoseconds())
		return err
	})
}

//export grs_cache_clear
func grs_cache_clear(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		s.ClearCache()
		return nil
	})
}

//export grs_new_instance
func grs_new_instance(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		in, err := s.NewInstance()
		if err != nil {
			return err
		}
		r.v[0] = C.uint64_t(putHandle(in))
		return nil
	})
}

//export grs_release
func grs_release(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		in, err := getInstance(uint64(h))
		if err != nil {
			return nil
		}
		dropHandle(uint64(h))
		in.Release()
		return nil
	})
}

// grs_new_oids returns every OID the storage holds (allocating when it holds
// none) as a uint64 array in data, ascending.
//
//export grs_new_oids
func grs_new_oids(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		oids, err := s.TakeOIDs(bg)
		var e encoder
		for _, oid := range oids {
			e.u64(oid)
		}
		setData(r, e.b)
		return err
	})
}

//export grs_size
func grs_size(h C.uint64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		n, b, err := s.Size(bg)
		r.v[0], r.v[1] = C.uint64_t(n), C.uint64_t(b)
		return err
	})
}

// withInstance is the common shape of instance exports.
func withInstance(h C.uint64_t, r *C.grs_result, fn func(*engine.Instance) error) C.int32_t {
	return call(r, func() error {
		in, err := getInstance(uint64(h))
		if err != nil {
			return err
		}
		return fn(in)
	})
}

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
		var e encoder
		for _, o := range oids {
			e.u64(o)
		}
		setData(r, e.b)
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

func encodeTxn(e *encoder, t adapter.TxnInfo) {
	e.u64(t.TID)
	e.bool(t.Packed)
	e.bytes(t.User)
	e.bytes(t.Description)
	e.bytes(t.Extension)
}

//export grs_history
func grs_history(h, oid C.uint64_t, size C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		entries, err := in.History(bg, uint64(oid), int(size))
		if err != nil {
			return err
		}
		var e encoder
		for _, h := range entries {
			encodeTxn(&e, h.TxnInfo)
			e.u64(uint64(h.Size))
		}
		setData(r, e.b)
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
		var e encoder
		for _, t := range txns {
			encodeTxn(&e, t)
		}
		setData(r, e.b)
		return nil
	})
}

func encodeRevisions(r *C.grs_result, revs []adapter.Revision) {
	var e encoder
	for _, rev := range revs {
		e.u64(rev.OID)
		e.u64(rev.TID)
		e.bytes(rev.State)
	}
	setData(r, e.b)
}

//export grs_txn_records
func grs_txn_records(h, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		revs, err := in.TxnRecords(bg, uint64(tid))
		encodeRevisions(r, revs)
		return err
	})
}

//export grs_current_from
func grs_current_from(h, start C.uint64_t, limit C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		revs, err := in.CurrentFrom(bg, uint64(start), int(limit))
		encodeRevisions(r, revs)
		return err
	})
}

//export grs_tpc_begin
func grs_tpc_begin(h C.uint64_t, meta *C.uint8_t, n C.int64_t, restoreTID C.uint64_t, packed C.int32_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		d := decoder{b: goBytes(meta, n)}
		m := engine.TxnMeta{User: d.bytes(), Description: d.bytes(), Extension: d.bytes()}
		if d.err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "tpc_begin: transaction metadata: %v", d.err)
		}
		return in.Begin(m, uint64(restoreTID), packed != 0)
	})
}

//export grs_store
func grs_store(h, oid, serial C.uint64_t, data *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.Store(uint64(oid), uint64(serial), goBytes(data, n))
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

//export grs_check_current
func grs_check_current(h, oid, serial C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		return in.CheckCurrent(uint64(oid), uint64(serial))
	})
}

//export grs_undo
func grs_undo(h, tid C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		oids, err := in.Undo(bg, uint64(tid))
		var e encoder
		for _, o := range oids {
			e.u64(o)
		}
		setData(r, e.b)
		return err
	})
}

//export grs_vote
func grs_vote(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		conflicts, err := in.Vote(bg)
		if err != nil {
			return err
		}
		var e encoder
		for _, c := range conflicts {
			e.u64(c.OID)
			e.u64(c.CommittedTID)
			e.u64(c.OldTID)
			e.bytes(c.NewState)
			e.bytes(c.CommittedState)
			e.bool(c.Undo)
		}
		r.v[0] = C.uint64_t(len(conflicts))
		setData(r, e.b)
		return nil
	})
}

//export grs_resolve
func grs_resolve(h C.uint64_t, buf *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		d := decoder{b: goBytes(buf, n)}
		var res []engine.Resolution
		for len(d.b) > 0 && d.err == nil {
			res = append(res, engine.Resolution{OID: d.u64(), CommittedTID: d.u64(), State: d.bytes()})
		}
		if d.err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "resolve: %v", d.err)
		}
		return in.Resolve(res)
	})
}

//export grs_finish_lock
func grs_finish_lock(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withInstance(h, r, func(in *engine.Instance) error {
		tid, err := in.FinishLock(bg)
		r.v[0] = C.uint64_t(tid)
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

//export grs_test_panic
func grs_test_panic(r *C.grs_result) C.int32_t {
	return call(r, func() error {
		var m map[string]int
		m["boom"] = 1 // a deliberate runtime panic: the tests check it becomes an exception
		return fmt.Errorf("unreachable")
	})
}
