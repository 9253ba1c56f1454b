package mysql

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/blobio"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlrow"
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
	sqlClearTempBlob    = `DELETE FROM temp_blob_chunk WHERE zoid = ?`
	sqlInsertTempChunk  = `INSERT INTO temp_blob_chunk (zoid, chunk_num, chunk) VALUES (?, ?, ?)`
	sqlInsertTempChunks = `INSERT INTO temp_blob_chunk (zoid, chunk_num, chunk) VALUES `
	sqlEmptyTempBlobs   = `DELETE FROM temp_blob_chunk`
	sqlDeleteBlobsHP    = `DELETE FROM blob_chunk WHERE tid = ? AND zoid IN (`
	sqlDeleteBlobsHF    = `DELETE FROM blob_chunk WHERE zoid IN (`
	sqlMoveBlobs        = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, ?, chunk_num, chunk FROM temp_blob_chunk ORDER BY zoid, chunk_num`
	sqlCopyBlob = `INSERT INTO blob_chunk (zoid, tid, chunk_num, chunk)
		SELECT zoid, ?, chunk_num, chunk FROM blob_chunk WHERE zoid = ? AND tid = ? ORDER BY chunk_num`
)

// chunkSize is blob-chunk-size, made small enough that a chunk's escaped
// literal always fits in one query.
func (d *dialect) chunkSize() int {
	return max(1, min(blobio.ChunkSize(d.settings.BlobChunkSize), (d.maxQuery-rowOverhead-len("_binary''"))/2))
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

// StageBlobs implements adapter.BlobStager, through statements prepared
// once per transaction: in the binary protocol a chunk travels as it is,
// neither escaped by the client nor parsed by the server (the driver sends
// a value too large for one packet on its own). Small files go several per
// statement, up to blob-chunk-size bytes of them; a large one chunk by chunk.
func (c *storeConn) StageBlobs(ctx context.Context, blobs []adapter.StagedBlob) error {
	if !c.pending && !c.inTxn {
		return fmt.Errorf("mysql: blob staged outside a write transaction")
	}
	if err := c.prepareStaging(ctx, blobs); err != nil {
		return c.d.wrap(fmt.Errorf("store blobs: %w", err))
	}
	size := c.d.chunkSize()
	err := blobio.Group(blobs, size, size, func(batch []blobio.Small) error {
		st, err := c.stagingStatement(ctx, len(batch))
		if err != nil {
			return err
		}
		args := make([]any, 0, 2*len(batch))
		for _, b := range batch {
			args = append(args, int64(b.OID), b.Data)
		}
		_, err = st.ExecContext(ctx, args...)
		return err
	}, func(b adapter.StagedBlob) error {
		return blobio.EachChunk(b.Path, size, func(num int, chunk []byte) error {
			_, err := c.insertChunk.ExecContext(ctx, int64(b.OID), num, chunk)
			return err
		})
	})
	if err != nil {
		return c.d.wrap(fmt.Errorf("store blobs: %w", err))
	}
	for _, b := range blobs {
		c.staged[b.OID] = true
	}
	return nil
}

// stagingStatement is the INSERT of n small blobs, prepared once per
// transaction for each n.
func (c *storeConn) stagingStatement(ctx context.Context, n int) (*sql.Stmt, error) {
	if st := c.insertBlobs[n]; st != nil {
		return st, nil
	}
	rows := make([]string, n)
	for i := range rows {
		rows[i] = "(?, 0, ?)"
	}
	st, err := c.conn.PrepareContext(ctx, sqlInsertTempChunks+strings.Join(rows, ", "))
	if err != nil {
		return nil, err
	}
	if c.insertBlobs == nil {
		c.insertBlobs = map[int]*sql.Stmt{}
	}
	c.insertBlobs[n] = st
	return st, nil
}

// prepareStaging readies the temporary table and the chunk statement. The
// table is transactional: what a rolled-back transaction staged is gone, and
// Move empties it; only a blob staged twice in one transaction has rows to
// clear.
func (c *storeConn) prepareStaging(ctx context.Context, blobs []adapter.StagedBlob) error {
	s := &script{}
	if c.staged == nil {
		s.add(sqlCreateTempBlob)
		c.staged = map[uint64]bool{}
	}
	for _, b := range blobs {
		if c.staged[b.OID] {
			s.add(sqlClearTempBlob, int64(b.OID))
		}
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
	for _, st := range c.insertBlobs {
		st.Close()
	}
	c.insertBlobs = nil
	c.staged = nil
}

// moveBlobs adds the transaction's blob rows to the move, after its
// states: the temporary table holds this transaction's blobs only, so one
// statement copies them all.
func (c *storeConn) moveBlobs(b *batcher, tid uint64, writes []adapter.Write) {
	var staged []uint64
	for _, w := range writes {
		switch {
		case w.Blob:
			staged = append(staged, w.OID)
		case w.BlobFrom != 0:
			b.statement(sqlCopyBlob, int64(tid), int64(w.OID), int64(w.BlobFrom))
		}
	}
	if len(staged) == 0 {
		if len(c.staged) > 0 {
			b.statement(sqlEmptyTempBlobs)
		}
		return
	}
	for start := 0; start < len(staged); start += inChunk {
		part := sqlrow.Int64Args(staged[start:min(len(staged), start+inChunk)])
		if c.d.settings.KeepHistory { // a restore run again replaces its rows
			b.statement(sqlDeleteBlobsHP+in(len(part)), append([]any{int64(tid)}, part...)...)
		} else {
			b.statement(sqlDeleteBlobsHF+in(len(part)), part...)
		}
	}
	b.statement(sqlMoveBlobs, int64(tid))
	b.statement(sqlEmptyTempBlobs)
}
