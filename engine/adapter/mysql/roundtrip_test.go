package mysql

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"strconv"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	"github.com/gorelstorage/gorelstorage/engine/adapter"
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
	raw := os.Getenv("GORELSTORAGE_MYSQL_URI")
	if raw == "" {
		t.Skip("GORELSTORAGE_MYSQL_URI is not set: no MySQL/MariaDB server to test against (scripts/test starts one)")
	}
	u, err := url.Parse(raw)
	require.NoError(t, err)
	pw, _ := u.User.Password()
	port, _ := strconv.Atoi(u.Port())
	return Options{Host: u.Hostname(), Port: port, User: u.User.Username(), Passwd: pw, DB: "gorelstorage2"}
}

// zap drops and recreates the database.
func zap(t *testing.T, o Options) {
	cfg, err := config(Options{Host: o.Host, Port: o.Port, User: o.User, Passwd: o.Passwd, DB: "mysql"})
	require.NoError(t, err)
	db, err := sql.Open("mysql", cfg.FormatDSN())
	require.NoError(t, err)
	defer db.Close()
	_, err = db.Exec("DROP DATABASE IF EXISTS " + o.DB + "; CREATE DATABASE " + o.DB)
	require.NoError(t, err)
}

// counted returns how many round trips fn took.
func counted(fn func()) int64 {
	before := roundTrips.Load()
	fn()
	return roundTrips.Load() - before
}

// TestRoundTrips counts what the server sees: a commit takes 3 round trips
// whatever its size, a poll 1, a load 1, ending a snapshot 1, 16 OIDs 1.
func TestRoundTrips(t *testing.T) {
	opts := testOptions(t)
	ctx := context.Background()
	for _, hp := range []bool{true, false} {
		t.Run(map[bool]string{true: "hp", false: "hf"}[hp], func(t *testing.T) {
			zap(t, opts)
			raw, _ := json.Marshal(opts)
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions, o.KeepHistory = "mysql-counting", raw, hp
			s, err := engine.Open(ctx, o)
			require.NoError(t, err)
			defer s.Close()
			in, err := s.NewInstance()
			require.NoError(t, err)
			defer in.Release()

			serials := map[uint64]uint64{}
			commit := func(oids []uint64, readCurrent ...uint64) {
				require.NoError(t, in.Begin(engine.TxnMeta{User: []byte("u")}, 0, false))
				for _, oid := range readCurrent {
					require.NoError(t, in.CheckCurrent(oid, serials[oid]))
				}
				for _, oid := range oids {
					require.NoError(t, in.Store(oid, serials[oid], []byte(fmt.Sprintf("state of %d", oid))))
				}
				conflicts, err := in.Vote(ctx)
				require.NoError(t, err)
				require.Empty(t, conflicts)
				tid, err := in.FinishLock(ctx)
				require.NoError(t, err)
				require.NoError(t, in.FinishCommit(ctx))
				for _, oid := range oids {
					serials[oid] = tid
				}
			}
			newOIDs := func(n int) []uint64 {
				out := make([]uint64, n)
				for i := range out {
					out[i], err = s.NewOID(ctx)
					require.NoError(t, err)
				}
				return out
			}
			_, _, err = in.Poll(ctx)
			require.NoError(t, err)
			// Warm up: the first use of each pool connects.
			warm := newOIDs(2)
			commit(warm)
			commit(warm)

			for _, n := range []int{1, 10, 100, 1000} {
				oids := newOIDs(n)
				require.Equal(t, int64(3), counted(func() { commit(oids) }), "commit of %d new objects", n)
				require.Equal(t, int64(3), counted(func() { commit(oids) }), "commit of %d changed objects", n)
				require.Equal(t, int64(3), counted(func() { commit(oids[:1], warm...) }),
					"commit of 1 object with %d readCurrent", len(warm))
			}

			// Another instance's view: poll, load, end.
			other, err := s.NewInstance()
			require.NoError(t, err)
			defer other.Release()
			_, _, err = other.Poll(ctx)
			require.NoError(t, err)
			other.Sync()
			commit(warm)
			require.Equal(t, int64(1), counted(func() {
				changed, all, err := other.Poll(ctx)
				require.NoError(t, err)
				require.False(t, all)
				require.ElementsMatch(t, warm, changed)
			}), "poll")
			require.Equal(t, int64(1), counted(func() {
				_, _, err := other.Load(ctx, warm[1])
				require.NoError(t, err)
			}), "load")
			require.Equal(t, int64(1), counted(other.Sync), "end of snapshot")
			// 16 OIDs per round trip.
			require.Equal(t, int64(1), counted(func() { newOIDs(16) }), "new_oid x16")
		})
	}
}
