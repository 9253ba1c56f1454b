// Blobs: the storage's blob directory, and what the two-phase commit and
// loads do with blob files. With a cache (the default) the database holds
// each blob: a stored file is staged in the blob directory's tmp, uploaded
// at vote and moved into the cache once the transaction committed; a load
// downloads what the cache lacks. With a shared blob directory the files
// are the blobs: they are put in place under the commit lock, before
// COMMIT, and removed again when the transaction did not land.

package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/blob"
)

// blobs is a storage's blob directory.
type blobs struct {
	dir     *blob.Dir
	monitor *blob.Monitor // nil without blob-cache-size
}

func openBlobs(opts Options, warn func(string)) (*blobs, error) {
	if opts.BlobDir == "" {
		return nil, nil
	}
	dir, err := blob.Open(opts.BlobDir, opts.SharedBlobDir)
	if err != nil {
		return nil, &Error{Kind: KindConfig, Msg: "open blob-dir", Err: err}
	}
	b := &blobs{dir: dir}
	if !opts.SharedBlobDir && opts.BlobCacheSize > 0 {
		var command []string
		if opts.BlobCacheSizeCheckExternal {
			command = opts.BlobPruneCommand
		}
		b.monitor = blob.NewMonitor(dir.Root, opts.BlobCacheSize, opts.BlobCacheSizeCheck, command,
			func(format string, args ...any) { warn(fmt.Sprintf(format, args...)) })
	}
	return b, nil
}

func (b *blobs) close() {
	if b != nil {
		b.monitor.Wait()
	}
}

// BlobTempDir is the directory for files not yet committed
// (temporaryDirectory), "" without blob-dir.
func (s *Storage) BlobTempDir() string {
	if s.blobs == nil {
		return ""
	}
	return s.blobs.dir.Temp
}

// WaitBlobPruning blocks until no pruning of the blob cache runs.
func (s *Storage) WaitBlobPruning() {
	if s.blobs != nil {
		s.blobs.monitor.Wait()
	}
}

func (in *Instance) blobDir(what string) (*blob.Dir, error) {
	if in.s.blobs == nil {
		return nil, Errorf(KindUnsupported, "%s: no blob-dir is configured: blobs cannot be stored or loaded", what)
	}
	return in.s.blobs.dir, nil
}

// StoreBlob buffers a new state of oid as Store does, with its blob file
// (taken over: moved into the blob directory).
func (in *Instance) StoreBlob(oid, serial uint64, state []byte, path string) error {
	return in.addBlob("storeBlob", oid, path, func() error { return in.Store(oid, serial, state) })
}

// RestoreBlob buffers a state as Restore does, with its blob file (taken over).
func (in *Instance) RestoreBlob(oid uint64, state []byte, path string) error {
	return in.addBlob("restoreBlob", oid, path, func() error { return in.Restore(oid, state) })
}

func (in *Instance) addBlob(what string, oid uint64, path string, add func() error) error {
	dir, err := in.blobDir(what)
	if err != nil {
		return err
	}
	staged, err := dir.Stage(path, oid)
	if err != nil {
		return &Error{Kind: KindStorage, OID: oid, HasOID: true, Msg: what, Err: err}
	}
	if err := add(); err != nil {
		os.Remove(staged)
		return err
	}
	in.mu.Lock()
	defer in.mu.Unlock()
	t := in.txn
	if t == nil || t.voting || t.writes[oid] == nil {
		os.Remove(staged)
		return Errorf(KindTransaction, "%s: the transaction ended while its blob was stored", what)
	}
	if t.blobs == nil {
		t.blobs = map[uint64]string{}
	}
	t.blobs[oid] = staged
	return nil
}

// CachedBlob is LoadBlob when the file is on disk already: it reaches no
// database and waits for nothing (ok false otherwise: call LoadBlob).
func (in *Instance) CachedBlob(oid, tid uint64) (string, bool) {
	if in.s.blobs == nil {
		return "", false
	}
	return in.s.blobs.dir.Cached(oid, tid)
}

