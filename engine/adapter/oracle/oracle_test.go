package oracle

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// These tests need no server: they check the statements each operation
// sends (text and bind order) and what Open does without Oracle's client
// libraries. tests_go and tests_py run the shared suites against a live
// server when GORELSTORAGE_ORACLE_DSN is set.

func TestRegisteredAsOracle(t *testing.T) {
	_, ok := adapter.Lookup("oracle")
	require.True(t, ok)
}

func TestBadOptionsAreConfigErrors(t *testing.T) {
	ctx := context.Background()
	for raw, want := range map[string]string{
		`{"dsn": "db/x", "user": "u", "password": "s3cret", "driver": "oci8"}`: `driver "oci8" is not available`,
		`{"dsn": "db/x", "user": "u", "password": "s3cret", "host": "db"}`:     "unknown field",
		`{"user": "u", "password": "s3cret"}`:                                  "no dsn given",
		`{"dsn": "db/x", "password": "s3cret"}`:                                "no user given",
		`{"dsn": "db/x", "user": "u", "twophase": "maybe"}`:                    "twophase",
	} {
		_, err := Open(ctx, adapter.Settings{Options: []byte(raw)})
		require.ErrorIs(t, err, adapter.ErrBadConfig, raw)
		require.Contains(t, err.Error(), want, raw)
		require.NotContains(t, err.Error(), "s3cret", raw)
	}
}

// On a machine without Instant Client (CI), opening fails at once with a
// message that says what to install, never with a crash.
func TestOpenWithoutClientLibrariesSaysWhatToInstall(t *testing.T) {
	if os.Getenv("GORELSTORAGE_ORACLE_DSN") != "" {
		t.Skip("GORELSTORAGE_ORACLE_DSN is set: this machine has Oracle's client libraries")
	}
	opts := `{"dsn": "db.example.com:1521/ORCLPDB1", "user": "zodb", "password": "s3cret"}`
	start := time.Now()
	_, err := Open(context.Background(), adapter.Settings{KeepHistory: true, CreateSchema: true,
		LockTimeout: 30 * time.Second, Options: []byte(opts)})
	require.Error(t, err)
	require.Less(t, time.Since(start), 10*time.Second, "no network attempt is made without a client")
	require.ErrorIs(t, err, adapter.ErrBadConfig)
	require.Contains(t, err.Error(), "Oracle client libraries not found: install Oracle Instant Client")
	require.Contains(t, err.Error(), "LD_LIBRARY_PATH")
	require.Contains(t, err.Error(), "DPI-1047", "the driver's own words follow")
	require.Contains(t, err.Error(), "oracle:dsn=db.example.com:1521/ORCLPDB1 user=zodb")
	require.NotContains(t, err.Error(), "s3cret")
}

func TestDescribeNamesTheDatabaseWithoutThePassword(t *testing.T) {
	require.Equal(t, "oracle:dsn=db:1521/X user=zodb", describe(Options{User: "zodb", Password: "pw1", DSN: "db:1521/X"}))
	for _, pw := range []string{"d", "db", "u/p"} {
		require.Equal(t, "oracle:dsn=db:1521/X user=u", describe(Options{User: "u", DSN: "u/" + pw + "@db:1521/X"}), pw)
	}
	desc := "(DESCRIPTION=(ADDRESS=(HOST=db)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=X)))"
	require.Equal(t, "oracle:dsn="+desc+" user=u", describe(Options{User: "u", DSN: desc}))
}

func TestLockTimeoutBecomesWholeSecondsOrNowait(t *testing.T) {
	require.Equal(t, 0, lockSeconds(0))
	require.Equal(t, 1, lockSeconds(200*time.Millisecond))
	require.Equal(t, 30, lockSeconds(30*time.Second))
	require.Equal(t, 31, lockSeconds(30*time.Second+time.Millisecond))
	require.Equal(t, "FOR UPDATE WAIT 30", newQueries(true, 30).wait)
	require.Equal(t, "FOR UPDATE NOWAIT", newQueries(true, 0).wait)
}

