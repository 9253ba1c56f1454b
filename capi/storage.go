// Exports of a Storage: open, close, instances, OIDs, size and the shared cache.

package main

/*
#include <stdint.h>
#include <stdlib.h>
#include "result.h"
*/
import "C"

import (
	"encoding/json"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/blob"
)

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
		// Python logs the warnings (an unusable cache file, ...).
		setData(r, encodeOpened(s.Name(), s.SortKey(), s.TakeWarnings()))
		return nil
	})
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
		setData(r, encodeWarnings(s.TakeWarnings()))
		return err
	})
}

//export grs_cache_stats
func grs_cache_stats(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		b, err := json.Marshal(s.CacheStats())
		setData(r, b)
		return err
	})
}

//export grs_cache_clear
func grs_cache_clear(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		s.ClearCache()
		return nil
	})
}

// grs_zap_all empties the database and this process's copies of it.
//
//export grs_zap_all
func grs_zap_all(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error { return s.ZapAll(bg) })
}

//export grs_new_instance
func grs_new_instance(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
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
	return withStorage(h, r, func(s *engine.Storage) error {
		oids, err := s.TakeOIDs(bg)
		setData(r, encodeOIDs(oids))
		return err
	})
}

//export grs_size
func grs_size(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		n, b, err := s.Size(bg)
		r.v[0], r.v[1] = C.uint64_t(n), C.uint64_t(b)
		return err
	})
}

// grs_blob_wait_pruning returns once no pruning of the storage's blob cache runs.
//
//export grs_blob_wait_pruning
func grs_blob_wait_pruning(h C.uint64_t, r *C.grs_result) C.int32_t {
	return withStorage(h, r, func(s *engine.Storage) error {
		s.WaitBlobPruning()
		return nil
	})
}

// grs_blob_prune prunes the blob cache at path down to target bytes, in this
// process (blob-cache-size-check-external runs it in a new one): v[0] is 1
// when another process was pruning it, v[1] the bytes left, v[2] the files removed.
//
//export grs_blob_prune
func grs_blob_prune(path *C.uint8_t, n C.int64_t, target C.int64_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		res, err := blob.Prune(string(goBytes(path, n)), int64(target))
		if err != nil {
			return engine.Wrap(engine.KindStorage, err, "prune the blob cache")
		}
		if res.Locked {
			r.v[0] = 1
		}
		r.v[1], r.v[2] = C.uint64_t(res.Size), C.uint64_t(res.Removed)
		return nil
	})
}

// grs_blob_lookup returns (data) the path of oid's blob of tid in the blob
// directory dir when the file is there, without a storage: v[0] is 1 when found.
//
//export grs_blob_lookup
func grs_blob_lookup(oid C.uint64_t, dir *C.uint8_t, n C.int64_t, tid C.uint64_t, _ C.int32_t, r *C.grs_result) C.int32_t {
	return call(r, func() error {
		if path, ok := blob.Lookup(string(goBytes(dir, n)), uint64(oid), uint64(tid)); ok {
			setData(r, []byte(path))
			r.v[0] = 1
		}
		return nil
	})
}
