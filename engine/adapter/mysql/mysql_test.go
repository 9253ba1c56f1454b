package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/go-sql-driver/mysql"
	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

func TestServerVersionsAndTheirSyntax(t *testing.T) {
	maria, err := parseServer("10.11.6-MariaDB-0+deb12u1")
	require.NoError(t, err)
	require.True(t, maria.mariaDB)
	require.Equal(t, "LOCK IN SHARE MODE NOWAIT", maria.shareNowait())
	require.Equal(t, "VALUES(tid)", maria.newValue("tid"))
	require.Equal(t, "", maria.rowAlias())
	require.True(t, maria.insertReturning())
	maria104, err := parseServer("10.4.34-MariaDB")
	require.NoError(t, err)
	require.False(t, maria104.insertReturning(), "RETURNING came in MariaDB 10.5")

	my8, err := parseServer("8.0.36")
	require.NoError(t, err)
	require.Equal(t, "FOR SHARE NOWAIT", my8.shareNowait())
	require.Equal(t, "new.tid", my8.newValue("tid"))
	require.Equal(t, " AS new", my8.rowAlias())
	require.False(t, my8.insertReturning())

	my80, err := parseServer("8.0.18-log")
	require.NoError(t, err)
	require.Equal(t, "VALUES(tid)", my80.newValue("tid"), "row aliases came in 8.0.19")

	_, err = parseServer("5.7.44")
	require.ErrorContains(t, err, "MySQL 5.7.44 is too old")
	_, err = parseServer("10.2.44-MariaDB")
	require.ErrorContains(t, err, "MariaDB 10.2.44-MariaDB is too old")
	_, err = parseServer("banana")
	require.ErrorContains(t, err, `cannot read the server version "banana"`)
}

func TestLiteralLengthBoundsTheEscapedState(t *testing.T) {
	require.Equal(t, 4, literalLen(nil))
	require.Equal(t, len("_binary'abc'"), literalLen([]byte("abc")))
	require.Equal(t, len(`_binary'\0\'\"\\\n\r\Z'`), literalLen([]byte("\x00'\"\\\n\r\x1a")))
}

// The writes of a commit too large for one query are split into queries
// that each fit, every state in one piece, in order.
func TestBatcherSplitsRowsIntoQueriesThatFit(t *testing.T) {
	b := &batcher{limit: 10000}
	b.statement("INSERT INTO transaction VALUES (?)", int64(1))
	ins := b.rows("INSERT INTO t (a, b) VALUES ", " ON DUPLICATE KEY UPDATE b = VALUES(b)")
	for i := range 30 {
		ins.row("(?, ?)", int64(i), bytes.Repeat([]byte{'x'}, 500))
	}
	ins.end()
	scripts := b.done()
	require.Greater(t, len(scripts), 2)
	rows := 0
	for _, s := range scripts {
		require.LessOrEqual(t, s.size, 10000)
		text := s.text.String()
		for _, stmt := range strings.Split(text, ";\n") {
			for range strings.Count(stmt, ", X'78") {
				require.Contains(t, stmt, fmt.Sprintf("(%d, X'78", rows), "rows in order")
				rows++
			}
		}
		require.Equal(t, strings.Count(text, "?"), len(s.args))
		for _, stmt := range strings.Split(text, ";\n") {
			if strings.HasPrefix(stmt, "INSERT INTO t ") {
				require.True(t, strings.HasSuffix(stmt, " ON DUPLICATE KEY UPDATE b = VALUES(b)"), stmt)
			}
		}
	}
	require.Equal(t, 30, rows)
	require.True(t, strings.HasPrefix(scripts[0].text.String(), "INSERT INTO transaction"))
}

