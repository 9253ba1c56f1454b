package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"io"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/blobio"
)

// A blob is blob_chunk rows of at most blob-chunk-size bytes (less when
// max_allowed_packet is smaller), numbered from 0, as RelStorage stores
// them. At vote the file goes, chunk by chunk, into a temporary table of the
// store connection, inside the write transaction and before any lock; Move
// copies the rows under the transaction's tid on the server.

const (
	sqlReadBlob       = `SELECT chunk FROM blob_chunk WHERE zoid = ? AND tid = ? ORDER BY chunk_num`
	sqlCreateTempBlob = `CREATE TEMPORARY TABLE IF NOT EXISTS temp_blob_chunk (
		zoid BIGINT UNSIGNED NOT NULL,
		chunk_num BIGINT NOT NULL,
		chunk LONGBLOB NOT NULL,
		PRIMARY KEY (zoid, chunk_num)
	) ENGINE = InnoDB`
	sqlClearTempBlob   = `DELETE FROM temp_blob_chunk WHERE zoid = ?`
	sqlInsertTempChunk = `INSERT INTO temp_blob_chunk (zoid, chunk_num, chunk) VALUES (?, ?, ?)`
	sqlEmptyTempBlobs  = `DELETE FROM temp_blob_chunk`
	sqlDeleteBlobHP    = `DELETE FROM blob_chunk WHERE zoid = ? AND tid = ?`
	sqlDeleteBlobHF    = `DELETE FROM blob_chunk WHERE zoid = ?`
	sqlMoveBlob        = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, ?, chunk_num, chunk FROM temp_blob_chunk WHERE zoid = ? ORDER BY chunk_num`
	sqlCopyBlob = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, ?, chunk_num, chunk FROM blob_chunk WHERE zoid = ? AND tid = ? ORDER BY chunk_num`
)

// chunkSize is blob-chunk-size, made small enough that a chunk's escaped
// literal always fits in one query.
func (d *dialect) chunkSize() int {
	size := d.settings.BlobChunkSize
	if size <= 0 {
		size = blobio.DefaultChunkSize
	}
	return max(1, min(size, (d.maxQuery-rowOverhead-len("_binary''"))/2))
}

// ReadBlob implements adapter.BlobReader, in the snapshot; rows arrive one
// at a time.
func (c *loadConn) ReadBlob(ctx context.Context, oid, tid uint64, w io.Writer) (bool, error) {
	found := false
	err := c.rows(ctx, sqlReadBlob, []any{int64(oid), int64(tid)}, func(r *sql.Rows) error {
		var chunk sql.RawBytes
		if err := r.Scan(&chunk); err != nil {
			return err
		}
		found = true
		_, err := w.Write(chunk)
		return err
	})
	return found, err
}

// StageBlob implements adapter.BlobStager. The chunks go through a
// statement prepared once per transaction: in the binary protocol a chunk
// travels as it is, neither escaped by the client nor parsed by the server.
func (c *storeConn) StageBlob(ctx context.Context, oid uint64, path string) error {
	if !c.pending && !c.inTxn {
		return fmt.Errorf("mysql: blob staged outside a write transaction")
	}
	if err := c.prepareStaging(ctx, oid); err != nil {
		return c.d.wrap(fmt.Errorf("store the blob of oid %d: %w", oid, err))
	}
	err := blobio.EachChunk(path, c.d.chunkSize(), func(num int, chunk []byte) error {
		_, err := c.insertChunk.ExecContext(ctx, int64(oid), num, chunk)
		return err
	})
	if err != nil {
		return c.d.wrap(fmt.Errorf("store the blob of oid %d: %w", oid, err))
	}
	c.staged[oid] = true
	return nil
}

// prepareStaging readies the temporary table and the chunk statement for
// oid. The table is transactional: what a rolled-back transaction staged is
// gone, and Move empties it; only a blob staged twice in one transaction
// has rows to clear.
func (c *storeConn) prepareStaging(ctx context.Context, oid uint64) error {
	s := &script{}
	if c.staged == nil {
		s.add(sqlCreateTempBlob)
		c.staged = map[uint64]bool{}
	}
	if c.staged[oid] {
		s.add(sqlClearTempBlob, int64(oid))
	}
	if !s.empty() || c.pending { // the query also starts the transaction if it has not started
		if s.empty() {
			s.add(`DO 0`)
		}
		if err := c.query(ctx, s, nil); err != nil {
			return err
		}
	}
	if c.insertChunk == nil {
		st, err := c.conn.PrepareContext(ctx, sqlInsertTempChunk)
		if err != nil {
			return err
		}
		c.insertChunk = st
	}
	return nil
}

// endStaging forgets the transaction's staged blobs.
func (c *storeConn) endStaging() {
	if c.insertChunk != nil {
		c.insertChunk.Close()
		c.insertChunk = nil
	}
	c.staged = nil
}

// moveBlobs adds the transaction's blob rows to the move, after its states.
func (c *storeConn) moveBlobs(b *batcher, tid uint64, writes []adapter.Write) {
	for _, w := range writes {
		switch {
		case w.Blob:
			if c.d.settings.KeepHistory {
				b.statement(sqlDeleteBlobHP, int64(w.OID), int64(tid))
			} else {
				b.statement(sqlDeleteBlobHF, int64(w.OID))
			}
			b.statement(sqlMoveBlob, int64(tid), int64(w.OID))
		case w.BlobFrom != 0:
			b.statement(sqlCopyBlob, int64(tid), int64(w.OID), int64(w.BlobFrom))
		}
	}
	if len(c.staged) > 0 {
		b.statement(sqlEmptyTempBlobs)
	}
}
