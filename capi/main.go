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
	"errors"
	"runtime/debug"
	"unsafe"

	"github.com/gorelstorage/gorelstorage/engine"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/mysql"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/oracle"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/postgres"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/sqlite"
)

func main() {}

// abiVersion changes whenever an export's signature or the result layout does.
const abiVersion = 8

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
	return append([]byte(nil), unsafe.Slice((*byte)(unsafe.Pointer(p)), int(n))...) // C.GoBytes takes a C int
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

// withStorage is the common shape of storage exports: fn gets the storage
// handle h names, or the call fails with KindClosed.
func withStorage(h C.uint64_t, r *C.grs_result, fn func(*engine.Storage) error) C.int32_t {
	return call(r, func() error {
		s, err := getStorage(uint64(h))
		if err != nil {
			return err
		}
		return fn(s)
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