func TestOptionFileGivesDefaultsTheKeysOverride(t *testing.T) {
	dir := t.TempDir()
	inc := filepath.Join(dir, "more.cnf")
	require.NoError(t, os.WriteFile(inc, []byte("[zodb]\nport = 3310\n"), 0o600))
	path := filepath.Join(dir, "my.cnf")
	require.NoError(t, os.WriteFile(path, []byte(`# comment
[client]
host = db.example.com
user = "fromfile"
password = 's3cret'
[mysqld]
port = 9999
[zodb]
database = zodb
connect-timeout = 7
!include `+inc+"\n"), 0o600))
	o, err := config(Options{ReadDefaultFile: path, ReadDefaultGroup: "zodb", User: "given"})
	require.NoError(t, err)
	require.Equal(t, "given", o.User)
	require.Equal(t, "s3cret", o.Passwd)
	require.Equal(t, "zodb", o.DBName)
	require.Equal(t, "db.example.com:3310", o.Addr)
	require.Equal(t, "7s", o.Timeout.String())

	_, err = config(Options{ReadDefaultFile: filepath.Join(dir, "missing.cnf")})
	require.ErrorContains(t, err, "missing.cnf")
}

func TestBadOptionsAreRefusedByName(t *testing.T) {
	_, err := config(Options{})
	require.ErrorContains(t, err, "no database given (db)")
	_, err = config(Options{DB: "x", Port: 70000})
	require.ErrorContains(t, err, "port 70000 is out of range")
	_, err = config(Options{DB: "x", Driver: "oracle"})
	require.ErrorContains(t, err, `mysql driver "oracle" is not available`)
	_, err = Open(context.Background(), adapter.Settings{Options: json.RawMessage(`{"db": "x", "colour": "red"}`)})
	require.ErrorContains(t, err, `unknown field "colour"`)
}

// openStorage empties the test database and opens a storage on it with one
// instance, polled; both close when the test ends.
func openStorage(t *testing.T, opts Options) (*engine.Storage, *engine.Instance) {
	zap(t, opts)
	raw, err := json.Marshal(opts)
	require.NoError(t, err)
	o := engine.DefaultOptions()
	o.Adapter, o.AdapterOptions, o.CommitLockTimeout = "mysql", raw, 20
	s, err := engine.Open(context.Background(), o)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	in, err := s.NewInstance()
	require.NoError(t, err)
	t.Cleanup(in.Release)
	_, _, err = in.Poll(context.Background())
	require.NoError(t, err)
	return s, in
}

// Commits larger than max_allowed_packet are split over several queries and
// still land whole; states full of bytes that need escaping round-trip.
func TestLargeCommitsAreSplitAndLandWhole(t *testing.T) {
	ctx := context.Background()
	s, in := openStorage(t, testOptions(t))

	nasty := bytes.Repeat([]byte("\x00'\"\\\n\r\x1az"), 1<<17) // 1 MiB, 7/8 of it escaped
	states := map[uint64][]byte{}
	require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
	for range 40 { // 40 MiB, escaped about 75 MiB: several queries at the default 16 MiB
		oid, err := s.NewOID(ctx)
		require.NoError(t, err)
		st := append([]byte{byte(oid)}, nasty...)
		states[oid] = st
		require.NoError(t, in.Store(oid, 0, st))
	}
	_, err := in.Vote(ctx)
	require.NoError(t, err)
	_, err = in.FinishLock(ctx)
	require.NoError(t, err)
	require.NoError(t, in.FinishCommit(ctx))

	requireStates(t, s, states)
}

// requireStates checks, from a new instance, that each oid's state is the one given.
func requireStates(t *testing.T, s *engine.Storage, states map[uint64][]byte) {
	ctx := context.Background()
	reader, err := s.NewInstance()
	require.NoError(t, err)
	defer reader.Release()
	_, _, err = reader.Poll(ctx)
	require.NoError(t, err)
	for oid, want := range states {
		got, _, err := reader.Load(ctx, oid)
		require.NoError(t, err)
		require.True(t, bytes.Equal(want, got), "oid %d", oid)
	}
}

