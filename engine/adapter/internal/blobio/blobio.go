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
// time), and each larger one to large. The files of the next batch are read
// in another goroutine while small sends the last one, so at most three
// batches are in memory (the one sent, one ready, one being read): 1,000
// blobs of 50 kB, four runs alternating, the vote 0.74-0.88 -> 0.64-0.80 s
// on PostgreSQL, 0.25-0.38 -> 0.23-0.27 s on MariaDB.
func Group(blobs []adapter.StagedBlob, limit, batchBytes int, small func([]Small) error,
	large func(adapter.StagedBlob) error) error {
	items := make(chan groupItem, 1)
	stop := make(chan struct{})
	go readGroups(blobs, limit, batchBytes, items, stop)
	defer func() {
		close(stop)
		for range items { // the reader ends, closing items
		}
	}()
	for it := range items {
		var err error
		switch {
		case it.err != nil:
			err = it.err
		case it.large != nil:
			err = large(*it.large)
		default:
			err = small(it.batch)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// groupItem is what Group's reader hands over: a batch of small files, a
// large one, or the error that ends the reading.
type groupItem struct {
	batch []Small
	large *adapter.StagedBlob
	err   error
}

// readGroups sends Group's items on out, in order, until the blobs are done,
// a file cannot be read, or stop is closed; it closes out.
func readGroups(blobs []adapter.StagedBlob, limit, batchBytes int, out chan<- groupItem, stop <-chan struct{}) {
	defer close(out)
	send := func(it groupItem) bool {
		select {
		case out <- it:
			return true
		case <-stop:
			return false
		}
	}
	var batch []Small
	held := 0
	flush := func() bool {
		if len(batch) == 0 {
			return true
		}
		ok := send(groupItem{batch: batch})
		batch, held = nil, 0
		return ok
	}
	for i := range blobs {
		b := &blobs[i]
		st, err := os.Stat(b.Path)
		if err != nil {
			send(groupItem{err: fmt.Errorf("read blob file: %w", err)})
			return
		}
		if st.Size() > int64(limit) {
			if !flush() || !send(groupItem{large: b}) {
				return
			}
			continue
		}
		if held+int(st.Size()) > batchBytes || len(batch) == maxBatch {
			if !flush() {
				return
			}
		}
		data, err := os.ReadFile(b.Path)
		if err != nil {
			send(groupItem{err: fmt.Errorf("read blob file: %w", err)})
			return
		}
		batch = append(batch, Small{OID: b.OID, Data: data})
		held += len(data)
	}
	flush()
}
