package mysql

import (
	"context"
	"encoding/json"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/dialecttest"
)

var roundTrips atomic.Int64

func init() {
	adapter.Register("mysql-counting", func(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
		var o Options
		if err := json.Unmarshal(s.Options, &o); err != nil {
			return nil, err
		}
		return open(ctx, s, o, func() { roundTrips.Add(1) })
	})
}

// testOptions names the test server's second database: tests_go, run in
// parallel with this package by go test ./..., uses the first.
func testOptions(t *testing.T) Options {
	srv, ok := dialecttest.MySQL("gorelstorage2")
	if !ok {
		t.Skip("GORELSTORAGE_MYSQL_URI is not set: no MySQL/MariaDB server to test against (scripts/test starts one)")
	}
	return Options{Host: srv.Host, Port: srv.Port, User: srv.User, Passwd: srv.Passwd, DB: srv.DB}
}

// zap drops and recreates the database.
func zap(t *testing.T, o Options) {
	srv := dialecttest.MySQLServer{Host: o.Host, Port: o.Port, User: o.User, Passwd: o.Passwd, DB: o.DB}
	require.NoError(t, srv.Zap())
}

// TestRoundTrips counts what the server sees: a commit of fewer than
// bulkMinRows objects takes 3 round trips, a larger one 3 and one per
// execution of a prepared statement (and, history-preserving, one for the
// transaction's row); a poll 1, a load 1, ending a snapshot 1, 16 OIDs 1.
func TestRoundTrips(t *testing.T) {
	opts := testOptions(t)
	dialecttest.RoundTrips(t, "mysql-counting", opts, func(t *testing.T) { zap(t, opts) }, roundTrips.Load,
		commitRoundTrips, 7)
}

func commitRoundTrips(objects int, hp bool) int64 {
	if objects < bulkMinRows {
		return 3
	}
	execs := int64(0) // power-of-two groups of at most bulkMaxRows rows
	for n := objects; n > 0; {
		group := bulkMaxRows
		for group > n {
			group /= 2
		}
		n -= group
		execs++
	}
	if hp { // the transaction's row, then object_state's and current_object's rows
		return 3 + 1 + 2*execs
	}
	return 3 + execs
}
