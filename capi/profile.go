package main

/*
#include <stdint.h>
#include "result.h"
*/
import "C"

import (
	"os"
	"runtime/pprof"
	"sync"

	"github.com/gorelstorage/gorelstorage/engine"
)

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
