// Package blobio streams blob files in chunks for the dialects: a blob is
// never held whole in memory.
package blobio

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// DefaultChunkSize is RelStorage's blob-chunk-size default, 1 MiB.
const DefaultChunkSize = 1 << 20

// ChunkSize is blob-chunk-size as configured, RelStorage's default when unset.
func ChunkSize(configured int) int {
	if configured > 0 {
		return configured
	}
	return DefaultChunkSize
}

// EachChunk calls fn with consecutive chunks of at most size bytes of the
// file at path, numbered from 0. An empty file is one empty chunk, as
// RelStorage writes it. The chunk's buffer is reused between calls.
func EachChunk(path string, size int, fn func(num int, chunk []byte) error) error {
	size = ChunkSize(size)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("read blob file: %w", err)
	}
	defer f.Close()
	// A buffer no larger than the file: small blobs are the common case.
	if st, err := f.Stat(); err == nil && st.Size() < int64(size) {
		size = int(st.Size()) + 1
	}
	buf := make([]byte, size)
	for num := 0; ; num++ {
		n, err := io.ReadFull(f, buf)
		if errors.Is(err, io.EOF) && num > 0 {
			return nil
		}
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read blob file: %w", err)
		}
		if ferr := fn(num, buf[:n]); ferr != nil {
			return ferr
		}
		if n < size {
			return nil
		}
	}
}

// Small is a blob small enough to travel with others in one round trip.
type Small struct {
	OID  uint64
	Data []byte
}

// maxBatch bounds the number of blobs in one batch.
const maxBatch = 500

// Group hands the blobs, in order, to small in batches of files no larger
// than limit bytes (read whole, at most batchBytes and maxBatch files at a
// time), and each larger one to large.
func Group(blobs []adapter.StagedBlob, limit, batchBytes int, small func([]Small) error,
	large func(adapter.StagedBlob) error) error {
	var batch []Small
	held := 0
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		err := small(batch)
		batch, held = nil, 0
		return err
	}
	for _, b := range blobs {
		st, err := os.Stat(b.Path)
		if err != nil {
			return fmt.Errorf("read blob file: %w", err)
		}
		if st.Size() > int64(limit) {
			if err := flush(); err != nil {
				return err
			}
			if err := large(b); err != nil {
				return err
			}
			continue
		}
		if held+int(st.Size()) > batchBytes || len(batch) == maxBatch {
			if err := flush(); err != nil {
				return err
			}
		}
		data, err := os.ReadFile(b.Path)
		if err != nil {
			return fmt.Errorf("read blob file: %w", err)
		}
		batch = append(batch, Small{OID: b.OID, Data: data})
		held += len(data)
	}
	return flush()
}