func TestZapEmptiesEveryTableUnderBothLocksInOneTransaction(t *testing.T) {
	for _, hp := range []bool{true, false} {
		stmts := newQueries(hp, 30).zapStatements(hp)
		require.Equal(t, sqlPackLock, stmts[0], "the pack lock first: a running pack refuses the zap")
		require.Equal(t, "SELECT tid FROM commit_row_lock FOR UPDATE WAIT 30", stmts[1])
		deleted := map[string]bool{}
		for _, s := range stmts[2:] {
			require.False(t, strings.HasPrefix(s, "TRUNCATE"), "TRUNCATE would commit and release the locks")
			if table, ok := strings.CutPrefix(s, "DELETE FROM "); ok {
				deleted[table] = true
			}
		}
		want := []string{"object_state", "blob_chunk", "object_ref", "object_refs_added", "pack_object"}
		if hp {
			want = append(want, "transaction", "current_object", "pack_state", "pack_state_tid")
			require.Contains(t, stmts[len(stmts)-1], "'special transaction for object creation'")
		}
		require.Len(t, deleted, len(want))
		for _, table := range want {
			require.True(t, deleted[table], table)
		}
		require.False(t, deleted["commit_row_lock"] || deleted["pack_lock"], "the lock tables stay")
	}
	require.Equal(t, []string{"DROP SEQUENCE zoid_seq", "CREATE SEQUENCE zoid_seq"}, zapSequence)
}

// oraError is an error carrying an ORA- number, as godror's *OraErr does.
type oraError int

func (e oraError) Error() string { return fmt.Sprintf("ORA-%05d: test", int(e)) }
func (e oraError) Code() int     { return int(e) }

func TestOracleErrorsAreClassified(t *testing.T) {
	d := &dialect{describe: "oracle:test", options: Options{Password: "s3cret"}}
	wrapped := func(code int) error { return fmt.Errorf("exec: %w", oraError(code)) }
	require.ErrorIs(t, d.wrap(wrapped(54)), adapter.ErrLockTimeout, "NOWAIT refused")
	require.ErrorIs(t, d.wrap(wrapped(30006)), adapter.ErrLockTimeout, "WAIT expired")
	require.ErrorIs(t, d.wrap(wrapped(60)), adapter.ErrDeadlock)
	for _, code := range []int{3113, 3114, 3135, 28} {
		require.ErrorIs(t, d.wrap(wrapped(code)), adapter.ErrDisconnected, code)
	}
	require.ErrorIs(t, d.wrap(sql.ErrConnDone), adapter.ErrDisconnected)
	err := d.wrap(wrapped(942))
	require.NotErrorIs(t, err, adapter.ErrLockTimeout)
	require.NotErrorIs(t, err, adapter.ErrDisconnected)
	require.True(t, isLockFailure(wrapped(54)))
	require.False(t, isLockFailure(wrapped(60)))
	require.True(t, alreadyExists[oraCode(wrapped(955))])

	require.ErrorIs(t, d.connectError(wrapped(1017)), adapter.ErrBadConfig, "wrong password")
	require.ErrorIs(t, d.connectError(wrapped(12154)), adapter.ErrBadConfig, "unknown TNS name")
	require.NotErrorIs(t, d.connectError(wrapped(12170)), adapter.ErrBadConfig, "a timeout may pass")
	require.ErrorIs(t, d.connectError(wrapped(12170)), adapter.ErrUnreachable, "an open storage retries")
	failed := d.wrap(wrapped(1))
	require.Equal(t, failed, d.commitErr(context.Background(), "", 7, nil, failed), "a refused COMMIT is not checked")
}

