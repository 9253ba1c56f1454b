package main

import (
	"encoding/binary"
	"errors"
	"math"
)

// The byte layout of batched results and arguments: little-endian u64s and
// byte strings as an i64 length (-1 for None) followed by the bytes. The
// Python reader in _native.py mirrors it.

type encoder struct{ b []byte }

func (e *encoder) u64(v uint64) { e.b = binary.LittleEndian.AppendUint64(e.b, v) }

func (e *encoder) bytes(p []byte) {
	if p == nil {
		e.u64(math.MaxUint64)
		return
	}
	e.u64(uint64(len(p)))
	e.b = append(e.b, p...)
}

func (e *encoder) bool(v bool) {
	if v {
		e.u64(1)
	} else {
		e.u64(0)
	}
}

type decoder struct {
	b   []byte
	err error
}

var errShort = errors.New("argument buffer is truncated")

func (d *decoder) u64() uint64 {
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := binary.LittleEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.u64()
	if d.err != nil || n == math.MaxUint64 {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return nil
	}
	p := append([]byte{}, d.b[:n]...)
	d.b = d.b[n:]
	return p
}
