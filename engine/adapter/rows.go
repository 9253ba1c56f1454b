package adapter

import (
	"database/sql"
	"slices"
)

// Row is one result row of any driver: *sql.Rows and pgx.Rows both scan so.
type Row interface {
	Scan(dest ...any) error
}

// ScanChange appends the row (zoid, tid) to out.
func ScanChange(r Row, out *[]Change) error {
	var oid, tid int64
	if err := r.Scan(&oid, &tid); err != nil {
		return err
	}
	*out = append(*out, Change{OID: uint64(oid), TID: uint64(tid)})
	return nil
}

// ScanRevision appends the row (zoid, tid, state) to out.
func ScanRevision(r Row, out *[]Revision) error {
	var oid, tid int64
	var state []byte
	if err := r.Scan(&oid, &tid, &state); err != nil {
		return err
	}
	*out = append(*out, Revision{OID: uint64(oid), TID: uint64(tid), State: state})
	return nil
}

// ScanUndoItem reads one row of an undo plan: zoid, current tid, current
// md5, undone md5, previous tid, previous state.
func ScanUndoItem(r Row) (UndoItem, error) {
	var it UndoItem
	var oid, cur, prev int64
	var curMD5, undoneMD5 sql.NullString
	if err := r.Scan(&oid, &cur, &curMD5, &undoneMD5, &prev, &it.PrevState); err != nil {
		return it, err
	}
	it.OID, it.CurrentTID, it.PrevTID = uint64(oid), uint64(cur), uint64(prev)
	if curMD5.Valid {
		it.CurrentMD5 = []byte(curMD5.String)
	}
	if undoneMD5.Valid {
		it.UndoneMD5 = []byte(undoneMD5.String)
	}
	return it, nil
}

// OIDBlock returns the 16 OIDs counter value n stands for, n*16-15 .. n*16
// (RelStorage's layout: OID 0, the root, is never issued).
func OIDBlock(n uint64) []uint64 {
	return OIDBlocks([]uint64{n})
}

// OIDBlocks is OIDBlock for several counter values, ascending.
func OIDBlocks(values []uint64) []uint64 {
	slices.Sort(values)
	out := make([]uint64, 0, 16*len(values))
	for _, n := range values {
		for i := uint64(0); i < 16; i++ {
			out = append(out, n*16-15+i)
		}
	}
	return out
}