func TestPollReadsTheNewestTidAndChangesInOneStatement(t *testing.T) {
	for _, keep := range []bool{true, false} {
		q := newQueries(keep, 30)
		s := q.poll(5, 1<<63, 100)
		table := map[bool]string{true: "current_object", false: "object_state"}[keep]
		txns := map[bool]string{true: "transaction", false: "object_state"}[keep]
		require.Contains(t, s.text, `SELECT -1, (SELECT COALESCE(MAX(tid), 0) FROM `+txns+`) FROM DUAL`)
		require.Contains(t, s.text, `UNION ALL`)
		require.Contains(t, s.text, `SELECT zoid, tid FROM `+table+` WHERE tid > :1 AND tid <= :2 AND ROWNUM <= :3`)
		require.Equal(t, []any{int64(5), int64(1<<63 - 1), 100}, s.args, "upTo is clamped to a NUMBER int64 binds")

		c := q.changes(7, 9, 10)
		require.Equal(t, `SELECT zoid, tid FROM `+table+` WHERE tid > :1 AND tid <= :2 AND ROWNUM <= :3`, c.text)
		require.Equal(t, []any{int64(7), int64(9), 10}, c.args)
	}
}

func TestLoadsReadCurrentRevisionsInListsOracleAccepts(t *testing.T) {
	hp, hf := newQueries(true, 30), newQueries(false, 30)
	one := hp.current([]uint64{42})
	require.Len(t, one, 1)
	require.True(t, strings.HasSuffix(one[0].text, `WHERE c.zoid = :1`), one[0].text)
	require.Contains(t, one[0].text, `JOIN object_state o ON o.zoid = c.zoid AND o.tid = c.tid`)
	require.Equal(t, []any{int64(42)}, one[0].args)
	require.Equal(t, `SELECT zoid, tid, state FROM object_state WHERE zoid = :1`, hf.current([]uint64{42})[0].text)

	oids := make([]uint64, 2500)
	for i := range oids {
		oids[i] = uint64(i + 1)
	}
	parts := hf.current(oids)
	require.Len(t, parts, 3, "at most 1000 expressions per IN list (ORA-01795)")
	require.Len(t, parts[0].args, 1000)
	require.Len(t, parts[2].args, 500)
	require.True(t, strings.HasSuffix(parts[2].text, `zoid IN (`+placeholders(1, 500)+`)`))
	require.Equal(t, int64(2001), parts[2].args[0])
	require.Equal(t, ":1, :2, :3", placeholders(1, 3))

	from := hp.currentFrom(10, 50)
	require.Contains(t, from.text, `c.zoid >= :1 ORDER BY 1)`)
	require.Contains(t, from.text, `WHERE ROWNUM <= :2`)
	require.Equal(t, []any{int64(10), 50}, from.args)

	rev := hp.revision(3, 4)
	require.Equal(t, `SELECT state FROM object_state WHERE zoid = :1 AND tid = :2`, rev.text)
	require.Equal(t, []any{int64(3), int64(4)}, rev.args)

	b := hp.before(3, 1<<64-1)
	require.Contains(t, b.text, `WHERE o.zoid = :1 AND o.tid < :2 ORDER BY o.tid DESC)`)
	require.Contains(t, b.text, `WHERE ROWNUM <= 1`)
	require.Equal(t, []any{int64(3), int64(1<<63 - 1)}, b.args)
	require.Equal(t, []any{int64(3)}, hp.exists(3).args)

	require.Equal(t, `SELECT zoid, tid, state FROM object_state WHERE tid = :1 ORDER BY zoid`, hp.txnRecords(9).text)
}

