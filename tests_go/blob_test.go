package tests_go

import (
	"bytes"
	"crypto/rand"
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
)

// Blobs through the engine's API, on every database x history mode x layout:
// stored blobs read back from a cold cache; undo brings the old blob back; a
// transaction that does not commit leaves no file behind.
func TestBlobsRoundTrip(t *testing.T) {
	eachDatabase(t, func(t *testing.T, o engine.Options) {
		for _, shared := range []bool{false, true} {
			name := map[bool]string{false: "cache", true: "shared"}[shared]
			t.Run(name, func(t *testing.T) {
				dir := t.TempDir()
				o := o
				o.BlobDir, o.SharedBlobDir, o.BlobChunkSize = filepath.Join(dir, "blobs"), shared, 1000
				s := open(t, o)
				in := instance(t, s)
				oid, err := s.NewOID(ctx)
				require.NoError(t, err)
				first, second := make([]byte, 4321), []byte("second")
				rand.Read(first)
				stage := func(data []byte) string {
					f, err := os.CreateTemp(s.BlobTempDir(), "upload-")
					require.NoError(t, err)
					f.Write(data)
					f.Close()
					return f.Name()
				}
				commitBlob := func(serial uint64, data []byte) uint64 {
					require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
					require.NoError(t, in.StoreBlob(oid, serial, []byte("record"), stage(data)))
					_, err := in.Vote(ctx)
					require.NoError(t, err)
					tid, err := in.FinishLock(ctx)
					require.NoError(t, err)
					require.NoError(t, in.FinishCommit(ctx))
					return tid
				}
				tid1 := commitBlob(0, first)
				tid2 := commitBlob(tid1, second)

				// An aborted transaction leaves nothing in tmp.
				require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
				require.NoError(t, in.StoreBlob(oid, tid2, []byte("record"), stage([]byte("never"))))
				in.Abort()
				entries, err := os.ReadDir(s.BlobTempDir())
				require.NoError(t, err)
				require.Empty(t, entries)

				if !shared {
					o.BlobDir = filepath.Join(dir, "cold")
				}
				cold := open(t, o)
				reader := instance(t, cold)
				read := func(tid uint64) []byte {
					path, err := reader.LoadBlob(ctx, oid, tid)
					require.NoError(t, err)
					data, err := os.ReadFile(path)
					require.NoError(t, err)
					return data
				}
				require.Equal(t, second, read(tid2))
				if o.KeepHistory {
					require.True(t, bytes.Equal(first, read(tid1)))
					_, err := reader.Undo(ctx, tid2)
					require.Error(t, err, "undo outside a transaction")
					require.NoError(t, in.Begin(engine.TxnMeta{}, 0, false))
					_, err = in.Undo(ctx, tid2)
					require.NoError(t, err)
					_, err = in.Vote(ctx)
					require.NoError(t, err)
					tid3, err := in.FinishLock(ctx)
					require.NoError(t, err)
					require.NoError(t, in.FinishCommit(ctx))
					require.True(t, bytes.Equal(first, read(tid3)), "undo brings the first blob back")
				}
				_, err = reader.LoadBlob(ctx, oid, 12345)
				require.Equal(t, engine.KindPOSKey, engine.KindOf(err))
			})
		}
	})
}
