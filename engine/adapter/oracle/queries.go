package oracle

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
)

// stmt is one statement and its binds, in the order of the :1, :2, ...
// placeholders. Slices as binds make godror run the statement once per
// element (array DML, one round trip). rows, when not negative, is the
// number of rows the statement must change.
type stmt struct {
	text string
	args []any
	rows int
}

// Oracle refuses an IN list of more than 1000 expressions (ORA-01795).
const inLimit = 1000

// queries builds every statement the dialect sends. It is pure: the unit
// tests check the text and bind order of each operation without a server.
type queries struct {
	keepHistory bool
	// wait is the lock clause for rows being modified and the commit lock:
	// FOR UPDATE WAIT <commit-lock-timeout>, or NOWAIT for a zero timeout.
	wait string
	// current is the table whose rows hold the current tid of each object,
	// and whose rows are locked at commit.
	currentTable string
}

func newQueries(keepHistory bool, lockSeconds int) queries {
	q := queries{keepHistory: keepHistory, wait: "FOR UPDATE NOWAIT", currentTable: "object_state"}
	if lockSeconds > 0 {
		q.wait = "FOR UPDATE WAIT " + strconv.Itoa(lockSeconds)
	}
	if keepHistory {
		q.currentTable = "current_object"
	}
	return q
}

// placeholders returns ":first, ..., :first+n-1".
func placeholders(first, n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(":" + strconv.Itoa(first+i))
	}
	return b.String()
}

// chunks splits oids into IN lists Oracle accepts.
func chunks(oids []uint64) [][]uint64 {
	var out [][]uint64
	for start := 0; start < len(oids); start += inLimit {
		out = append(out, oids[start:min(len(oids), start+inLimit)])
	}
	return out
}

func (q queries) lastTID() string {
	if q.keepHistory {
		return `SELECT COALESCE(MAX(tid), 0) FROM transaction`
	}
	return `SELECT COALESCE(MAX(tid), 0) FROM object_state`
}

// pollMarker is the zoid of the row of a poll that carries the newest tid.
const pollMarker = -1

// poll reads, in one statement, the newest tid (the row whose zoid is
// pollMarker) and at most limit objects whose current tid is in (after, upTo].
func (q queries) poll(after, upTo uint64, limit int) stmt {
	return stmt{text: `SELECT ` + strconv.Itoa(pollMarker) + `, (` + q.lastTID() + `) FROM DUAL
		UNION ALL
		SELECT zoid, tid FROM ` + q.currentTable + ` WHERE tid > :1 AND tid <= :2 AND ROWNUM <= :3`,
		args: []any{int64(after), sqlrow.BoundTID(upTo), limit}, rows: -1}
}

// changes lists at most limit objects whose current tid is in (after, upTo].
func (q queries) changes(after, upTo uint64, limit int) stmt {
	return stmt{text: `SELECT zoid, tid FROM ` + q.currentTable + ` WHERE tid > :1 AND tid <= :2 AND ROWNUM <= :3`,
		args: []any{int64(after), sqlrow.BoundTID(upTo), limit}, rows: -1}
}

// currentSelect selects zoid, tid, state of current revisions; a WHERE follows.
func (q queries) currentSelect() string {
	if q.keepHistory {
		return `SELECT c.zoid, c.tid, o.state FROM current_object c
		JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid WHERE c.`
	}
	return `SELECT zoid, tid, state FROM object_state WHERE `
}

// current reads the current revisions of oids, one statement per 1000.
func (q queries) current(oids []uint64) []stmt {
	if len(oids) == 1 {
		return []stmt{{text: q.currentSelect() + `zoid = :1`, args: []any{int64(oids[0])}, rows: -1}}
	}
	var out []stmt
	for _, part := range chunks(oids) {
		out = append(out, stmt{text: q.currentSelect() + `zoid IN (` + placeholders(1, len(part)) + `)`,
			args: sqlrow.Int64Args(part), rows: -1})
	}
	return out
}

// currentFrom reads at most limit current revisions with oid >= start, in oid order.
func (q queries) currentFrom(start uint64, limit int) stmt {
	return stmt{text: `SELECT zoid, tid, state FROM (` + q.currentSelect() + `zoid >= :1 ORDER BY 1)
		WHERE ROWNUM <= :2`, args: []any{int64(start), limit}, rows: -1}
}

func (q queries) revision(oid, tid uint64) stmt {
	return stmt{text: `SELECT state FROM object_state WHERE zoid = :1 AND tid = :2`,
		args: []any{int64(oid), int64(tid)}, rows: -1}
}

