package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/blobio"
)

// Blobs are blob_chunk rows of at most blob-chunk-size bytes, numbered from
// 0; RelStorage writes one row per blob here and reads rows in chunk_num
// order, so each reads what the other wrote. SQLite has one writer at a
// time and the write lock is held from vote on, so a staged blob goes into
// blob_chunk at Move, under its tid, with no temporary table.

const (
	sqlReadBlob       = `SELECT chunk FROM blob_chunk WHERE zoid = ? AND tid = ? ORDER BY chunk_num`
	sqlInsertChunk    = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk) VALUES (?, ?, ?, ?)`
	sqlDeleteChunksHP = `DELETE FROM blob_chunk WHERE zoid = ? AND tid = ?`
	sqlDeleteChunksHF = `DELETE FROM blob_chunk WHERE zoid = ?`
	sqlCopyChunks     = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, ?, chunk_num, chunk FROM blob_chunk WHERE zoid = ? AND tid = ?`
)

// ReadBlob implements adapter.BlobReader.
func (c *loadConn) ReadBlob(ctx context.Context, oid, tid uint64, w io.Writer) (bool, error) {
	rows, err := c.query(ctx, sqlReadBlob, int64(oid), int64(tid))
	if err != nil {
		return false, err
	}
	defer rows.Close()
	found := false
	for rows.Next() {
		var chunk sql.RawBytes
		if err := rows.Scan(&chunk); err != nil {
			return false, err
		}
		found = true
		if _, err := w.Write(chunk); err != nil {
			return false, err
		}
	}
	return found, rows.Err()
}

// StageBlobs implements adapter.BlobStager: the files are read at Move.
func (c *storeConn) StageBlobs(ctx context.Context, blobs []adapter.StagedBlob) error {
	if !c.inTxn {
		return fmt.Errorf("sqlite3: blob staged outside a write transaction")
	}
	if c.blobs == nil {
		c.blobs = map[uint64]string{}
	}
	for _, b := range blobs {
		c.blobs[b.OID] = b.Path
	}
	return nil
}

// moveBlobs writes the transaction's blobs under tid, after its states (the
// rows blob_chunk refers to).
func (c *storeConn) moveBlobs(ctx context.Context, tid uint64, writes []adapter.Write) error {
	var insert *sql.Stmt
	defer func() {
		if insert != nil {
			insert.Close()
		}
	}()
	for _, w := range writes {
		switch {
		case w.Blob:
			path, ok := c.blobs[w.OID]
			if !ok {
				return fmt.Errorf("sqlite3: no blob was staged for oid %d", w.OID)
			}
			if err := c.deleteChunks(ctx, w.OID, tid); err != nil {
				return err
			}
			if insert == nil {
				var err error
				if insert, err = c.conn.PrepareContext(ctx, sqlInsertChunk); err != nil {
					return err
				}
			}
			err := blobio.EachChunk(path, c.chunkSize, func(num int, chunk []byte) error {
				_, err := insert.ExecContext(ctx, int64(w.OID), int64(tid), num, chunk)
				c.written += int64(len(chunk))
				return err
			})
			if err != nil {
				return fmt.Errorf("write the blob of oid %d: %w", w.OID, err)
			}
		case w.BlobFrom != 0:
			if _, err := c.conn.ExecContext(ctx, sqlCopyChunks, int64(tid), int64(w.OID), int64(w.BlobFrom)); err != nil {
				return fmt.Errorf("copy the blob of oid %d: %w", w.OID, err)
			}
		}
	}
	return nil
}

// deleteChunks clears what a new blob replaces: the same revision's rows
// (a restore run again), or history-free, the object's older blob.
func (c *storeConn) deleteChunks(ctx context.Context, oid, tid uint64) error {
	var err error
	if c.keepHistory {
		_, err = c.conn.ExecContext(ctx, sqlDeleteChunksHP, int64(oid), int64(tid))
	} else {
		_, err = c.conn.ExecContext(ctx, sqlDeleteChunksHF, int64(oid))
	}
	if err != nil {
		return fmt.Errorf("replace the blob of oid %d: %w", oid, err)
	}
	return nil
}