// When InnoDB breaks a deadlock by rolling back our vote, the vote fails
// with a conflict error (retryable), and the next attempt commits.
func TestDeadlockVictimGetsARetryableConflict(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	s, in := openStorage(t, opts)
	a, err := s.NewOID(ctx)
	require.NoError(t, err)
	b := a + 1
	// commit votes and takes the commit lock; the caller commits.
	commit := func(serialA, serialB uint64) error {
		require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
		require.NoError(t, in.Store(a, serialA, []byte("a")))
		require.NoError(t, in.Store(b, serialB, []byte("b")))
		if _, err := in.Vote(ctx); err != nil {
			in.Abort()
			return err
		}
		_, err := in.FinishLock(ctx)
		if err != nil {
			in.Abort()
		}
		return err
	}
	err = commit(0, 0)
	require.NoError(t, err)
	require.NoError(t, in.FinishCommit(ctx))
	_, _, err = in.Poll(ctx)
	require.NoError(t, err)
	_, serial, err := in.Load(ctx, a)
	require.NoError(t, err)

	// Another session writes (so InnoDB prefers to keep it), holds b, then wants a.
	cfg, err := config(opts)
	require.NoError(t, err)
	db, err := sql.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	defer db.Close()
	other, err := db.Conn(ctx)
	require.NoError(t, err)
	defer other.Close()
	for _, stmt := range []string{"START TRANSACTION", "INSERT INTO pack_state_tid VALUES (1), (2), (3), (4)",
		"SELECT zoid FROM current_object WHERE zoid = " + strconv.FormatUint(b, 10) + " FOR UPDATE"} {
		_, err := other.ExecContext(ctx, stmt)
		require.NoError(t, err)
	}
	voted := make(chan error, 1)
	go func() { voted <- commit(serial, serial) }()
	// Wait until our vote holds a and waits for b: the only lock wait on this table.
	table := "`" + opts.DB + "`.`current_object`"
	require.Eventually(t, func() bool {
		var waiting int
		err := db.QueryRowContext(ctx, `SELECT COUNT(*) FROM information_schema.innodb_lock_waits w
			JOIN information_schema.innodb_locks l ON l.lock_id = w.requested_lock_id
			WHERE l.lock_table = ?`, table).Scan(&waiting)
		return err == nil && waiting == 1
	}, 10*time.Second, 10*time.Millisecond)
	_, otherErr := other.ExecContext(ctx, "SELECT zoid FROM current_object WHERE zoid = "+strconv.FormatUint(a, 10)+" FOR UPDATE")
	err = <-voted
	require.NoError(t, otherErr, "InnoDB rolled back the other session instead of ours")
	require.Error(t, err)
	require.Equal(t, engine.KindConflict, engine.KindOf(err), "%v", err)
	require.ErrorContains(t, err, "Deadlock")
	_, err = other.ExecContext(ctx, "ROLLBACK")
	require.NoError(t, err)

	require.NoError(t, commit(serial, serial))
	require.NoError(t, in.FinishCommit(ctx))
}