// before reads the newest revision of oid older than before, with the tid
// of the revision that replaced it (0 if none).
func (q queries) before(oid, before uint64) stmt {
	return stmt{text: `SELECT tid, state, end_tid FROM (
		SELECT o.tid, o.state, COALESCE((SELECT MIN(n.tid) FROM object_state n
			WHERE n.zoid = o.zoid AND n.tid > o.tid), 0) AS end_tid
		FROM object_state o WHERE o.zoid = :1 AND o.tid < :2 ORDER BY o.tid DESC)
		WHERE ROWNUM <= 1`, args: []any{int64(oid), sqlrow.BoundTID(before)}, rows: -1}
}

func (q queries) exists(oid uint64) stmt {
	return stmt{text: `SELECT COUNT(*) FROM object_state WHERE zoid = :1 AND ROWNUM <= 1`,
		args: []any{int64(oid)}, rows: -1}
}

// history reads the newest size revisions of oid (history-free: its one revision).
func (q queries) history(oid uint64, size int) stmt {
	if !q.keepHistory {
		return stmt{text: `SELECT tid, state_size FROM object_state WHERE zoid = :1`,
			args: []any{int64(oid)}, rows: -1}
	}
	return stmt{text: `SELECT tid, state_size, packed, username, description, extension FROM (
		SELECT o.tid, o.state_size, CASE WHEN t.packed = 'Y' THEN 1 ELSE 0 END AS packed,
			t.username, t.description, t.extension
		FROM object_state o JOIN transaction t ON t.tid = o.tid
		WHERE o.zoid = :1 ORDER BY o.tid DESC)
		WHERE ROWNUM <= :2`, args: []any{int64(oid), size}, rows: -1}
}

// transactions pages through transactions; history-free databases keep
// only the tids of the current revisions.
func (q queries) transactions(t adapter.TxnQuery) stmt {
	var inner string
	if q.keepHistory {
		inner = `SELECT tid, CASE WHEN packed = 'Y' THEN 1 ELSE 0 END AS packed, username, description, extension
			FROM transaction WHERE tid > 0 AND tid >= :1 AND tid <= :2`
		if t.SkipPacked {
			inner += ` AND packed = 'N'`
		}
	} else {
		inner = `SELECT DISTINCT tid FROM object_state WHERE tid >= :1 AND tid <= :2`
	}
	if t.NewestFirst {
		inner += ` ORDER BY tid DESC`
	} else {
		inner += ` ORDER BY tid`
	}
	cols := "tid"
	if q.keepHistory {
		cols = "tid, packed, username, description, extension"
	}
	limit := int64(t.Limit)
	if limit <= 0 {
		limit = 1<<62 - 1
	}
	return stmt{text: `SELECT ` + cols + ` FROM (SELECT p.*, ROWNUM AS rn FROM (` + inner + `) p
		WHERE ROWNUM <= :3) WHERE rn > :4`,
		args: []any{int64(t.Start), sqlrow.BoundTID(t.Stop), int64(t.Offset) + limit, int64(t.Offset)}, rows: -1}
}

func (q queries) txnRecords(tid uint64) stmt {
	return stmt{text: `SELECT zoid, tid, state FROM object_state WHERE tid = :1 ORDER BY zoid`,
		args: []any{int64(tid)}, rows: -1}
}

// lockReadCurrent locks one object read with readCurrent. Oracle has no
// shared row locks: RelStorage takes FOR UPDATE NOWAIT, and so do we, one
// statement per object so that a refusal names it.
func (q queries) lockReadCurrent(oid uint64) stmt {
	return stmt{text: `SELECT zoid, tid FROM ` + q.currentTable + ` WHERE zoid = :1 FOR UPDATE NOWAIT`,
		args: []any{int64(oid)}, rows: -1}
}

// lockModified locks the rows of the objects being modified (sorted), in
// oid order, waiting at most commit-lock-timeout, and reads their tids.
func (q queries) lockModified(oids []uint64) []stmt {
	var out []stmt
	for _, part := range chunks(oids) {
		out = append(out, stmt{text: `SELECT zoid, tid FROM ` + q.currentTable + ` WHERE zoid IN (` +
			placeholders(1, len(part)) + `) ORDER BY zoid ` + q.wait, args: sqlrow.Int64Args(part), rows: -1})
	}
	return out
}