func TestHistoryAndTransactionQueries(t *testing.T) {
	hp, hf := newQueries(true, 30), newQueries(false, 30)
	h := hp.history(7, 20)
	require.Contains(t, h.text, `FROM object_state o JOIN transaction t ON t.tid = o.tid`)
	require.Contains(t, h.text, `CASE WHEN t.packed = 'Y' THEN 1 ELSE 0 END AS packed`)
	require.Contains(t, h.text, `WHERE o.zoid = :1 ORDER BY o.tid DESC)`)
	require.Contains(t, h.text, `WHERE ROWNUM <= :2`)
	require.Equal(t, []any{int64(7), 20}, h.args)
	require.Equal(t, `SELECT tid, state_size FROM object_state WHERE zoid = :1`, hf.history(7, 20).text)

	tq := hp.transactions(adapter.TxnQuery{Start: 2, Stop: 1<<64 - 1, NewestFirst: true, SkipPacked: true,
		Offset: 10, Limit: 5})
	require.Contains(t, tq.text, `FROM transaction WHERE tid > 0 AND tid >= :1 AND tid <= :2 AND packed = 'N' ORDER BY tid DESC`)
	require.Contains(t, tq.text, `WHERE ROWNUM <= :3) WHERE rn > :4`)
	require.Equal(t, []any{int64(2), int64(1<<63 - 1), int64(15), int64(10)}, tq.args, "start, stop, offset+limit, offset")
	require.True(t, strings.HasPrefix(tq.text, `SELECT tid, packed, username, description, extension FROM`))

	all := hf.transactions(adapter.TxnQuery{Start: 0, Stop: 100})
	require.Contains(t, all.text, `SELECT DISTINCT tid FROM object_state WHERE tid >= :1 AND tid <= :2 ORDER BY tid)`)
	require.True(t, strings.HasPrefix(all.text, `SELECT tid FROM`))
	require.Equal(t, int64(1<<62-1), all.args[2], "no limit")
}

func TestLocksAreRelStoragesAndInOidOrder(t *testing.T) {
	for _, keep := range []bool{true, false} {
		q := newQueries(keep, 45)
		table := map[bool]string{true: "current_object", false: "object_state"}[keep]
		rc := q.lockReadCurrent(9)
		require.Equal(t, `SELECT zoid, tid FROM `+table+` WHERE zoid = :1 FOR UPDATE NOWAIT`, rc.text,
			"Oracle has no shared row locks: readCurrent never waits")
		require.Equal(t, []any{int64(9)}, rc.args)

		oids := make([]uint64, 1500)
		for i := range oids {
			oids[i] = uint64(10 + i)
		}
		mod := q.lockModified(oids)
		require.Len(t, mod, 2)
		require.Equal(t, `SELECT zoid, tid FROM `+table+` WHERE zoid IN (`+placeholders(1, 1000)+
			`) ORDER BY zoid FOR UPDATE WAIT 45`, mod[0].text)
		require.Equal(t, int64(10), mod[0].args[0])
		require.Equal(t, int64(1010), mod[1].args[0], "the second list continues in oid order")
		require.Empty(t, q.lockModified(nil))
	}

	var lockTID, last int64
	var now string
	cl := newQueries(true, 45).commitLock(&lockTID, &last, &now)
	require.Contains(t, cl.text, "SELECT tid INTO :1 FROM commit_row_lock FOR UPDATE WAIT 45;")
	require.Contains(t, cl.text, "SELECT (SELECT COALESCE(MAX(tid), 0) FROM transaction), "+
		"TO_CHAR(SYS_EXTRACT_UTC(SYSTIMESTAMP), 'YYYY-MM-DD HH24:MI:SS.FF6')\n    INTO :2, :3 FROM DUAL;")
	require.True(t, strings.HasPrefix(cl.text, "BEGIN") && strings.HasSuffix(cl.text, "END;"))
	require.Equal(t, []any{sql.Out{Dest: &lockTID}, sql.Out{Dest: &last}, sql.Out{Dest: &now}}, cl.args)
	require.Contains(t, newQueries(false, 0).commitLock(&lockTID, &last, &now).text,
		"FROM commit_row_lock FOR UPDATE NOWAIT;\n  SELECT (SELECT COALESCE(MAX(tid), 0) FROM object_state)")
	at, err := time.ParseInLocation(serverTimeLayout, "2026-11-21 20:01:02.123456", time.UTC)
	require.NoError(t, err)
	require.Equal(t, 123456000, at.Nanosecond())
}