// OIDs taken many blocks at a time by several processes (each its own
// dialect and connection pool; with INSERT ... RETURNING and without) and
// one block at a time by RelStorage's statement never overlap, and each
// block is whole.
func TestConcurrentOIDAllocatorsNeverShareAnOID(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	openStorage(t, opts) // creates the schema
	raw, err := json.Marshal(opts)
	require.NoError(t, err)
	cfg, err := config(opts)
	require.NoError(t, err)
	relstorage, err := sql.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	defer relstorage.Close()

	const workers, rounds = 3, 20
	got := make(chan []uint64, workers*rounds+rounds)
	errs := make(chan error, workers+1)
	for w := range workers {
		go func() {
			d, err := Open(ctx, adapter.Settings{Options: raw, KeepHistory: true})
			if err != nil {
				errs <- err
				return
			}
			defer d.Close()
			if w%2 == 1 {
				// As on MySQL 8 or MariaDB 10.4, which have no INSERT ... RETURNING.
				d.(*dialect).server.v = [3]int{10, 4, 0}
			}
			for r := range rounds {
				oids, err := d.NewOIDs(ctx, 1+(w+r)%64)
				if err != nil {
					errs <- err
					return
				}
				got <- oids
			}
			errs <- nil
		}()
	}
	go func() {
		for range rounds {
			res, err := relstorage.ExecContext(ctx, "INSERT INTO new_oid VALUES ()")
			if err != nil {
				errs <- err
				return
			}
			n, err := res.LastInsertId()
			if err != nil {
				errs <- err
				return
			}
			got <- schema.OIDBlock(uint64(n))
		}
		errs <- nil
	}()
	for range workers + 1 {
		require.NoError(t, <-errs)
	}
	close(got)
	seen := map[uint64]bool{}
	total := 0
	for oids := range got {
		require.Zero(t, len(oids)%16)
		for i, oid := range oids {
			require.NotZero(t, oid)
			require.False(t, seen[oid], "oid %d handed out twice", oid)
			seen[oid] = true
			if i%16 != 0 {
				require.Equal(t, oids[i-1]+1, oid, "a block of 16 is consecutive")
			}
		}
		total += len(oids)
	}
	require.Equal(t, total, len(seen))
}

// Parameters are written into the text as literals, counted at their
// written length; large states and odd strings stay the driver's.
func TestParametersWrittenAsLiterals(t *testing.T) {
	text, args := appendQuery(nil, "(?, ?, ?, ?, ?, ?, ?)", []any{int64(-7), 3, true, false, nil, []byte("\x00'z"), []byte(nil)})
	require.Equal(t, "(-7, 3, 1, 0, NULL, X'00277a', NULL)", string(text))
	require.Empty(t, args)
	text, args = appendQuery(nil, "(?)", []any{[]byte{}})
	require.Equal(t, "(X'')", string(text), "an empty state is an empty literal, not NULL")
	require.Empty(t, args)
	text, args = appendQuery(nil, "(?, ?)", []any{"0123abcdef", "it's"})
	require.Equal(t, "('0123abcdef', ?)", string(text))
	require.Equal(t, []any{"it's"}, args)
	big := bytes.Repeat([]byte{'x'}, literalMax+1)
	small := big[:literalMax]
	text, args = appendQuery(nil, "(?, ?)", []any{big, int64(1)})
	require.Equal(t, "(?, 1)", string(text))
	require.Equal(t, []any{big}, args)
	require.Equal(t, literalLen(big), paramLen(big))
	require.Equal(t, 2*500+3, paramLen(make([]byte, 500)))

	b := &batcher{limit: 10000}
	ins := b.rows("INSERT INTO t (a, b) VALUES ", "")
	for i := range 30 {
		ins.row("(?, ?)", int64(i), small)
	}
	ins.row("(?, ?)", int64(30), big[:100])
	ins.end()
	rows := 0
	for _, s := range b.done() {
		require.LessOrEqual(t, s.size, 10000)
		require.Equal(t, s.text.Len(), s.size, "nothing left for the driver")
		rows += strings.Count(s.text.String(), "X'78")
	}
	require.Equal(t, 31, rows)
}