// commitLock takes RelStorage's commit lock, the commit_row_lock row for
// update, then reads the newest tid and the server's UTC clock in a second
// statement, which sees every transaction committed before the lock was
// granted. One round trip; the three values come back in OUT binds.
func (q queries) commitLock(lockTID, last *int64, now *string) stmt {
	return stmt{text: `BEGIN
  SELECT tid INTO :1 FROM commit_row_lock ` + q.wait + `;
  SELECT (` + q.lastTID() + `), TO_CHAR(SYS_EXTRACT_UTC(SYSTIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6')
    INTO :2, :3 FROM DUAL;
END;`, args: []any{out(lockTID), out(last), out(now)}, rows: -1}
}

// outcome reads, under the commit lock, what the tables hold of a commit of
// tid whose reply was lost: the commit lock first (waiting for the lost
// transaction to end, one way or the other), then the transaction row
// (history-preserving) or the current tids of the objects it wrote, per 1000.
func (q queries) outcome(tid uint64, oids []uint64) []stmt {
	out := []stmt{{text: `SELECT tid FROM commit_row_lock ` + q.wait, rows: -1}}
	if q.keepHistory {
		return append(out, stmt{text: `SELECT tid FROM transaction WHERE tid = :1`, args: []any{int64(tid)}, rows: -1})
	}
	for _, part := range chunks(oids) {
		out = append(out, stmt{text: `SELECT zoid, tid FROM object_state WHERE zoid IN (` +
			placeholders(1, len(part)) + `)`, args: sqlrow.Int64Args(part), rows: -1})
	}
	return out
}

// serverTimeLayout parses the clock commitLock reads.
const serverTimeLayout = "2006-01-02 15:04:05.999999"

func yesNo(b bool) string {
	if b {
		return "Y"
	}
	return "N"
}

// Column sizes of RelStorage's Oracle transaction table.
const (
	maxUser        = 500
	maxDescription = 2000
	maxExtension   = 2000
)

// batchBytes bounds the buffer an array bind allocates: godror sizes every
// element of a RAW array to the longest one.
const batchBytes = 32 << 20

// batches splits writes into groups sent as one array DML each: at most
// 1000 rows, and at most batchBytes once each row is padded to the longest.
func batches(writes []adapter.Write) [][]adapter.Write {
	var out [][]adapter.Write
	start, longest := 0, 0
	for i, w := range writes {
		l := max(longest, len(w.State))
		if n := i - start; n > 0 && (n >= inLimit || (n+1)*l > batchBytes) {
			out = append(out, writes[start:i])
			start, l = i, len(w.State)
		}
		longest = l
	}
	if start < len(writes) {
		out = append(out, writes[start:])
	}
	return out
}

// move writes a transaction. Rows that existed at lock time (PrevTID not
// 0) are locked by this transaction and updated; new ones are inserted.
// Oracle cannot carry a LOB-sized bind through MERGE's USING clause, so the
// history-free upsert is an UPDATE plus an INSERT, each checked for the
// number of rows it must change.
func (q queries) move(tid uint64, meta adapter.TxnInfo, writes []adapter.Write) ([]stmt, error) {
	out, err := q.moveStates(tid, meta, writes)
	if err != nil {
		return nil, err
	}
	return append(out, q.moveBlobs(tid, writes)...), nil
}

