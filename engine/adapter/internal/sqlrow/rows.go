// Rows of integers as the data stream of a bulk load.

package sqlrow

import "io"

// Int64Rows reads len(Values)/Width rows of integers as the byte stream of
// a bulk load (MySQL's LOAD DATA, PostgreSQL's COPY): Head, then each row as
// Encode appends it, then Tail, encoded about Piece bytes at a time. Width
// must divide len(Values).
type Int64Rows struct {
	Values     []int64
	Width      int
	Piece      int
	Head, Tail []byte
	Encode     func(buf []byte, row []int64) []byte

	i       int  // Values[i:] not yet encoded
	started bool // Head is encoded
	ended   bool // Tail is encoded
	buf     []byte
	off     int // buf[off:] not yet read
}

func (r *Int64Rows) Read(p []byte) (int, error) {
	if r.off == len(r.buf) {
		if r.ended {
			return 0, io.EOF
		}
		r.buf, r.off = r.buf[:0], 0
		if !r.started {
			r.buf, r.started = append(r.buf, r.Head...), true
		}
		for r.i+r.Width <= len(r.Values) && len(r.buf) < r.Piece {
			r.buf = r.Encode(r.buf, r.Values[r.i:r.i+r.Width])
			r.i += r.Width
		}
		if r.i+r.Width > len(r.Values) {
			r.buf, r.ended = append(r.buf, r.Tail...), true
		}
		if len(r.buf) == 0 {
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf[r.off:])
	r.off += n
	return n, nil
}
