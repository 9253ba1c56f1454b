package postgres

// queries holds the statements that differ between history-preserving and
// history-free schemas. Every statement is prepared once per connection (pgx
// caches them) and takes arrays for lists of oids, so its text never varies.
type queries struct {
	lastTID     string
	changes     string
	current     string // one oid
	currentAny  string // oids as a bigint[]
	currentFrom string
	currentTIDs string // oids as a bigint[]
	lockObjects string // exclusive advisory locks on existing objects, in oid order
}

func newQueries(keepHistory bool) queries {
	if keepHistory {
		return queries{
			lastTID: `SELECT COALESCE(MAX(tid), 0) FROM transaction`,
			changes: `SELECT zoid, tid FROM current_object WHERE tid > $1 AND tid <= $2 LIMIT $3`,
			current: `SELECT zoid, tid, state FROM current_object_state WHERE zoid = $1`,
			// Driven by the array, so that the plan PostgreSQL keeps for the
			// prepared statement (a generic plan after five runs) is index
			// lookups whatever the array's length, never a hash join that
			// scans current_object (a prefetch of 1000 objects with history took
			// 1.47x RelStorage's time that way, 0.6-0.75x this way).
			currentAny: `SELECT c.zoid, c.tid, o.state FROM unnest($1::bigint[]) AS u(zoid)
				JOIN current_object c ON c.zoid = u.zoid
				JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid`,
			currentFrom: `SELECT zoid, tid, state FROM current_object_state WHERE zoid >= $1 ORDER BY zoid LIMIT $2`,
			currentTIDs: `SELECT zoid, tid FROM current_object WHERE zoid = ANY($1::bigint[])`,
			lockObjects: `SELECT pg_advisory_xact_lock(zoid) FROM (SELECT zoid FROM current_object
				WHERE zoid = ANY($1::bigint[]) ORDER BY zoid) t`,
		}
	}
	return queries{
		lastTID:     `SELECT COALESCE(MAX(tid), 0) FROM object_state`,
		changes:     `SELECT zoid, tid FROM object_state WHERE tid > $1 AND tid <= $2 LIMIT $3`,
		current:     `SELECT zoid, tid, state FROM object_state WHERE zoid = $1`,
		currentAny:  `SELECT zoid, tid, state FROM object_state WHERE zoid = ANY($1::bigint[])`,
		currentFrom: `SELECT zoid, tid, state FROM object_state WHERE zoid >= $1 ORDER BY zoid LIMIT $2`,
		currentTIDs: `SELECT zoid, tid FROM object_state WHERE zoid = ANY($1::bigint[])`,
		lockObjects: `SELECT pg_advisory_xact_lock(zoid) FROM (SELECT zoid FROM object_state
			WHERE zoid = ANY($1::bigint[]) ORDER BY zoid) t`,
	}
}

// Statements common to both modes.
const (
	sqlBeginLoad  = `BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`
	sqlBeginStore = `BEGIN ISOLATION LEVEL READ COMMITTED`

	// readCurrent: shared advisory locks that never wait, in oid order. A
	// SELECT cannot RAISE, so a lock held by a writer aborts the statement
	// (and the rest of the pipeline) with a cast error naming the oid; the
	// dialect turns it into a read conflict. RelStorage's stored function
	// raises lock_not_available for the same case.
	sqlLockShared = `SELECT CASE WHEN pg_try_advisory_xact_lock_shared(zoid) THEN zoid
		ELSE ('gorelstorage-readcurrent-locked:' || zoid)::bigint END
		FROM (SELECT zoid FROM unnest($1::bigint[]) AS zoid ORDER BY zoid) t`
	readCurrentMarker = `gorelstorage-readcurrent-locked:`

	sqlCommitLock = `SELECT pg_advisory_xact_lock(-1)`

	sqlRevision = `SELECT state FROM object_state WHERE zoid = $1 AND tid = $2`
	sqlBefore   = `SELECT tid, state, COALESCE((SELECT MIN(n.tid) FROM object_state n
		WHERE n.zoid = $1 AND n.tid > o.tid), 0)
		FROM object_state o WHERE zoid = $1 AND tid < $2 ORDER BY tid DESC LIMIT 1`
	sqlExists    = `SELECT EXISTS (SELECT 1 FROM object_state WHERE zoid = $1)`
	sqlHistoryHP = `SELECT o.tid, o.state_size, t.packed, t.username, t.description, COALESCE(t.extension, ''::bytea)
		FROM object_state o JOIN transaction t ON t.tid = o.tid
		WHERE o.zoid = $1 ORDER BY o.tid DESC LIMIT $2`
	sqlHistoryHF  = `SELECT tid, state_size FROM object_state WHERE zoid = $1`
	sqlTxnRecords = `SELECT zoid, tid, state FROM object_state WHERE tid = $1 ORDER BY zoid`

	sqlInsertTxn = `INSERT INTO transaction (tid, packed, is_empty, username, description, extension)
		VALUES ($1, $2, $3, $4, $5, $6)`
	sqlInsertStatesHP = `INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state)
		SELECT zoid, $1, prev_tid, md5, COALESCE(octet_length(state), 0), state
		FROM unnest($2::bigint[], $3::bigint[], $4::text[], $5::bytea[]) AS w(zoid, prev_tid, md5, state)`
	// The objects a commit creates (no row at lock time) are inserted; an upsert's
	// speculative insertion costs a third more per row.
	sqlInsertCurrent  = `INSERT INTO current_object (zoid, tid) SELECT zoid, $1 FROM unnest($2::bigint[]) AS zoid`
	sqlUpsertCurrent  = sqlInsertCurrent + ` ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid`
	sqlInsertStatesHF = `INSERT INTO object_state (zoid, tid, state_size, state)
		SELECT zoid, $1, octet_length(state), state FROM unnest($2::bigint[], $3::bytea[]) AS w(zoid, state)`
	sqlUpsertStatesHF = sqlInsertStatesHF +
		` ON CONFLICT (zoid) DO UPDATE SET tid = excluded.tid, state_size = excluded.state_size, state = excluded.state`
	sqlDeleteHF = `DELETE FROM object_state WHERE zoid = ANY($1::bigint[])`

	sqlUndoTxn  = `SELECT packed FROM transaction WHERE tid = $1`
	sqlUndoPlan = `SELECT u.zoid, c.tid, cs.md5, u.md5, u.prev_tid, p.state
		FROM object_state u
		JOIN current_object c ON c.zoid = u.zoid
		JOIN object_state cs ON cs.zoid = c.zoid AND cs.tid = c.tid
		LEFT JOIN object_state p ON p.zoid = u.zoid AND p.tid = u.prev_tid
		WHERE u.tid = $1
		ORDER BY u.zoid`
)

func int64s(oids []uint64) []int64 {
	out := make([]int64, len(oids))
	for i, o := range oids {
		out[i] = int64(o)
	}
	return out
}