func TestMoveHistoryPreserving(t *testing.T) {
	q := newQueries(true, 30)
	writes := []adapter.Write{
		{OID: 1, PrevTID: 100, State: []byte("one"), MD5: []byte("md5one")},
		{OID: 2, PrevTID: 0, State: []byte("two"), MD5: []byte("md5two")},
		{OID: 3, PrevTID: 90, State: nil},
	}
	meta := adapter.TxnInfo{User: []byte("u"), Description: []byte("d"), Extension: nil, Packed: true}
	stmts, err := q.move(200, meta, writes)
	require.NoError(t, err)
	require.Len(t, stmts, 4)

	require.Contains(t, stmts[0].text, `INSERT INTO transaction (tid, packed, is_empty, username, description, extension)`)
	require.Contains(t, stmts[0].text, `VALUES (:1, :2, :3, :4, :5, :6)`)
	require.Equal(t, []any{int64(200), "Y", "N", []byte("u"), []byte("d"), []byte{}}, stmts[0].args)
	require.Equal(t, 1, stmts[0].rows)

	require.Contains(t, stmts[1].text, `INSERT INTO object_state (zoid, tid, prev_tid, md5, state_size, state)`)
	require.Equal(t, []any{
		[]int64{1, 2, 3}, []int64{200, 200, 200}, []int64{100, 0, 90},
		[]string{"md5one", "md5two", ""}, []int64{3, 3, 0}, [][]byte{[]byte("one"), []byte("two"), nil},
	}, stmts[1].args, "one array bind per column, rows in the writes' order")
	require.Equal(t, 3, stmts[1].rows)

	require.Equal(t, `UPDATE current_object SET tid = :1 WHERE zoid = :2`, stmts[2].text)
	require.Equal(t, []any{[]int64{200, 200}, []int64{1, 3}}, stmts[2].args)
	require.Equal(t, 2, stmts[2].rows, "each existing object's row must be updated")
	require.Equal(t, `INSERT INTO current_object (zoid, tid) VALUES (:1, :2)`, stmts[3].text)
	require.Equal(t, []any{[]int64{2}, []int64{200}}, stmts[3].args)

	empty, err := q.move(201, adapter.TxnInfo{}, nil)
	require.NoError(t, err)
	require.Len(t, empty, 1)
	require.Equal(t, "Y", empty[0].args[2], "is_empty")

	long := adapter.TxnInfo{Description: []byte(strings.Repeat("d", 2500))}
	stmts, err = q.move(202, long, nil)
	require.NoError(t, err)
	require.Len(t, stmts[0].args[4], 2000, "the description is cut to RAW(2000), as RelStorage does")
	_, err = q.move(203, adapter.TxnInfo{User: []byte(strings.Repeat("u", 501))}, nil)
	require.ErrorContains(t, err, "does not fit")
}

func TestMoveHistoryFree(t *testing.T) {
	q := newQueries(false, 30)
	writes := []adapter.Write{
		{OID: 1, PrevTID: 100, State: []byte("one")},
		{OID: 2, PrevTID: 0, State: []byte("two")},
		{OID: 3, PrevTID: 90, State: nil},
		{OID: 4, PrevTID: 80, State: []byte("four")},
	}
	stmts, err := q.move(200, adapter.TxnInfo{User: []byte("ignored")}, writes)
	require.NoError(t, err)
	require.Len(t, stmts, 3)
	require.Equal(t, `UPDATE object_state SET tid = :1, state_size = :2, state = :3 WHERE zoid = :4`, stmts[0].text)
	require.Equal(t, []any{[]int64{200, 200}, []int64{3, 4}, [][]byte{[]byte("one"), []byte("four")}, []int64{1, 4}},
		stmts[0].args)
	require.Equal(t, 2, stmts[0].rows)
	require.Equal(t, `INSERT INTO object_state (zoid, tid, state_size, state) VALUES (:1, :2, :3, :4)`, stmts[1].text)
	require.Equal(t, []any{[]int64{2}, []int64{200}, []int64{3}, [][]byte{[]byte("two")}}, stmts[1].args)
	require.Equal(t, `DELETE FROM object_state WHERE zoid = :1`, stmts[2].text)
	require.Equal(t, []any{[]int64{3}}, stmts[2].args)
	require.Equal(t, -1, stmts[2].rows, "deleting an object already gone is no error")
}