// LoadBlob returns the path of oid's blob committed by tid: in the cache,
// downloaded first when missing, or in the shared directory.
func (in *Instance) LoadBlob(ctx context.Context, oid, tid uint64) (string, error) {
	dir, err := in.blobDir("loadBlob")
	if err != nil {
		return "", err
	}
	notFound := func() error {
		return &Error{Kind: KindPOSKey, OID: oid, HasOID: true, Serials: [2]uint64{tid, 0},
			Msg: fmt.Sprintf("loadBlob: oid %d (0x%016x) has no blob committed by tid %d (0x%016x)", oid, oid, tid, tid)}
	}
	if dir.Shared {
		if !dir.Exists(oid, tid) {
			return "", notFound()
		}
		return dir.Path(oid, tid), nil
	}
	_, embedded := in.s.dialect.(adapter.Embedded)
	path, n, err := dir.Fetch(oid, tid, !embedded, func(w io.Writer) (bool, error) {
		in.mu.Lock()
		defer in.mu.Unlock()
		if err := in.check(); err != nil {
			return false, err
		}
		c, err := in.view(ctx)
		if err != nil {
			return false, err
		}
		r, ok := c.(adapter.BlobReader)
		if !ok {
			return false, Errorf(KindUnsupported, "loadBlob: this database adapter keeps no blobs")
		}
		found, err := r.ReadBlob(ctx, oid, tid, w)
		if err != nil {
			return false, in.readErr(err, "loadBlob")
		}
		return found, nil
	})
	if errors.Is(err, blob.ErrNotFound) {
		return "", notFound()
	}
	if err != nil {
		return "", classify(err, fmt.Sprintf("loadBlob: oid %d tid %d", oid, tid))
	}
	in.s.blobs.monitor.Added(n)
	return path, nil
}

// stageBlobs uploads the transaction's blob files (vote, before any lock).
func (in *Instance) stageBlobs(ctx context.Context, t *commit, st adapter.StoreConn) error {
	if len(t.blobs) == 0 || in.s.blobs.dir.Shared {
		return nil
	}
	stager, ok := st.(adapter.BlobStager)
	if !ok {
		return Errorf(KindUnsupported, "tpc_vote: this database adapter keeps no blobs")
	}
	oids := sortedKeys(t.blobs)
	staged := make([]adapter.StagedBlob, 0, len(oids))
	for _, oid := range oids {
		staged = append(staged, adapter.StagedBlob{OID: oid, Path: t.blobs[oid]})
	}
	// The cache's directories the files go to at finish are made meanwhile.
	defer in.s.blobs.dir.Prepare(oids)()
	if err := stager.StageBlobs(ctx, staged); err != nil {
		return classify(err, "tpc_vote: store the blobs")
	}
	return nil
}

// placeBlobs puts a shared directory's files in place for tid, under the
// commit lock and before COMMIT: a crash between the two leaves files no
// transaction refers to, never a committed blob without its file.
func (in *Instance) placeBlobs(t *commit, tid uint64) error {
	if in.s.blobs == nil || !in.s.blobs.dir.Shared {
		return nil
	}
	dir := in.s.blobs.dir
	for _, oid := range sortedKeys(t.blobs) {
		if _, err := dir.Install(t.blobs[oid], oid, tid); err != nil {
			return &Error{Kind: KindStorage, OID: oid, HasOID: true, Msg: "tpc_finish: put the blob file in place", Err: err}
		}
		delete(t.blobs, oid)
		t.placed = append(t.placed, oid)
	}
	for _, oid := range t.order {
		w := t.writes[oid]
		if w.blobFrom == 0 {
			continue
		}
		_, found, err := dir.CopyRevision(oid, w.blobFrom, tid)
		if err != nil {
			return &Error{Kind: KindStorage, OID: oid, HasOID: true, Msg: "tpc_finish: copy the undone blob", Err: err}
		}
		if found {
			t.placed = append(t.placed, oid)
		}
	}
	return nil
}

// cacheBlobs moves a committed transaction's blob files into the cache.
// The database has them: a failure here only costs a download later.
func (in *Instance) cacheBlobs(t *commit) {
	if len(t.blobs) == 0 {
		return
	}
	b := in.s.blobs
	var added int64
	for oid, staged := range t.blobs {
		st, err := os.Stat(staged)
		if err == nil {
			_, err = b.dir.Install(staged, oid, t.tid)
		}
		if err != nil {
			in.s.warn(fmt.Sprintf("blob cache: could not keep the blob of oid %d just committed: %v", oid, err))
			os.Remove(staged)
			continue
		}
		added += st.Size()
		if !in.s.opts.KeepHistory && t.current[oid] != 0 { // a new object has no older blob
			added -= b.dir.RemoveOlder(oid, t.tid)
		}
	}
	t.blobs = nil
	b.monitor.Added(added)
}

// dropBlobFiles removes what a transaction that did not commit left: its
// staged files, and the files it put in place in a shared directory.
func (t *commit) dropBlobFiles(dir *blob.Dir) {
	for _, path := range t.blobs {
		os.Remove(path)
	}
	t.blobs = nil
	if dir != nil {
		for _, oid := range t.placed {
			dir.Remove(oid, t.tid)
		}
	}
	t.placed = nil
}

func sortedKeys(m map[uint64]string) []uint64 {
	keys := make([]uint64, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i] < keys[j] })
	return keys
}
