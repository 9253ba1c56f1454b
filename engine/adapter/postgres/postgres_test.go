package postgres

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func TestRedactDSNReplacesOnlyPasswordValues(t *testing.T) {
	for dsn, want := range map[string]string{
		"host=h password=s3cret dbname=x":            "host='h' password='xxxxx' dbname='x'",
		"host = h password = 's3 c\\'ret' user=u":    "host='h' password='xxxxx' user='u'",
		"host=t password=t":                          "host='t' password='xxxxx'",
		"host=127.0.0.1 password=127 sslpassword=12": "host='127.0.0.1' password='xxxxx' sslpassword='xxxxx'",
		"postgres://user:s3cret@host:5/db":           "postgres://user:xxxxx@host:5/db",
		"postgresql://u@h/db?password=ab&sslmode=x":  "postgresql://u@h/db?password=xxxxx&sslmode=x",
		"host=h dbname=x":                            "host='h' dbname='x'",
	} {
		got, err := redactDSN(dsn)
		require.NoError(t, err, dsn)
		require.Equal(t, want, got, dsn)
	}
	for _, dsn := range []string{"host=h password='s3cret", "host=h s3cret"} {
		_, err := redactDSN(dsn)
		require.Error(t, err, dsn)
		require.NotContains(t, err.Error(), "s3cret", dsn)
	}
}

// The error for a DSN pgx refuses is the same whatever the password is, and
// shows everything else as it was written.
func TestDSNErrorsDoNotDependOnThePassword(t *testing.T) {
	for _, form := range []string{
		"host=127.0.0.1 port=notaport password=%s",
		"host=t port=x password='%s'",
		"postgres://u:%s@127.0.0.1:notaport/db",
		"postgres://u@h/db?password=%s&connect_timeout=x",
		"host=h password='%s",
	} {
		first := dsnError(fmt.Sprintf(form, "Zq")).Error()
		for _, pw := range []string{"t", "12", "127"} {
			require.Equal(t, first, dsnError(fmt.Sprintf(form, pw)).Error(), form)
		}
	}
	require.Contains(t, dsnError("host=127.0.0.1 port=notaport password=127").Error(), "127.0.0.1")
}

func TestBadOptionsAreConfigErrors(t *testing.T) {
	ctx := context.Background()
	for raw, want := range map[string]string{
		`{"dsn": "host=h", "driver": "odbc"}`:      `driver "odbc" is not available`,
		`{"dsn": "host=h", "dbname": "x"}`:         "unknown field",
		`{"dsn": "port=notaport password=s3cret"}`: "dsn",
	} {
		_, err := Open(ctx, adapter.Settings{Options: []byte(raw)})
		require.ErrorIs(t, err, adapter.ErrBadConfig, raw)
		require.Contains(t, err.Error(), want, raw)
		require.NotContains(t, err.Error(), "s3cret", raw)
	}
}

func TestQueriesDifferOnlyByMode(t *testing.T) {
	hp, hf := newQueries(true), newQueries(false)
	require.Contains(t, hp.changes, "current_object")
	require.Contains(t, hf.changes, "object_state")
	require.Contains(t, hp.lastTID, "transaction")
	require.Contains(t, hp.lockObjects, "pg_advisory_xact_lock(zoid)")
	require.Contains(t, hf.lockObjects, "ORDER BY zoid")
}
