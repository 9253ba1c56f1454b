package cache

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"syscall"
)

// The cache file keeps a cache across restarts: what each process held at
// close, with the tid at which each entry was known to be the object's
// current revision (its checkpoint), so that the next process can drop the
// entries whose object changed since. Several processes on one host share
// the file: each merges its entries into what is there under an exclusive
// lock, and replaces the file atomically, so a reader sees either the old or
// the new file, never a half-written one.
//
// Layout, little-endian: "GRSCACHE", version (uint32), then records of
// oid, tid, checkpoint (uint64 each), flags (uint8: 1 = zlib), length
// (uint32) and the data; then a zero oid, tid and checkpoint and the CRC-32C
// of everything before it.

var fileMagic = []byte("GRSCACHE")

const (
	fileVersion  = 1
	recordHeader = 8 + 8 + 8 + 1 + 4
	// maxRecord bounds a record's data when reading, so a damaged length
	// cannot make the reader allocate without limit.
	maxRecord = 1 << 30
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// Record is a cache entry with the tid at which it was current.
type Record struct {
	Entry
	Checkpoint uint64
}

// ErrCorrupt is wrapped by ReadFile's error when the file is not a complete
// cache file.
var ErrCorrupt = errors.New("not a complete GoRelStorage cache file")

// ReadFile reads a cache file. A missing file is no records and no error.
func ReadFile(path string) ([]Record, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return parse(data)
}

func parse(data []byte) ([]Record, error) {
	corrupt := func(why string) error { return fmt.Errorf("%w: %s", ErrCorrupt, why) }
	if len(data) < len(fileMagic)+4+24+4 || string(data[:len(fileMagic)]) != string(fileMagic) {
		return nil, corrupt("bad header")
	}
	body, sum := data[:len(data)-4], binary.LittleEndian.Uint32(data[len(data)-4:])
	if crc32.Checksum(body, crcTable) != sum {
		return nil, corrupt("checksum mismatch (truncated or damaged)")
	}
	if v := binary.LittleEndian.Uint32(body[len(fileMagic):]); v != fileVersion {
		return nil, corrupt(fmt.Sprintf("version %d, this build reads %d", v, fileVersion))
	}
	p := body[len(fileMagic)+4:]
	var out []Record
	for {
		if len(p) < 24 {
			return nil, corrupt("truncated record")
		}
		oid, tid, cp := binary.LittleEndian.Uint64(p), binary.LittleEndian.Uint64(p[8:]), binary.LittleEndian.Uint64(p[16:])
		if oid == 0 && tid == 0 && cp == 0 {
			if len(p) != 24 {
				return nil, corrupt("data after the end marker")
			}
			return out, nil
		}
		if len(p) < recordHeader {
			return nil, corrupt("truncated record")
		}
		flags, n := p[24], binary.LittleEndian.Uint32(p[25:])
		p = p[recordHeader:]
		if n > maxRecord || int(n) > len(p) {
			return nil, corrupt("record longer than the file")
		}
		out = append(out, Record{Entry: Entry{OID: oid, TID: tid, Data: p[:n:n], Compressed: flags&1 != 0}, Checkpoint: cp})
		p = p[n:]
	}
}

// WriteFile merges recs into the cache file at path, keeping at most limit
// bytes of data (recs first, in their order, then what the file held for
// other objects), and replaces the file. For an object in both, the record
// with the later checkpoint wins. The file and its lock file are created
// readable by the owner only. It returns how many records the file holds.
func WriteFile(path string, recs []Record, limit int64) (int, error) {
	lock, err := os.OpenFile(path+".lock", os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return 0, err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return 0, fmt.Errorf("lock %s: %w", lock.Name(), err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	theirs, err := ReadFile(path)
	if err != nil {
		theirs = nil // a damaged file is replaced
	}
	merged := merge(recs, theirs, limit)

	tmp, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name()) // after a successful rename there is nothing to remove
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := encode(tmp, merged); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return 0, err
	}
	return len(merged), nil
}

func merge(ours, theirs []Record, limit int64) []Record {
	at := make(map[uint64]int, len(ours)+len(theirs))
	var out []Record
	for _, set := range [][]Record{ours, theirs} {
		for _, r := range set {
			if i, ok := at[r.OID]; ok {
				if r.Checkpoint > out[i].Checkpoint {
					out[i] = r
				}
				continue
			}
			at[r.OID] = len(out)
			out = append(out, r)
		}
	}
	var used int64
	for i, r := range out {
		used += int64(len(r.Data)) + entryOverhead
		if used > limit {
			return out[:i]
		}
	}
	return out
}

func encode(w io.Writer, recs []Record) error {
	h := crc32.New(crcTable)
	b := bufio.NewWriterSize(io.MultiWriter(w, h), 1<<16)
	var hdr [recordHeader]byte
	b.Write(fileMagic)
	binary.LittleEndian.PutUint32(hdr[:4], fileVersion)
	b.Write(hdr[:4])
	for _, r := range recs {
		binary.LittleEndian.PutUint64(hdr[0:], r.OID)
		binary.LittleEndian.PutUint64(hdr[8:], r.TID)
		binary.LittleEndian.PutUint64(hdr[16:], r.Checkpoint)
		hdr[24] = 0
		if r.Compressed {
			hdr[24] = 1
		}
		binary.LittleEndian.PutUint32(hdr[25:], uint32(len(r.Data)))
		b.Write(hdr[:])
		b.Write(r.Data)
	}
	b.Write(make([]byte, 24))
	if err := b.Flush(); err != nil {
		return err
	}
	var sum [4]byte
	binary.LittleEndian.PutUint32(sum[:], h.Sum32())
	_, err := w.Write(sum[:])
	return err
}
