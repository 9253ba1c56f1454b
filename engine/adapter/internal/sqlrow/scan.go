// Package sqlrow moves values between Go and SQL rows for every dialect:
// scanning the rows the adapter's value types come from (scan.go) and
// building bind arguments (bind.go).
package sqlrow

import (
	"database/sql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// Row is one result row of any driver: *sql.Rows and pgx.Rows both scan so.
type Row interface {
	Scan(dest ...any) error
}

// ScanChange appends the row (zoid, tid) to out.
func ScanChange(r Row, out *[]adapter.Change) error {
	var oid, tid int64
	if err := r.Scan(&oid, &tid); err != nil {
		return err
	}
	*out = append(*out, adapter.Change{OID: uint64(oid), TID: uint64(tid)})
	return nil
}

// ScanRevision appends the row (zoid, tid, state) to out.
func ScanRevision(r Row, out *[]adapter.Revision) error {
	var oid, tid int64
	var state []byte
	if err := r.Scan(&oid, &tid, &state); err != nil {
		return err
	}
	*out = append(*out, adapter.Revision{OID: uint64(oid), TID: uint64(tid), State: state})
	return nil
}

// ScanUndoItem reads one row of an undo plan: zoid, current tid, current
// md5, undone md5, previous tid, previous state.
func ScanUndoItem(r Row) (adapter.UndoItem, error) {
	var it adapter.UndoItem
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