// moveStates writes the transaction's metadata and object states.
func (q queries) moveStates(tid uint64, meta adapter.TxnInfo, writes []adapter.Write) ([]stmt, error) {
	var out []stmt
	if q.keepHistory {
		if len(meta.User) > maxUser || len(meta.Extension) > maxExtension {
			return nil, fmt.Errorf("the transaction's user (%d bytes) or extension (%d bytes) does not fit "+
				"RelStorage's Oracle transaction table (at most %d and %d bytes)",
				len(meta.User), len(meta.Extension), maxUser, maxExtension)
		}
		desc := meta.Description
		if len(desc) > maxDescription {
			desc = desc[:maxDescription] // as RelStorage does
		}
		out = append(out, stmt{text: `INSERT INTO transaction (tid, packed, is_empty, username, description, extension)
		VALUES (:1, :2, :3, :4, :5, :6)`, args: []any{int64(tid), yesNo(meta.Packed), yesNo(len(writes) == 0),
			sqlrow.NonNil(meta.User), sqlrow.NonNil(desc), sqlrow.NonNil(meta.Extension)}, rows: 1})
		for _, b := range batches(writes) {
			oids, tids, prev, sizes := make([]int64, len(b)), make([]int64, len(b)), make([]int64, len(b)), make([]int64, len(b))
			md5s, states := make([]string, len(b)), make([][]byte, len(b))
			for i, w := range b {
				oids[i], tids[i], prev[i], sizes[i] = int64(w.OID), int64(tid), int64(w.PrevTID), int64(len(w.State))
				md5s[i], states[i] = string(w.MD5), w.State
			}
			out = append(out, stmt{text: `INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state)
		VALUES (:1, :2, :3, :4, :5, :6)`, args: []any{oids, tids, prev, md5s, sizes, states}, rows: len(b)})
		}
		var upd, ins []int64
		for _, w := range writes {
			if w.PrevTID != 0 {
				upd = append(upd, int64(w.OID))
			} else {
				ins = append(ins, int64(w.OID))
			}
		}
		for _, part := range int64Chunks(upd) {
			out = append(out, stmt{text: `UPDATE current_object SET tid = :1 WHERE zoid = :2`,
				args: []any{repeat(int64(tid), len(part)), part}, rows: len(part)})
		}
		for _, part := range int64Chunks(ins) {
			out = append(out, stmt{text: `INSERT INTO current_object (zoid, tid) VALUES (:1, :2)`,
				args: []any{part, repeat(int64(tid), len(part))}, rows: len(part)})
		}
		return out, nil
	}
	var upd, ins []adapter.Write
	var del []int64
	for _, w := range writes {
		switch {
		case w.State == nil:
			del = append(del, int64(w.OID))
		case w.PrevTID != 0:
			upd = append(upd, w)
		default:
			ins = append(ins, w)
		}
	}
	for _, b := range batches(upd) {
		oids, tids, sizes, states := columnsHF(tid, b)
		out = append(out, stmt{text: `UPDATE object_state SET tid = :1, state_size = :2, state = :3 WHERE zoid = :4`,
			args: []any{tids, sizes, states, oids}, rows: len(b)})
	}
	for _, b := range batches(ins) {
		oids, tids, sizes, states := columnsHF(tid, b)
		out = append(out, stmt{text: `INSERT INTO object_state (zoid, tid, state_size, state) VALUES (:1, :2, :3, :4)`,
			args: []any{oids, tids, sizes, states}, rows: len(b)})
	}
	for _, part := range int64Chunks(del) {
		out = append(out, stmt{text: `DELETE FROM object_state WHERE zoid = :1`, args: []any{part}, rows: -1})
	}
	return out, nil
}

func columnsHF(tid uint64, b []adapter.Write) (oids, tids, sizes []int64, states [][]byte) {
	oids, tids, sizes, states = make([]int64, len(b)), make([]int64, len(b)), make([]int64, len(b)), make([][]byte, len(b))
	for i, w := range b {
		oids[i], tids[i], sizes[i], states[i] = int64(w.OID), int64(tid), int64(len(w.State)), w.State
	}
	return
}

func int64Chunks(v []int64) [][]int64 {
	var out [][]int64
	for start := 0; start < len(v); start += inLimit {
		out = append(out, v[start:min(len(v), start+inLimit)])
	}
	return out
}