// A large commit's rows go as executions of prepared statements of a power
// of two of rows, largest first, in order, each within the byte limit; the
// next statement starts a text script after them.
func TestBulkGroupsRowsInPowersOfTwo(t *testing.T) {
	require.False(t, bulkWrites(bulkMinRows-1, bulkMinBytes-1))
	require.True(t, bulkWrites(bulkMinRows, 0))
	require.True(t, bulkWrites(1, bulkMinBytes))

	b := &batcher{limit: 1 << 20}
	b.statement("INSERT INTO transaction VALUES (?)", int64(1))
	rows := make([][]any, 100)
	for i := range rows {
		rows[i] = []any{int64(i), []byte("s")}
	}
	b.bulk("INSERT INTO t (a, b) VALUES ", "(?, ?)", " ON DUPLICATE KEY UPDATE b = VALUES(b)", rows)
	b.statement("DELETE FROM t WHERE a = ?", int64(7))
	scripts := b.done()
	require.Len(t, scripts, 5)
	require.Empty(t, scripts[0].prepared)
	next := int64(0)
	for i, n := range []int{64, 32, 4} {
		s := scripts[1+i]
		require.Equal(t, n, strings.Count(s.prepared, "(?, ?)"))
		require.True(t, strings.HasSuffix(s.prepared, "(?, ?) ON DUPLICATE KEY UPDATE b = VALUES(b)"))
		require.Len(t, s.args, 2*n)
		for k := 0; k < len(s.args); k += 2 {
			require.Equal(t, next, s.args[k], "rows in order")
			next++
		}
	}
	require.Equal(t, "DELETE FROM t WHERE a = 7", scripts[4].text.String())

	b = &batcher{limit: 2500}
	big := make([][]any, 5)
	for i := range big {
		big[i] = []any{int64(i), make([]byte, 1000)}
	}
	b.bulk("INSERT INTO t (a, b) VALUES ", "(?, ?)", "", big)
	var groups []int
	for _, s := range b.done() {
		groups = append(groups, strings.Count(s.prepared, "(?, ?)"))
	}
	require.Equal(t, []int{2, 2, 1}, groups, "no execution over the limit")
}

// A server that prepares no more statements (max_prepared_stmt_count
// reached) still takes a large commit: the rows go as text instead.
func TestBulkWritesWhenTheServerPreparesNothing(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	s, in := openStorage(t, opts)
	admin := adminDB(t, opts)
	var was int64
	require.NoError(t, admin.QueryRow("SELECT @@global.max_prepared_stmt_count").Scan(&was))
	if _, err := admin.Exec("SET GLOBAL max_prepared_stmt_count = 0"); err != nil {
		t.Skipf("cannot set max_prepared_stmt_count: %v", err)
	}
	defer func() { // text, not a prepared statement: none can be prepared now
		_, err := admin.Exec(fmt.Sprintf("SET GLOBAL max_prepared_stmt_count = %d", was))
		require.NoError(t, err)
	}()

	states := map[uint64][]byte{}
	require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
	for i := range 3 * bulkMinRows {
		oid, err := s.NewOID(ctx)
		require.NoError(t, err)
		states[oid] = []byte(fmt.Sprintf("state %d \x00'\\", i))
		require.NoError(t, in.Store(oid, 0, states[oid]))
	}
	_, err := in.Vote(ctx)
	require.NoError(t, err)
	_, err = in.FinishLock(ctx)
	require.NoError(t, err)
	require.NoError(t, in.FinishCommit(ctx))

	s.ClearCache()
	requireStates(t, s, states)
}

// freshHP is a dialect on the emptied test database, history-preserving,
// closed at the test's end.
func freshHP(t *testing.T, opts Options) *dialect {
	zap(t, opts)
	d, err := open(context.Background(), adapter.Settings{KeepHistory: true, CreateSchema: true, LockTimeout: 10 * time.Second}, opts, nil)
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	return d
}

// adminDB is a connection pool to the test server without a database,
// closed at the test's end: for its global settings.
func adminDB(t *testing.T, opts Options) *sql.DB {
	cfg := mysql.NewConfig()
	cfg.User, cfg.Passwd = opts.User, opts.Passwd
	cfg.Net, cfg.Addr = "tcp", fmt.Sprintf("%s:%d", opts.Host, opts.Port)
	admin, err := sql.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	t.Cleanup(func() { admin.Close() })
	return admin
}

