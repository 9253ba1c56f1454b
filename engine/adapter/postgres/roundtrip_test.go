package postgres

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"sync/atomic"
	"testing"

	"github.com/jackc/pgx/v5"
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
	dsn := os.Getenv("GORELSTORAGE_PG_DSN")
	if dsn == "" {
		t.Skip("GORELSTORAGE_PG_DSN is not set: no PostgreSQL server to test against (scripts/test starts one)")
	}
	return regexp.MustCompile(`dbname=\S+`).ReplaceAllString(dsn, "dbname=gorelstorage2")
}

func zap(t *testing.T, dsn string) {
	c, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer c.Close(context.Background())
	_, err = c.Exec(context.Background(), `DROP SCHEMA public CASCADE; CREATE SCHEMA public`)
	require.NoError(t, err)
}

// TestRoundTrips counts what the server sees: a commit takes 3 round trips
// whatever its size, a poll 1, a load 1, ending a snapshot 1, 16 OIDs 1.
func TestRoundTrips(t *testing.T) {
	dsn := testDSN(t)
	dialecttest.RoundTrips(t, "postgresql-counting", Options{DSN: dsn}, func(t *testing.T) { zap(t, dsn) }, roundTrips.Load, 7)
}
