package engine

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// ZEO's cache trace codes, as RelStorage writes them.
const (
	traceOpen  = 0x00 // the cache was set up
	traceMiss  = 0x20 // load, not in the cache
	traceHit   = 0x22 // load, served by the cache
	traceStore = 0x52 // a current state went into the cache
)

// tracer writes a ZEO cache trace file (ZEO.cache.ClientCache.TRACE_FMT,
// ">iiH8s8s", then the oid), readable by ZEO's cache_stats and cache_simul
// scripts. It is enabled as RelStorage enables it: ZEO_CACHE_TRACE set (to
// "single" for one file without the process id in its name) and a
// cache-local-dir to write it in.
type tracer struct {
	mu   sync.Mutex
	f    *os.File
	w    *bufio.Writer
	rec  [26 + 8]byte
	path string
}

func openTracer(dir, name, mode string) (*tracer, error) {
	pid := os.Getpid()
	if mode == "single" {
		pid = 0
	}
	path := filepath.Join(dir, fmt.Sprintf("gorelstorage-trace-%s.%d.trace", name, pid))
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache trace: %w", err)
	}
	t := &tracer{f: f, w: bufio.NewWriterSize(f, 64<<10), path: path}
	t.record(traceOpen, 0, 0, 0)
	return t, nil
}

// record writes one event; oid 0 is written as no oid for traceOpen only.
func (t *tracer) record(code byte, oid, tid uint64, dlen int) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	r := t.rec[:]
	binary.BigEndian.PutUint32(r[0:], uint32(time.Now().Unix()))
	binary.BigEndian.PutUint32(r[4:], uint32(min(dlen, 1<<23-1))<<8|uint32(code))
	n := 26
	if code != traceOpen {
		binary.BigEndian.PutUint16(r[8:], 8)
		binary.BigEndian.PutUint64(r[26:], oid)
		n += 8
	} else {
		binary.BigEndian.PutUint16(r[8:], 0)
	}
	binary.BigEndian.PutUint64(r[10:], tid)
	binary.BigEndian.PutUint64(r[18:], 0) // end tid: current revisions only
	t.w.Write(r[:n])                      // an error shows at close
}

func (t *tracer) close() error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	err := t.w.Flush()
	if cerr := t.f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("cache trace %s: %w", t.path, err)
	}
	return nil
}