// A pack turns InnoDB's foreign key checks off on its write connection
// only: every store connection, the pack's back in the pool among them,
// has them on afterwards.
func TestPackLeavesForeignKeyChecksOn(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := freshHP(t, opts)
	s, err := d.OpenPack(ctx)
	require.NoError(t, err)
	var during int64
	rows, err := s.Write().Query(ctx, "SELECT @@SESSION.foreign_key_checks")
	require.NoError(t, err)
	require.True(t, rows.Next())
	require.NoError(t, rows.Scan(&during))
	rows.Close()
	require.EqualValues(t, 0, during)
	require.NoError(t, s.Close())

	open := d.store.Stats().OpenConnections
	require.Positive(t, open)
	var conns []*sql.Conn // every pooled connection at once
	for range open {
		c, err := d.store.Conn(ctx)
		require.NoError(t, err)
		conns = append(conns, c)
		var on int64
		require.NoError(t, c.QueryRowContext(ctx, "SELECT @@SESSION.foreign_key_checks").Scan(&on))
		require.EqualValues(t, 1, on)
	}
	for _, c := range conns {
		c.Close()
	}
}

// A pack's bulk inserts go as LOAD DATA LOCAL INFILE, every value as it
// was (negative and the largest ones too); a server with local_infile off
// refuses it, which the pack sees as adapter.ErrBulkRefused (its rows then
// go as INSERT statements) with nothing inserted.
func TestPackLoadsRowsAndFallsBackWithoutLocalInfile(t *testing.T) {
	ctx := context.Background()
	opts := testOptions(t)
	d := freshHP(t, opts)
	var rows []int64 // pack_state: tid, zoid
	for i := range int64(5000) {
		rows = append(rows, i*1_000_003-2_000_000_000, i)
	}
	rows = append(rows, math.MaxInt64, math.MinInt64)
	count := func(s adapter.PackSession) (n int64, sum int64) {
		r, err := s.Read().Query(ctx, "SELECT COUNT(*), COALESCE(SUM(tid % 1000), 0) FROM pack_state")
		require.NoError(t, err)
		defer r.Close()
		require.True(t, r.Next())
		require.NoError(t, r.Scan(&n, &sum))
		return n, sum
	}
	load := func(s adapter.PackSession) error {
		require.NoError(t, s.Begin(ctx))
		err := s.Write().(adapter.BulkInserter).InsertInt64s(ctx, "pack_state", []string{"tid", "zoid"}, rows)
		if err != nil {
			s.Rollback(ctx)
			return err
		}
		return s.Commit(ctx)
	}

	s, err := d.OpenPack(ctx)
	require.NoError(t, err)
	require.NoError(t, load(s))
	var want int64
	for i := 0; i < len(rows); i += 2 {
		want += rows[i] % 1000
	}
	n, sum := count(s)
	require.EqualValues(t, len(rows)/2, n)
	require.Equal(t, want, sum)
	_, err = s.Write().Exec(ctx, "DELETE FROM pack_state")
	require.NoError(t, err)
	require.NoError(t, s.Close())

	admin := adminDB(t, opts)
	if _, err := admin.Exec("SET GLOBAL local_infile = 0"); err != nil {
		t.Skipf("cannot set local_infile: %v", err)
	}
	defer func() {
		_, err := admin.Exec("SET GLOBAL local_infile = 1")
		require.NoError(t, err)
	}()
	s, err = d.OpenPack(ctx)
	require.NoError(t, err)
	defer s.Close()
	require.ErrorIs(t, load(s), adapter.ErrBulkRefused)
	require.True(t, d.noLocalInfile.Load(), "asked once, not again")
	n, _ = count(s)
	require.Zero(t, n)
}

// int64Rows writes LOAD DATA's text: tabs between values, a newline after
// each row, every row whole whatever the reader's buffer.
func TestInt64RowsText(t *testing.T) {
	values := []int64{1, -2, math.MaxInt64, math.MinInt64, 0, 7}
	for _, size := range []int{1, 3, 64, 1 << 16} {
		r := int64Rows(values, 3)
		var out []byte
		buf := make([]byte, size)
		for {
			n, err := r.Read(buf)
			out = append(out, buf[:n]...)
			if err == io.EOF {
				break
			}
			require.NoError(t, err)
		}
		require.Equal(t, "1\t-2\t9223372036854775807\n-9223372036854775808\t0\t7\n", string(out), "buffer of %d", size)
	}
}
