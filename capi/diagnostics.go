// Exports for benchmarks and tests, apart from the storage ABI: the driver's
// floor, a Go CPU profile, a deliberate panic, and the pickle reference scanner.

package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "result.h"
*/
import "C"

import (
	"fmt"
	"os"
	"runtime/pprof"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/pickle"
)

//export grs_bench_floor
func grs_bench_floor(h C.uint64_t, oids *C.uint64_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		single, batched, err := s.Floor(bg, oidArray(oids, n))
		r.v[0], r.v[1] = C.uint64_t(single.Nanoseconds()), C.uint64_t(batched.Nanoseconds())
		return err
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

// The Go CPU profile that grs_profile_start began, for gorelstorage bench --profile.
var profiling struct {
	sync.Mutex
	f *os.File
}

//export grs_profile_start
func grs_profile_start(path *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		profiling.Lock()
		defer profiling.Unlock()
		if profiling.f != nil {
			return engine.Errorf(engine.KindInvalidArgument, "a Go CPU profile is already being written to %s", profiling.f.Name())
		}
		f, err := os.Create(string(goBytes(path, n)))
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return err
		}
		profiling.f = f
		return nil
	})
}

//export grs_profile_stop
func grs_profile_stop(r *C.grs_result) C.int32_t {
	return call(r, func() error {
		profiling.Lock()
		defer profiling.Unlock()
		if profiling.f == nil {
			return nil
		}
		pprof.StopCPUProfile()
		err := profiling.f.Close()
		profiling.f = nil
		return err
	})
}

// grs_references is engine/pickle's References on one record, for the tests
// that compare it with ZODB's referencesf: the references as bytes each.
//
//export grs_references
func grs_references(data *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		refs, err := pickle.References(goBytes(data, n))
		if err != nil {
			return engine.Wrap(engine.KindInvalidArgument, err, "references")
		}
		var e encoder
		for _, ref := range refs {
			e.bytes(ref)
		}
		setData(r, e.b)
		return nil
	})
}
