package oracle

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// The blob statements, without a server: a staged blob moves under the
// transaction's tid after the states it refers to, replacing (history-free)
// the object's older chunks; an undo copies the revision's chunks.
func TestBlobStatements(t *testing.T) {
	writes := []adapter.Write{
		{OID: 1, State: []byte("s"), Blob: true},
		{OID: 2, State: []byte("s")},
		{OID: 3, State: []byte("s"), BlobFrom: 77},
	}
	hp := newQueries(true, 10)
	stmts, err := hp.move(99, adapter.TxnInfo{}, writes)
	require.NoError(t, err)
	blobs := stmts[len(stmts)-3:]
	require.Contains(t, blobs[0].text, "DELETE FROM blob_chunk WHERE zoid = :1 AND tid = :2")
	require.Equal(t, []any{int64(1), int64(99)}, blobs[0].args)
	require.Contains(t, blobs[1].text, "FROM temp_blob_chunk WHERE zoid = :2")
	require.Equal(t, []any{int64(99), int64(1)}, blobs[1].args)
	require.Contains(t, blobs[2].text, "FROM blob_chunk WHERE zoid = :2 AND tid = :3")
	require.Equal(t, []any{int64(99), int64(3), int64(77)}, blobs[2].args)
	for _, st := range stmts[:len(stmts)-3] {
		require.NotContains(t, st.text, "blob_chunk", "blob rows before the states they refer to")
	}

	hf := newQueries(false, 10)
	moved := hf.moveBlobs(99, writes[:1])
	require.Equal(t, "DELETE FROM blob_chunk WHERE zoid = :1", moved[0].text)

	read := hf.readBlob(1, 2)
	require.Contains(t, read.text, "ORDER BY chunk_num")
	require.Len(t, read.args, 3, "oid, tid and the option that streams BLOBs")
	stage := hf.stageChunk(1, 4, []byte("chunk"))
	require.Equal(t, []any{int64(1), int64(4)}, stage.args[:2])
}
