package mysql

import "strings"

// queries holds the statements that differ between history-preserving and
// history-free schemas, or between MySQL 8 and MariaDB. Statements taking a
// list of oids end in an IN list built by in().
type queries struct {
	lastTID      string
	changes      string
	current      string // one oid
	currentIn    string // + in(oids)
	currentFrom  string
	lockShared   string // one oid: a shared row lock that never waits
	lockModified string // + in(oids) + lockModifiedEnd
	upsertHF     string // + rows + upsertHFEnd
	upsertHFEnd  string
	currentHPEnd string // ends the multi-row upsert of current_object
}

// lockModifiedEnd follows the IN list of lockModified: rows are locked in oid order.
const lockModifiedEnd = ` ORDER BY zoid FOR UPDATE`

func newQueries(keepHistory bool, s server) queries {
	q := queries{}
	if keepHistory {
		q.lastTID = `SELECT COALESCE(MAX(tid), 0) FROM transaction`
		q.changes = `SELECT zoid, tid FROM current_object WHERE tid > ? AND tid <= ? LIMIT ?`
		q.current = `SELECT c.zoid, c.tid, o.state FROM current_object c
			JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid WHERE c.zoid = ?`
		q.currentIn = `SELECT c.zoid, c.tid, o.state FROM current_object c
			JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid WHERE c.zoid IN (`
		q.currentFrom = `SELECT c.zoid, c.tid, o.state FROM current_object c
			JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid WHERE c.zoid >= ? ORDER BY c.zoid LIMIT ?`
		q.lockShared = `SELECT zoid, tid FROM current_object WHERE zoid = ? ` + s.shareNowait()
		q.lockModified = `SELECT zoid, tid FROM current_object WHERE zoid IN (`
	} else {
		q.lastTID = `SELECT COALESCE(MAX(tid), 0) FROM object_state`
		q.changes = `SELECT zoid, tid FROM object_state WHERE tid > ? AND tid <= ? LIMIT ?`
		q.current = `SELECT zoid, tid, state FROM object_state WHERE zoid = ?`
		q.currentIn = `SELECT zoid, tid, state FROM object_state WHERE zoid IN (`
		q.currentFrom = `SELECT zoid, tid, state FROM object_state WHERE zoid >= ? ORDER BY zoid LIMIT ?`
		q.lockShared = `SELECT zoid, tid FROM object_state WHERE zoid = ? ` + s.shareNowait()
		q.lockModified = `SELECT zoid, tid FROM object_state WHERE zoid IN (`
	}
	q.upsertHF = `INSERT INTO object_state (zoid, tid, state_size, state) VALUES `
	q.upsertHFEnd = s.rowAlias() + ` ON DUPLICATE KEY UPDATE tid = ` + s.newValue("tid") +
		`, state_size = ` + s.newValue("state_size") + `, state = ` + s.newValue("state")
	q.currentHPEnd = s.rowAlias() + ` ON DUPLICATE KEY UPDATE tid = ` + s.newValue("tid")
	return q
}

// in returns "?, ?, ?)" for n values: the rest of an IN list.
func in(n int) string {
	if n == 0 {
		return "NULL)"
	}
	return strings.Repeat("?, ", n-1) + "?)"
}

// Statements common to both modes and servers.
const (
	sqlBeginLoad  = `START TRANSACTION READ ONLY, WITH CONSISTENT SNAPSHOT`
	sqlBeginStore = `START TRANSACTION`

	// The commit lock: RelStorage's row of commit_row_lock, for update.
	sqlCommitLock = `SELECT tid FROM commit_row_lock FOR UPDATE`
	sqlServerNow  = `UTC_TIMESTAMP(6)`

	sqlRevision = `SELECT state FROM object_state WHERE zoid = ? AND tid = ?`
	sqlBefore   = `SELECT tid, state, COALESCE((SELECT MIN(n.tid) FROM object_state n
		WHERE n.zoid = o.zoid AND n.tid > o.tid), 0)
		FROM object_state o WHERE zoid = ? AND tid < ? ORDER BY tid DESC LIMIT 1`
	sqlExists    = `SELECT EXISTS (SELECT 1 FROM object_state WHERE zoid = ?)`
	sqlHistoryHP = `SELECT o.tid, o.state_size, t.packed, t.username, t.description, COALESCE(t.extension, '')
		FROM object_state o JOIN transaction t ON t.tid = o.tid
		WHERE o.zoid = ? ORDER BY o.tid DESC LIMIT ?`
	sqlHistoryHF  = `SELECT tid, state_size FROM object_state WHERE zoid = ?`
	sqlTxnRecords = `SELECT zoid, tid, state FROM object_state WHERE tid = ? ORDER BY zoid`

	sqlInsertTxn = `INSERT INTO transaction (tid, packed, is_empty, username, description, extension)
		VALUES (?, ?, ?, ?, ?, ?)`
	sqlInsertStatesHP = `INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state) VALUES `
	sqlInsertCurrent  = `INSERT INTO current_object (zoid, tid) VALUES `
	sqlDeleteHF       = `DELETE FROM object_state WHERE zoid IN (`

	sqlUndoTxn  = `SELECT packed FROM transaction WHERE tid = ?`
	sqlUndoPlan = `SELECT u.zoid, c.tid, cs.md5, u.md5, u.prev_tid, p.state
		FROM object_state u
		JOIN current_object c ON c.zoid = u.zoid
		JOIN object_state cs ON cs.zoid = c.zoid AND cs.tid = c.tid
		LEFT JOIN object_state p ON p.zoid = u.zoid AND p.tid = u.prev_tid
		WHERE u.tid = ?
		ORDER BY u.zoid`

	// RelStorage's pack lock, held by pack and while planning an undo.
	sqlPackLock    = `SELECT GET_LOCK(CONCAT(DATABASE(), '.pack'), 0)`
	sqlPackRelease = `DO RELEASE_LOCK(CONCAT(DATABASE(), '.pack'))`
)