// godror pads every element of a RAW array bind to the longest: large
// states go in batches whose padded size stays bounded.
func TestArrayBindsAreBatched(t *testing.T) {
	var writes []adapter.Write
	for i := range 2500 {
		writes = append(writes, adapter.Write{OID: uint64(i), State: []byte("small")})
	}
	b := batches(writes)
	require.Len(t, b, 3)
	require.Len(t, b[0], 1000)
	require.Len(t, b[2], 500)

	big := make([]byte, 10<<20)
	mixed := []adapter.Write{{OID: 1, State: []byte("a")}, {OID: 2, State: big}, {OID: 3, State: big},
		{OID: 4, State: big}, {OID: 5, State: big}, {OID: 6, State: []byte("b")}}
	b = batches(mixed)
	n := 0
	for _, part := range b {
		longest := 0
		for _, w := range part {
			longest = max(longest, len(w.State))
		}
		require.LessOrEqual(t, len(part)*longest, batchBytes)
		n += len(part)
	}
	require.Equal(t, len(mixed), n)
	require.Equal(t, uint64(1), b[0][0].OID, "order is kept")
	require.Len(t, batches([]adapter.Write{{OID: 1, State: make([]byte, batchBytes+1)}}), 1,
		"a state larger than the bound goes alone")
}

func TestUndoPlanHoldsThePackLock(t *testing.T) {
	plan := newQueries(true, 30).undoPlan(77)
	require.Len(t, plan, 3)
	require.Equal(t, `LOCK TABLE pack_lock IN EXCLUSIVE MODE NOWAIT`, plan[0].text, "RelStorage's pack lock, first")
	require.Equal(t, `SELECT CASE WHEN packed = 'Y' THEN 1 ELSE 0 END FROM transaction WHERE tid = :1`, plan[1].text)
	require.Equal(t, []any{int64(77)}, plan[1].args)
	require.Contains(t, plan[2].text, `SELECT u.zoid, c.tid, cs.md5, u.md5, u.prev_tid, p.state`)
	require.Contains(t, plan[2].text, `LEFT JOIN object_state p ON p.zoid = u.zoid AND p.tid = u.prev_tid`)
	require.Contains(t, plan[2].text, `WHERE u.tid = :1`)
	require.Equal(t, []any{int64(77)}, plan[2].args)
}

func TestOIDsComeFromZoidSeq(t *testing.T) {
	require.Equal(t, `SELECT zoid_seq.NEXTVAL FROM DUAL`, sqlNextOID)
	require.Empty(t, setMinOID(10, 10), "the sequence is already there")
	require.Empty(t, setMinOID(11, 10))
	s := setMinOID(4, 10)
	require.Equal(t, []string{
		`ALTER SEQUENCE zoid_seq INCREMENT BY 6`, `SELECT zoid_seq.NEXTVAL FROM DUAL`, `ALTER SEQUENCE zoid_seq INCREMENT BY 1`,
	}, []string{s[0].text, s[1].text, s[2].text}, "the next value taken is 10; later ones are above")

	size := newQueries(true, 30).size()
	require.Contains(t, size.text, `SELECT COUNT(*) FROM current_object`)
	require.Contains(t, size.text, `FROM user_segments`)
	require.Equal(t, []any{"CURRENT_OBJECT"}, size.args)
}

