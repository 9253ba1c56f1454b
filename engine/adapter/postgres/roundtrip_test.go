package postgres

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
	adapter.Register("postgresql-counting", func(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
		var o Options
		if err := json.Unmarshal(s.Options, &o); err != nil {
			return nil, err
		}
		return open(ctx, s, o, func() { roundTrips.Add(1) })
	})
}

// testDSN names the test server's second database: tests_go, run in
// parallel with this package by go test ./..., uses the first.
func testDSN(t *testing.T) string {
	dsn, ok := dialecttest.PostgresDSN("gorelstorage2")
	if !ok {
		t.Skip("GORELSTORAGE_PG_DSN is not set: no PostgreSQL server to test against (scripts/test starts one)")
	}
	return dsn
}

// TestRoundTrips counts what the server sees: a commit takes 3 round trips
// whatever its size, a poll 1, a load 1, ending a snapshot 1, 16 OIDs 1.
func TestRoundTrips(t *testing.T) {
	dsn := testDSN(t)
	dialecttest.RoundTrips(t, "postgresql-counting", Options{DSN: dsn},
		func(t *testing.T) { require.NoError(t, dialecttest.ZapPostgres(dsn)) }, roundTrips.Load,
		func(int, bool) int64 { return 3 }, 7)
}
