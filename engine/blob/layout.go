// Package blob keeps ZODB blob files on disk: the directory layouts ZODB and
// RelStorage use, the local cache of blobs stored in the database (downloads
// under a lock, atomic renames, pruning by least recent use), and the
// staging of blob files a transaction commits. The database side (blob_chunk
// rows) belongs to the dialects; the engine ties the two together.
package blob

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
)

// Suffix ends every committed blob file's name, as in ZODB.
const Suffix = ".blob"

// Layout maps an object and a transaction to a file below the blob directory.
type Layout interface {
	// Name is what the directory's .layout marker file says.
	Name() string
	// Dir is the directory, relative to the root, holding oid's files.
	Dir(oid uint64) string
	// File is the path, relative to the root, of oid's blob committed by tid.
	File(oid, tid uint64) string
}

// The layouts by marker name.
var layouts = map[string]Layout{
	"zeocache": cacheLayout{},
	"bushy":    bushyLayout{},
	"lawn":     lawnLayout{},
}

// cacheBuckets is the number of directories of the cache layout, RelStorage's
// (and ZEO's) 997.
const cacheBuckets = 997

// cacheLayout is RelStorage's (ZEO's) blob cache layout, "zeocache":
// <oid % 997>/<oid / 997>.<tid as 16 hex digits>.blob.
type cacheLayout struct{}

func (cacheLayout) Name() string { return "zeocache" }

func (cacheLayout) Dir(oid uint64) string { return strconv.FormatUint(oid%cacheBuckets, 10) }

func (cacheLayout) File(oid, tid uint64) string {
	return filepath.Join(strconv.FormatUint(oid%cacheBuckets, 10),
		fmt.Sprintf("%d.%016x%s", oid/cacheBuckets, tid, Suffix))
}

// bushyLayout is ZODB's default for a blob directory that holds the blobs
// (shared-blob-dir): one directory level per byte of the oid,
// 0x00/0x00/0x00/0x00/0x00/0x00/0x01/0x2a/<tid repr>.blob.
type bushyLayout struct{}

func (bushyLayout) Name() string { return "bushy" }

func (bushyLayout) Dir(oid uint64) string {
	parts := make([]string, 8)
	for i := range parts {
		parts[i] = fmt.Sprintf("0x%02x", byte(oid>>(56-8*i)))
	}
	return filepath.Join(parts...)
}

func (l bushyLayout) File(oid, tid uint64) string {
	return filepath.Join(l.Dir(oid), repr(tid)+Suffix)
}

// lawnLayout is ZODB's older flat layout, one directory per oid: <oid repr>/<tid repr>.blob.
type lawnLayout struct{}

func (lawnLayout) Name() string { return "lawn" }

func (lawnLayout) Dir(oid uint64) string { return repr(oid) }

func (l lawnLayout) File(oid, tid uint64) string {
	return filepath.Join(l.Dir(oid), repr(tid)+Suffix)
}

// repr is ZODB's oid_repr/tid_repr: 0x and the hex digits without leading
// zeros, two per byte ("0x00" for zero, "0x01", "0x0100").
func repr(v uint64) string {
	s := strings.TrimLeft(fmt.Sprintf("%016x", v), "0")
	if len(s)%2 == 1 {
		s = "0" + s
	}
	if s == "" {
		s = "00"
	}
	return "0x" + s
}
