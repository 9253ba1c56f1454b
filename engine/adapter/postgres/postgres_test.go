package postgres

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

func TestPasswordIsFoundAndScrubbed(t *testing.T) {
	for dsn, want := range map[string]string{
		"host=h password=s3cret dbname=x":   "s3cret",
		"host=h password='s3 cret' user=u":  "s3 cret",
		"postgres://user:s3cret@host:5/db":  "s3cret",
		"postgresql://user:p%40ss@host/db?": "p%40ss",
		"host=h dbname=x":                   "",
	} {
		require.Equal(t, want, passwordOf(dsn), dsn)
	}
	err := adapter.Scrub(errors.New(`cannot parse "host=h password=s3cret port=x"`), "s3cret")
	require.NotContains(t, err.Error(), "s3cret")
	require.Contains(t, err.Error(), "***")
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
