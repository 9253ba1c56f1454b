// Options are the RelStorage options this build implements, decoded from the
// JSON the Python side passes at open. Unknown keys are rejected: an option a
// user sets must never be silently ignored.
package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Options configure a Storage. Field names follow RelStorage's option keys.
type Options struct {
	Name                  string  `json:"name"`
	ReadOnly              bool    `json:"read_only"`
	KeepHistory           bool    `json:"keep_history"`
	CreateSchema          bool    `json:"create_schema"`
	CommitLockTimeout     float64 `json:"commit_lock_timeout"` // seconds
	CacheDeltaSizeLimit   int     `json:"cache_delta_size_limit"`
	CacheLocalMB          float64 `json:"cache_local_mb"` // 0 disables the shared cache
	CacheLocalObjectMax   int     `json:"cache_local_object_max"`
	CacheLocalCompression string  `json:"cache_local_compression"` // "none" or "zlib"
	CacheLocalDir         string  `json:"cache_local_dir"`         // "" keeps no cache file
	// CacheTrace is ZEO_CACHE_TRACE as the Python side read it: not "" (and
	// a cache-local-dir) writes a ZEO cache trace file there.
	CacheTrace string `json:"cache_trace"`
	// Replicas (PostgreSQL): see adapter.Settings.
	ReplicaConf    string  `json:"replica_conf"`
	ROReplicaConf  string  `json:"ro_replica_conf"`
	ReplicaTimeout float64 `json:"replica_timeout"` // seconds
	// RevertWhenStale: a snapshot older than what an instance saw (a replica
	// behind) invalidates everything instead of raising ReadConflictError.
	RevertWhenStale bool `json:"revert_when_stale"`
	// Blobs: blob-dir ("" for none), shared-blob-dir, blob-cache-size (bytes,
	// 0 for no limit), blob-cache-size-check (percent), its -external form
	// (which runs BlobPruneCommand, given by the Python side) and
	// blob-chunk-size (bytes).
	BlobDir                    string          `json:"blob_dir"`
	SharedBlobDir              bool            `json:"shared_blob_dir"`
	BlobCacheSize              int64           `json:"blob_cache_size"`
	BlobCacheSizeCheck         float64         `json:"blob_cache_size_check"`
	BlobCacheSizeCheckExternal bool            `json:"blob_cache_size_check_external"`
	BlobChunkSize              int             `json:"blob_chunk_size"`
	BlobPruneCommand           []string        `json:"blob_prune_command"`
	Adapter                    string          `json:"adapter"`
	AdapterOptions             json.RawMessage `json:"adapter_options"`
}

// DefaultOptions returns RelStorage's defaults.
func DefaultOptions() Options {
	return Options{KeepHistory: true, CreateSchema: true, CommitLockTimeout: 30, CacheDeltaSizeLimit: 100000,
		CacheLocalMB: 10, CacheLocalObjectMax: 16384, CacheLocalCompression: "none",
		BlobCacheSizeCheck: 10, BlobChunkSize: 1 << 20}
}

// ParseOptions decodes JSON over the defaults and validates the result.
func ParseOptions(data []byte) (Options, error) {
	o := DefaultOptions()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, Errorf(KindConfig, "configuration: %v", err)
	}
	return o, o.Validate()
}

// Validate reports the first option with an impossible value.
func (o Options) Validate() error {
	switch {
	case o.Adapter == "":
		return Errorf(KindConfig, "configuration: no database adapter given")
	case o.CommitLockTimeout < 0:
		return Errorf(KindConfig, "configuration: commit-lock-timeout must be >= 0, got %v", o.CommitLockTimeout)
	case o.CacheDeltaSizeLimit < 0:
		return Errorf(KindConfig, "configuration: cache-delta-size-limit must be >= 0, got %d", o.CacheDeltaSizeLimit)
	case o.CacheLocalMB < 0:
		return Errorf(KindConfig, "configuration: cache-local-mb must be >= 0, got %v", o.CacheLocalMB)
	case o.CacheLocalObjectMax < 0:
		return Errorf(KindConfig, "configuration: cache-local-object-max must be >= 0, got %d", o.CacheLocalObjectMax)
	case o.BlobCacheSize < 0:
		return Errorf(KindConfig, "configuration: blob-cache-size must be >= 0, got %d", o.BlobCacheSize)
	case o.BlobCacheSizeCheck <= 0 || o.BlobCacheSizeCheck >= 100:
		return Errorf(KindConfig, "configuration: blob-cache-size-check must be a percentage above 0 and below 100, got %v", o.BlobCacheSizeCheck)
	case o.BlobChunkSize <= 0:
		return Errorf(KindConfig, "configuration: blob-chunk-size must be > 0, got %d", o.BlobChunkSize)
	case o.BlobCacheSizeCheckExternal && o.BlobCacheSize > 0 && len(o.BlobPruneCommand) == 0:
		return Errorf(KindConfig, "configuration: blob-cache-size-check-external needs the command that prunes")
	case o.BlobDir == "" && (o.SharedBlobDir || o.BlobCacheSize > 0):
		return Errorf(KindConfig, "configuration: shared-blob-dir and blob-cache-size need blob-dir")
	case o.SharedBlobDir && o.BlobCacheSize > 0:
		return Errorf(KindConfig, "configuration: blob-cache-size limits a blob cache; a shared blob directory (shared-blob-dir true) holds the only copy of each blob and is never pruned")
	case o.CacheLocalCompression != "none" && o.CacheLocalCompression != "zlib":
		return Errorf(KindConfig, "configuration: cache-local-compression must be none or zlib, got %q", o.CacheLocalCompression)
	}
	return nil
}

// LockTimeout is commit-lock-timeout as a duration.
func (o Options) LockTimeout() time.Duration {
	return time.Duration(o.CommitLockTimeout * float64(time.Second))
}

func (o Options) String() string {
	return fmt.Sprintf("adapter=%s keep_history=%v read_only=%v", o.Adapter, o.KeepHistory, o.ReadOnly)
}
