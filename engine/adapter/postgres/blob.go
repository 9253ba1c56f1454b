package postgres

import (
	"context"
	"fmt"
	"io"

	"github.com/jackc/pgx/v5"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/blobio"
)

// A blob is one large object, its blob_chunk row (chunk_num 0) holding the
// large object's oid, as RelStorage 3+ stores it; the delete trigger frees
// the large object with the last row naming it. A large object is written
// in the write transaction at vote, before any lock, and rolled back with
// it; Move only adds the rows. Both directions go through lo_put/lo_get in
// blob-chunk-size pieces, so neither side holds a blob whole.

const (
	sqlBlobObjects = `SELECT chunk FROM blob_chunk WHERE zoid = $1 AND tid = $2 ORDER BY chunk_num`
	sqlLOGet       = `SELECT lo_get($1, $2, $3)`
	sqlLOCreate    = `SELECT lo_from_bytea(0, $1)`
	sqlLOPut       = `SELECT lo_put($1, $2, $3)`
	sqlLOUnlink    = `SELECT lo_unlink($1)`
	sqlInsertBlob  = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk) VALUES ($1, $2, 0, $3)`
	sqlDeleteBlob  = `DELETE FROM blob_chunk WHERE zoid = $1 AND tid = $2`
	sqlDeleteBlobs = `DELETE FROM blob_chunk WHERE zoid = $1`
	sqlCopyBlob    = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, $1, chunk_num, chunk FROM blob_chunk WHERE zoid = $2 AND tid = $3`
)

func (d *dialect) chunkSize() int {
	if d.settings.BlobChunkSize > 0 {
		return d.settings.BlobChunkSize
	}
	return blobio.DefaultChunkSize
}

// ReadBlob implements adapter.BlobReader, in the snapshot.
func (c *loadConn) ReadBlob(ctx context.Context, oid, tid uint64, w io.Writer) (bool, error) {
	var objects []uint32
	err := c.query(ctx, sqlBlobObjects, []any{int64(oid), int64(tid)}, func(r pgx.Rows) error {
		var lo uint32
		err := r.Scan(&lo)
		objects = append(objects, lo)
		return err
	})
	if err != nil || len(objects) == 0 {
		return false, err
	}
	size := c.d.chunkSize()
	for _, lo := range objects {
		for offset := int64(0); ; {
			var piece []byte
			err := c.query(ctx, sqlLOGet, []any{lo, offset, size}, func(r pgx.Rows) error { return r.Scan(&piece) })
			if err != nil {
				return false, fmt.Errorf("read large object %d of oid %d: %w", lo, oid, err)
			}
			if _, err := w.Write(piece); err != nil {
				return false, err
			}
			offset += int64(len(piece))
			if len(piece) < size {
				break
			}
		}
	}
	return true, nil
}

// StageBlob implements adapter.BlobStager: the file becomes a large object
// now, inside the write transaction.
func (c *storeConn) StageBlob(ctx context.Context, oid uint64, path string) error {
	if !c.pending && !c.inTxn {
		return fmt.Errorf("postgresql: blob staged outside a write transaction")
	}
	var lo uint32
	err := blobio.EachChunk(path, c.d.chunkSize(), func(num int, chunk []byte) error {
		if num == 0 {
			return c.run(ctx, func(b *pgx.Batch) { b.Queue(sqlLOCreate, chunk) }, func(br pgx.BatchResults) error {
				return br.QueryRow().Scan(&lo)
			})
		}
		offset := int64(num) * int64(c.d.chunkSize())
		return c.run(ctx, func(b *pgx.Batch) { b.Queue(sqlLOPut, lo, offset, chunk) }, func(br pgx.BatchResults) error {
			_, err := br.Exec()
			return err
		})
	})
	if err != nil {
		return fmt.Errorf("store the blob of oid %d: %w", oid, err)
	}
	if c.blobs == nil {
		c.blobs = map[uint64]uint32{}
	}
	if old, ok := c.blobs[oid]; ok { // stored twice in one transaction
		if err := c.run(ctx, func(b *pgx.Batch) { b.Queue(sqlLOUnlink, old) }, func(br pgx.BatchResults) error {
			_, err := br.Exec()
			return err
		}); err != nil {
			return err
		}
	}
	c.blobs[oid] = lo
	return nil
}

// queueBlobs adds the transaction's blob rows to the move, after its states.
func (c *storeConn) queueBlobs(b *pgx.Batch, tid uint64, writes []adapter.Write) error {
	for _, w := range writes {
		switch {
		case w.Blob:
			lo, ok := c.blobs[w.OID]
			if !ok {
				return fmt.Errorf("postgresql: no blob was staged for oid %d", w.OID)
			}
			if c.d.settings.KeepHistory {
				b.Queue(sqlDeleteBlob, int64(w.OID), int64(tid))
			} else {
				b.Queue(sqlDeleteBlobs, int64(w.OID))
			}
			b.Queue(sqlInsertBlob, int64(w.OID), int64(tid), lo)
		case w.BlobFrom != 0:
			b.Queue(sqlCopyBlob, int64(tid), int64(w.OID), int64(w.BlobFrom))
		}
	}
	return nil
}
