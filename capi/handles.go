package main

import (
	"sync"

	"github.com/gorelstorage/gorelstorage/engine"
)

// handles maps the opaque 64-bit numbers Python holds to Go objects. A stale
// or forged number gets an error, never a crash.
var handles = struct {
	sync.RWMutex // read by every call, written when a storage or instance opens or goes
	next         uint64
	m            map[uint64]any
}{next: 1, m: map[uint64]any{}}

func putHandle(v any) uint64 {
	handles.Lock()
	defer handles.Unlock()
	h := handles.next
	handles.next++
	handles.m[h] = v
	return h
}

func dropHandle(h uint64) {
	handles.Lock()
	delete(handles.m, h)
	handles.Unlock()
}

func getStorage(h uint64) (*engine.Storage, error) {
	handles.RLock()
	v, ok := handles.m[h].(*engine.Storage)
	handles.RUnlock()
	if !ok {
		return nil, engine.Errorf(engine.KindClosed, "storage handle %d is closed or invalid", h)
	}
	return v, nil
}

func getInstance(h uint64) (*engine.Instance, error) {
	handles.RLock()
	v, ok := handles.m[h].(*engine.Instance)
	handles.RUnlock()
	if !ok {
		return nil, engine.Errorf(engine.KindClosed, "instance handle %d is released or invalid", h)
	}
	return v, nil
}