func repeat(v int64, n int) []int64 {
	out := make([]int64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

// RelStorage's pack lock, held by pack and undo until their transaction ends.
const sqlPackLock = `LOCK TABLE pack_lock IN EXCLUSIVE MODE NOWAIT`

// undoPlan reads, under the pack lock, whether tid exists (and is packed)
// and what undoing it means for each object it wrote.
func (q queries) undoPlan(tid uint64) []stmt {
	return []stmt{
		{text: sqlPackLock, rows: -1},
		{text: `SELECT CASE WHEN packed = 'Y' THEN 1 ELSE 0 END FROM transaction WHERE tid = :1`,
			args: []any{int64(tid)}, rows: -1},
		{text: `SELECT u.zoid, c.tid, cs.md5, u.md5, u.prev_tid, p.state
		FROM object_state u
		JOIN current_object c ON c.zoid = u.zoid
		JOIN object_state cs ON cs.zoid = c.zoid AND cs.tid = c.tid
		LEFT JOIN object_state p ON p.zoid = u.zoid AND p.tid = u.prev_tid
		WHERE u.tid = :1
		ORDER BY u.zoid`, args: []any{int64(tid)}, rows: -1},
	}
}

// sqlNextOID takes one sequence value: value n stands for OIDs n*16-15 .. n*16.
const sqlNextOID = `SELECT zoid_seq.NEXTVAL FROM DUAL`

// setMinOID returns what makes zoid_seq never issue want or below again,
// after next was taken from it: Oracle changes a sequence only by DDL, so,
// as RelStorage does, the increment is raised for one value and put back.
func setMinOID(next, want int64) []stmt {
	if next >= want {
		return nil
	}
	return []stmt{
		{text: `ALTER SEQUENCE zoid_seq INCREMENT BY ` + strconv.FormatInt(want-next, 10), rows: -1},
		{text: sqlNextOID, rows: -1},
		{text: `ALTER SEQUENCE zoid_seq INCREMENT BY 1`, rows: -1},
	}
}

// size counts the current objects (exactly while the optimizer's estimate
// is under a million rows) and sums the schema's segments.
func (q queries) size() stmt {
	return stmt{text: `SELECT CASE WHEN est < 1000000 THEN (SELECT COUNT(*) FROM ` + q.currentTable + `) ELSE est END,
		(SELECT COALESCE(SUM(bytes), 0) FROM user_segments)
		FROM (SELECT COALESCE(MAX(num_rows), 0) AS est FROM user_tables WHERE table_name = :1)`,
		args: []any{strings.ToUpper(q.currentTable)}, rows: -1}
}

// xid names one distributed transaction branch for DBMS_XA (twophase).
type xid struct {
	gtrid []byte
}

// xidFormat is the XA format id GoRelStorage's branches carry ("GRS").
const xidFormat = 0x475253

// xidExpr builds the branch's DBMS_XA_XID from binds :1 (format), :2 (global id), :3 (branch).
const xidExpr = `DBMS_XA_XID(:1, :2, :3)`

func (x xid) args() []any { return []any{int64(xidFormat), x.gtrid, []byte("0")} }

// xaBlock runs DBMS_XA calls in one PL/SQL block; each call's result must
// be one of its accepted codes, else the block raises an error naming it.
func xaBlock(x xid, calls ...string) stmt {
	var b strings.Builder
	b.WriteString("DECLARE\n  rc PLS_INTEGER;\n  x DBMS_XA_XID := " + xidExpr + ";\nBEGIN\n")
	for _, c := range calls {
		b.WriteString(c)
	}
	b.WriteString("END;")
	return stmt{text: b.String(), args: x.args(), rows: -1}
}

// xaCall is one DBMS_XA function call whose result must be XA_OK (or one
// of the extra codes).
func xaCall(call string, extra ...string) string {
	ok := "rc <> DBMS_XA.XA_OK"
	for _, e := range extra {
		ok += " AND rc <> " + e
	}
	name := call[:strings.Index(call, "(")]
	return "  rc := DBMS_XA." + call + ";\n  IF " + ok + " THEN\n" +
		"    RAISE_APPLICATION_ERROR(-20100, 'DBMS_XA." + name + " failed with ' || rc);\n  END IF;\n"
}

// xaStart begins the write transaction as an XA branch (twophase).
func xaStart(x xid) stmt {
	return xaBlock(x, xaCall("XA_START(x, DBMS_XA.TMNOFLAGS)"))
}

// xaPrepare ends the branch's work and prepares it: after this the
// transaction survives anything but an explicit rollback, and its commit
// cannot fail for lack of resources. A branch that wrote nothing is
// finished by the prepare (XA_RDONLY).
// readOnly is set to 1 in that case, and there is nothing to commit.
func xaPrepare(x xid, readOnly *int64) stmt {
	s := xaBlock(x, xaCall("XA_END(x, DBMS_XA.TMSUCCESS)"), xaCall("XA_PREPARE(x)", "DBMS_XA.XA_RDONLY"),
		"  :4 := CASE WHEN rc = DBMS_XA.XA_RDONLY THEN 1 ELSE 0 END;\n")
	s.args = append(s.args, out(readOnly))
	return s
}

// xaCommit commits a prepared branch (phase two).
func xaCommit(x xid) stmt {
	return xaBlock(x, xaCall("XA_COMMIT(x, FALSE)"))
}

// xaRollback rolls back a branch, ended and prepared or not. Its results are
// not checked: the branch may already be ended or gone.
func xaRollback(x xid) stmt {
	return xaBlock(x, "  rc := DBMS_XA.XA_END(x, DBMS_XA.TMSUCCESS);\n  rc := DBMS_XA.XA_ROLLBACK(x);\n")
}
