// Exports of pack: run one (the caller releases the GIL) and read its
// progress from another thread.

package main

/*
#include <stdint.h>
#include "result.h"
*/
import "C"

import (
	"encoding/json"

	"github.com/gorelstorage/gorelstorage/engine"
)

// grs_pack packs with the JSON-encoded engine.PackOptions in cfg; the data
// is the JSON-encoded engine.PackResult, also when the pack failed part way.
//
//export grs_pack
func grs_pack(h C.uint64_t, cfg *C.uint8_t, n C.int64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		var o engine.PackOptions
		if err := json.Unmarshal(goBytes(cfg, n), &o); err != nil {
			return engine.Errorf(engine.KindInvalidArgument, "pack options: %v", err)
		}
		res, err := s.Pack(bg, o)
		if res != nil {
			b, jerr := json.Marshal(res)
			if jerr != nil {
				return jerr
			}
			setData(r, b)
		}
		return err
	})
}

// grs_pack_progress: v[0] is 1 while a pack runs on the storage, and the
// data its JSON-encoded progress.
//
//export grs_pack_progress
func grs_pack_progress(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		p, running := s.PackProgress()
		if !running {
			return nil
		}
		r.v[0] = 1
		b, err := json.Marshal(p)
		setData(r, b)
		return err
	})
}