func TestTwophaseUsesDBMSXA(t *testing.T) {
	x := xid{gtrid: []byte("0123456789abcdef")}
	start := xaStart(x)
	require.Contains(t, start.text, "x DBMS_XA_XID := DBMS_XA_XID(:1, :2, :3);")
	require.Contains(t, start.text, "rc := DBMS_XA.XA_START(x, DBMS_XA.TMNOFLAGS);")
	require.Contains(t, start.text, "IF rc <> DBMS_XA.XA_OK THEN")
	require.Contains(t, start.text, "RAISE_APPLICATION_ERROR(-20100, 'DBMS_XA.XA_START failed with ' || rc);")
	require.Equal(t, []any{int64(xidFormat), []byte("0123456789abcdef"), []byte("0")}, start.args)

	var readOnly int64
	prep := xaPrepare(x, &readOnly)
	require.Less(t, strings.Index(prep.text, "XA_END(x, DBMS_XA.TMSUCCESS)"), strings.Index(prep.text, "XA_PREPARE(x)"))
	require.Contains(t, prep.text, "IF rc <> DBMS_XA.XA_OK AND rc <> DBMS_XA.XA_RDONLY THEN")
	require.Contains(t, prep.text, ":4 := CASE WHEN rc = DBMS_XA.XA_RDONLY THEN 1 ELSE 0 END;")
	require.Equal(t, sql.Out{Dest: &readOnly}, prep.args[3])
	require.Contains(t, xaCommit(x).text, "rc := DBMS_XA.XA_COMMIT(x, FALSE);")
	rb := xaRollback(x).text
	require.Contains(t, rb, "DBMS_XA.XA_ROLLBACK(x)")
	require.NotContains(t, rb, "RAISE_APPLICATION_ERROR", "a branch already gone is not an error")
}

// The schema objects are RelStorage 4.x's for Oracle, in its creation order.
func TestSchemaIsRelStorages(t *testing.T) {
	names := func(keep bool) []string {
		var out []string
		for _, o := range objectsFor(keep) {
			out = append(out, o.name)
		}
		return out
	}
	require.Equal(t, []string{"commit_row_lock", "pack_lock", "transaction", "object_state", "blob_chunk",
		"current_object", "object_ref", "object_refs_added", "pack_object", "pack_state", "pack_state_tid",
		"temp_store", "temp_blob_chunk", "temp_pack_visit", "temp_undo", "zoid_seq", "current_object_state",
		"relstorage_op"}, names(true))
	require.Equal(t, []string{"commit_row_lock", "pack_lock", "object_state", "blob_chunk", "object_ref",
		"object_refs_added", "pack_object", "temp_store", "temp_blob_chunk", "temp_pack_visit", "zoid_seq",
		"relstorage_op"}, names(false))

	for _, keep := range []bool{true, false} {
		for _, o := range objectsFor(keep) {
			for _, s := range o.ddl {
				if o.kind == "package" {
					require.True(t, strings.HasSuffix(s, "END relstorage_op;"), "PL/SQL keeps its final semicolon")
					continue
				}
				require.False(t, strings.HasSuffix(strings.TrimSpace(s), ";"), "SQL sent through OCI has no semicolon: %s", s)
			}
		}
	}
	hp := objectsFor(true)
	require.Contains(t, hp[3].ddl[0], "tid         NUMBER(20) NOT NULL REFERENCES transaction")
	require.Contains(t, hp[3].ddl[0], "state       BLOB")
	require.Contains(t, hp[2].ddl[0], "packed      CHAR DEFAULT 'N' CHECK (packed IN ('N', 'Y'))")
	require.Contains(t, hp[11].ddl[0], "CREATE GLOBAL TEMPORARY TABLE temp_store")

	pkg := opPackage(true)
	require.Len(t, pkg, 2)
	require.Contains(t, pkg[0], "TYPE statelist IS TABLE OF RAW(2000) INDEX BY BINARY_INTEGER;")
	require.Contains(t, pkg[0], "PROCEDURE store_temp(zoids IN numlist, prev_tids IN numlist, md5s IN md5list, states IN statelist);")
	require.Contains(t, pkg[0], "PROCEDURE restore(zoids IN numlist, tids IN numlist, md5s IN md5list, states IN statelist);")
	require.Contains(t, pkg[1], "/* Version: 1.5A", "RelStorage reads the version from the package body")
	require.Contains(t, opPackage(false)[0], "PROCEDURE restore(zoids IN numlist, tids IN numlist, states IN statelist);")

	rows := initRows(true)
	require.Contains(t, rows[0], "INSERT INTO commit_row_lock (tid)\n\t\tSELECT 0 FROM DUAL WHERE NOT EXISTS")
	require.Contains(t, rows[1], "UTL_RAW.CAST_TO_RAW('special transaction for object creation')")
	require.Len(t, initRows(false), 1)

	have := map[string]bool{}
	require.Contains(t, missingObjects(true, have), "current_object")
	for _, o := range objectsFor(false) {
		have[o.kind+" "+o.name] = true
	}
	delete(have, "package relstorage_op")
	require.Empty(t, missingObjects(false, have), "RelStorage's package is not needed by GoRelStorage")
	d := &dialect{describe: "oracle:test", settings: adapter.Settings{KeepHistory: true}}
	require.ErrorContains(t, d.checkMode(have), "is history-free but keep-history is true")
	require.ErrorIs(t, d.checkMode(have), adapter.ErrBadConfig)
}

