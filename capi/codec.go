package main

import (
	"encoding/binary"
	"errors"
	"math"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// The records that cross the C ABI in a result's data or a batched
// argument, all in one place; _native.py decodes and encodes the same ones.
// Fields are little-endian u64s and byte strings (a u64 length, all ones
// for None, then the bytes); a record list is its records back to back.
//
//	oids        u64 ...                                     poll, new_oids, undo
//	opened      name, sort key, warning ...                 open (close: warnings)
//	txn         tid, packed, user, description, extension   transactions
//	history     txn, size                                   history
//	revision    oid, tid, state                             txn_records, current_from
//	conflict    oid, committed tid, old tid, new state,     vote
//	            committed state, undo
//	txn meta    user, description, extension                tpc_begin's argument
//	resolution  oid, committed tid, state                   resolve's argument
//	store       oid8, serial8, state                        store_many's argument
//
// oid8 and serial8 are 8 bytes as ZODB spells them (big-endian), which
// Python passes on without converting them.

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

func (d *decoder) u64() uint64 { return d.word(binary.LittleEndian) }

// word reads 8 bytes in order's byte order.
func (d *decoder) word(order binary.ByteOrder) uint64 {
	if len(d.b) < 8 {
		d.err = errShort
		return 0
	}
	v := order.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

// bytes reads a byte string (nil for None) into memory of its own.
func (d *decoder) bytes() []byte {
	p := d.view()
	if p == nil {
		return nil
	}
	return append([]byte{}, p...)
}

// id8 reads an oid8 or serial8 field.
func (d *decoder) id8() uint64 { return d.word(binary.BigEndian) }

// view is bytes without the copy: the slice shares the decoded buffer,
// which the caller owns (goBytes copied it out of C memory).
func (d *decoder) view() []byte {
	n := d.u64()
	if d.err != nil || n == math.MaxUint64 {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errShort
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func encodeOIDs(oids []uint64) []byte {
	var e encoder
	for _, o := range oids {
		e.u64(o)
	}
	return e.b
}

func encodeOpened(name, sortKey string, warnings []string) []byte {
	var e encoder
	e.bytes([]byte(name))
	e.bytes([]byte(sortKey))
	return append(e.b, encodeWarnings(warnings)...)
}

func encodeWarnings(warnings []string) []byte {
	var e encoder
	for _, w := range warnings {
		e.bytes([]byte(w))
	}
	return e.b
}

func (e *encoder) txn(t adapter.TxnInfo) {
	e.u64(t.TID)
	e.bool(t.Packed)
	e.bytes(t.User)
	e.bytes(t.Description)
	e.bytes(t.Extension)
}

func encodeTxns(txns []adapter.TxnInfo) []byte {
	var e encoder
	for _, t := range txns {
		e.txn(t)
	}
	return e.b
}

func encodeHistory(entries []adapter.HistoryEntry) []byte {
	var e encoder
	for _, h := range entries {
		e.txn(h.TxnInfo)
		e.u64(uint64(h.Size))
	}
	return e.b
}

func encodeRevisions(revs []adapter.Revision) []byte {
	var e encoder
	for _, rev := range revs {
		e.u64(rev.OID)
		e.u64(rev.TID)
		e.bytes(rev.State)
	}
	return e.b
}

func encodeConflicts(conflicts []engine.Conflict) []byte {
	var e encoder
	for _, c := range conflicts {
		e.u64(c.OID)
		e.u64(c.CommittedTID)
		e.u64(c.OldTID)
		e.bytes(c.NewState)
		e.bytes(c.CommittedState)
		e.bool(c.Undo)
	}
	return e.b
}

func decodeTxnMeta(b []byte) (engine.TxnMeta, error) {
	d := decoder{b: b}
	m := engine.TxnMeta{User: d.bytes(), Description: d.bytes(), Extension: d.bytes()}
	return m, d.err
}

// decodeRestoreTxns reads transactions for RestoreBatch: each its tid,
// packed flag, user, description, extension, record count, then each
// record's oid and state (None: no state).
func decodeRestoreTxns(b []byte) ([]engine.RestoreTxn, error) {
	d := decoder{b: b}
	var txns []engine.RestoreTxn
	for len(d.b) > 0 && d.err == nil {
		t := engine.RestoreTxn{TID: d.u64(), Packed: d.u64() != 0}
		t.Meta = engine.TxnMeta{User: d.bytes(), Description: d.bytes(), Extension: d.bytes()}
		n := d.u64()
		if n > uint64(len(d.b))/16 {
			return nil, errShort
		}
		t.Records = make([]engine.RestoreRecord, n)
		for i := range t.Records {
			t.Records[i] = engine.RestoreRecord{OID: d.u64(), State: d.bytes()}
		}
		txns = append(txns, t)
	}
	return txns, d.err
}

func decodeResolutions(b []byte) ([]engine.Resolution, error) {
	d := decoder{b: b}
	var res []engine.Resolution
	for len(d.b) > 0 && d.err == nil {
		res = append(res, engine.Resolution{OID: d.u64(), CommittedTID: d.u64(), State: d.bytes()})
	}
	return res, d.err
}

func decodeStores(b []byte) ([]engine.StoreRecord, error) {
	d := decoder{b: b}
	var recs []engine.StoreRecord
	for len(d.b) > 0 && d.err == nil {
		recs = append(recs, engine.StoreRecord{OID: d.id8(), Serial: d.id8(), State: d.view()})
	}
	return recs, d.err
}
