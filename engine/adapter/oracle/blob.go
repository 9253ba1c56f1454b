package oracle

import (
	"bytes"
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/godror/godror"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/blobio"
)

// A blob is blob_chunk rows holding BLOBs of at most blob-chunk-size bytes,
// numbered from 0 (RelStorage writes one row and reads every row in
// chunk_num order, so each reads what the other wrote). At vote the file
// goes chunk by chunk into the session's temp_blob_chunk (a global
// temporary table); Move copies the rows under the transaction's tid. BLOBs
// are read as streams (LobAsReader), never whole.

func (q queries) readBlob(oid, tid uint64) stmt {
	return stmt{text: `SELECT chunk FROM blob_chunk WHERE zoid = :1 AND tid = :2 ORDER BY chunk_num`,
		args: []any{int64(oid), int64(tid), godror.LobAsReader()}, rows: -1}
}

func (q queries) clearStagedBlob(oid uint64) stmt {
	return stmt{text: `DELETE FROM temp_blob_chunk WHERE zoid = :1`, args: []any{int64(oid)}, rows: -1}
}

func (q queries) stageChunk(oid uint64, num int, chunk []byte) stmt {
	return stmt{text: `INSERT INTO temp_blob_chunk (zoid, chunk_num, chunk) VALUES (:1, :2, :3)`,
		args: []any{int64(oid), int64(num), godror.Lob{Reader: bytes.NewReader(chunk)}}, rows: 1}
}

// moveBlobs files the transaction's blobs under tid, after its states.
func (q queries) moveBlobs(tid uint64, writes []adapter.Write) []stmt {
	var out []stmt
	for _, w := range writes {
		switch {
		case w.Blob:
			if q.keepHistory {
				out = append(out, stmt{text: `DELETE FROM blob_chunk WHERE zoid = :1 AND tid = :2`,
					args: []any{int64(w.OID), int64(tid)}, rows: -1})
			} else {
				out = append(out, stmt{text: `DELETE FROM blob_chunk WHERE zoid = :1`, args: []any{int64(w.OID)}, rows: -1})
			}
			out = append(out, stmt{text: `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, :1, chunk_num, chunk FROM temp_blob_chunk WHERE zoid = :2`,
				args: []any{int64(tid), int64(w.OID)}, rows: -1})
		case w.BlobFrom != 0:
			out = append(out, stmt{text: `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, :1, chunk_num, chunk FROM blob_chunk WHERE zoid = :2 AND tid = :3`,
				args: []any{int64(tid), int64(w.OID), int64(w.BlobFrom)}, rows: -1})
		}
	}
	return out
}

func (d *dialect) chunkSize() int { return blobio.ChunkSize(d.settings.BlobChunkSize) }

// ReadBlob implements adapter.BlobReader, in the snapshot.
func (c *loadConn) ReadBlob(ctx context.Context, oid, tid uint64, w io.Writer) (bool, error) {
	found := false
	buf := make([]byte, c.d.chunkSize())
	err := c.query(ctx, func(r *sql.Rows) error {
		var chunk any
		if err := r.Scan(&chunk); err != nil {
			return err
		}
		found = true
		switch v := chunk.(type) {
		case io.Reader:
			_, err := io.CopyBuffer(w, v, buf)
			return err
		case []byte:
			_, err := w.Write(v)
			return err
		case nil:
			return nil
		default:
			return fmt.Errorf("oracle: blob chunk of oid %d read as %T", oid, chunk)
		}
	}, c.d.q.readBlob(oid, tid))
	return found, err
}

// StageBlobs implements adapter.BlobStager, a blob at a time.
func (c *storeConn) StageBlobs(ctx context.Context, blobs []adapter.StagedBlob) error {
	if c.tx == nil {
		return fmt.Errorf("oracle: blob staged outside a write transaction")
	}
	for _, b := range blobs {
		if err := c.stageBlob(ctx, b.OID, b.Path); err != nil {
			return err
		}
	}
	return nil
}

func (c *storeConn) stageBlob(ctx context.Context, oid uint64, path string) error {
	if err := c.exec(ctx, c.d.q.clearStagedBlob(oid)); err != nil {
		return c.d.wrap(err)
	}
	err := blobio.EachChunk(path, c.d.chunkSize(), func(num int, chunk []byte) error {
		return c.exec(ctx, c.d.q.stageChunk(oid, num, chunk))
	})
	if err != nil {
		return c.d.wrap(fmt.Errorf("store the blob of oid %d: %w", oid, err))
	}
	return nil
}