func TestOpenOptionsReachGodror(t *testing.T) {
	p := Options{User: "zodb", Password: "pw", DSN: "db:1521/X"}.params()
	require.Equal(t, "zodb", p.Username)
	require.Equal(t, "pw", p.Password.Secret())
	require.Equal(t, "db:1521/X", p.ConnectString)
	require.True(t, p.StandaloneConnection, "database/sql pools the sessions")
	require.Equal(t, time.UTC, p.Timezone)
	require.NotContains(t, p.String(), "pw\"", "godror's own rendering hides the password")
	require.True(t, errors.Is(adapter.ConfigError("x"), adapter.ErrBadConfig))
}

// replica-conf's lines are data source names; without client libraries the
// open tries each and says what to install. A line carrying credentials is
// refused without repeating them.
func TestReplicaConfListsDataSourceNames(t *testing.T) {
	if os.Getenv("GORELSTORAGE_ORACLE_DSN") != "" {
		t.Skip("GORELSTORAGE_ORACLE_DSN is set: this machine has Oracle's client libraries")
	}
	path := filepath.Join(t.TempDir(), "replicas")
	descriptor := "(DESCRIPTION=(ADDRESS=(PROTOCOL=TCP)(HOST=standby)(PORT=1521))(CONNECT_DATA=(SERVICE_NAME=ZODB)))"
	require.NoError(t, os.WriteFile(path, []byte("# the primary first\nprimary.example.com:1521/ZODB\n"+descriptor+"\n"), 0o644))
	opts := `{"dsn": "unused:1521/X", "user": "zodb", "password": "s3cret"}`
	_, err := Open(context.Background(), adapter.Settings{KeepHistory: true, CreateSchema: true,
		ReplicaConf: path, Options: []byte(opts)})
	require.ErrorIs(t, err, adapter.ErrBadConfig)
	require.Contains(t, err.Error(), "Oracle client libraries not found")
	require.Contains(t, err.Error(), "oracle:replica-conf="+path+" user=zodb")
	require.Contains(t, err.Error(), "primary.example.com:1521/ZODB: ")
	require.Contains(t, err.Error(), descriptor+": ", "the next entry was tried")
	require.NotContains(t, err.Error(), "s3cret")

	require.NoError(t, os.WriteFile(path, []byte("zodb/s3cret@db:1521/X\n"), 0o644))
	_, err = Open(context.Background(), adapter.Settings{ROReplicaConf: path, Options: []byte(opts)})
	require.ErrorIs(t, err, adapter.ErrBadConfig)
	require.Contains(t, err.Error(), "line 1: the data source name carries credentials")
	require.NotContains(t, err.Error(), "s3cret")
}
