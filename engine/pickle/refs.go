// Package pickle finds the persistent references in ZODB records without
// building any object: a small pickle machine that keeps only what a
// persistent id can be made of (strings, bytes, tuples) and treats
// everything else as an opaque value, as zodbpickle's noload does.
// References gives the same answer as ZODB's referencesf or an error; it
// never panics on malformed input.
package pickle

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
)

// A record is two pickles: the class, then the state. References reads both.

type kind uint8

const (
	kNone kind = iota
	kBytes
	kTuple
	kList
	kDict
	kOther
	kMark
)

// value is what a persistent id can be made of. A tuple keeps only its
// length and its first item (the oid of an (oid, class) persistent id), in
// first, b and ascii: nothing else of it is ever read.
type value struct {
	k     kind
	b     []byte // kBytes, or a tuple's first item's
	ascii bool   // kBytes: text that must be ASCII to be an oid (unicode opcodes)
	first kind   // kTuple: its first item's kind
	n     int    // kTuple: its length
}

// tuple makes the value of a tuple of items.
func tuple(items []value) value {
	t := value{k: kTuple, n: len(items)}
	if len(items) > 0 {
		t.first, t.b, t.ascii = items[0].k, items[0].b, items[0].ascii
	}
	return t
}

// ErrMalformed wraps every error about the pickle itself.
var ErrMalformed = errors.New("malformed pickle")

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// zlibPrefix marks a record compressed by zc.zlibstorage.
var zlibPrefix = []byte(".z")

// maxInflated bounds a compressed record's inflated size.
const maxInflated = 1 << 30

// References returns the oids a ZODB record refers to, in order and with
// repeats, exactly as ZODB.serialize.referencesf: ordinary references only
// (an oid, or an (oid, class) tuple); weak and cross-database references
// (lists) are left out. A record compressed by zc.zlibstorage is inflated
// first.
func References(record []byte) ([][]byte, error) {
	if bytes.HasPrefix(record, zlibPrefix) {
		r, err := zlib.NewReader(bytes.NewReader(record[len(zlibPrefix):]))
		if err != nil {
			return nil, malformed("zlib: %v", err)
		}
		inflated, err := io.ReadAll(io.LimitReader(r, maxInflated+1))
		if err != nil {
			return nil, malformed("zlib: %v", err)
		}
		if len(inflated) > maxInflated {
			return nil, malformed("zlib: inflates to more than %d bytes", maxInflated)
		}
		record = inflated
	}
	m := machines.Get().(*machine)
	defer m.release()
	m.data = record
	for range 2 {
		if err := m.run(); err != nil {
			return nil, err
		}
	}
	return m.refs, nil
}

// machines are reused: a pack reads millions of records, and a machine's
// stack and memo would otherwise be allocated for each.
var machines = sync.Pool{New: func() any { return &machine{} }}

// OIDs is References as 64-bit oids; a reference that is not 8 bytes long
// is an error.
func OIDs(record []byte) ([]uint64, error) {
	refs, err := References(record)
	if err != nil {
		return nil, err
	}
	out := make([]uint64, len(refs))
	for i, r := range refs {
		if len(r) != 8 {
			return nil, malformed("reference %q is not an 8-byte oid", r)
		}
		out[i] = binary.BigEndian.Uint64(r)
	}
	return out, nil
}

type machine struct {
	data  []byte
	pos   int
	stack []value
	// The memo: keys below denseMemo in a slice (pickles number them from 0),
	// others in a map.
	memo    []value
	memoSet []bool
	memoBig map[uint64]value
	memoLen int // entries, for MEMOIZE
	refs    [][]byte
}

const denseMemo = 1 << 16

func (m *machine) release() {
	clear(m.stack)
	clear(m.memo)
	clear(m.memoSet)
	*m = machine{stack: m.stack[:0], memo: m.memo[:0], memoSet: m.memoSet[:0]}
	machines.Put(m)
}

func (m *machine) push(v value) { m.stack = append(m.stack, v) }

func (m *machine) pop() (value, error) {
	if len(m.stack) == 0 {
		return value{}, malformed("stack underflow at byte %d", m.pos)
	}
	v := m.stack[len(m.stack)-1]
	m.stack = m.stack[:len(m.stack)-1]
	if v.k == kMark {
		return value{}, malformed("unexpected mark at byte %d", m.pos)
	}
	return v, nil
}

// popN discards the n values on top of the stack.
func (m *machine) popN(n int) error {
	for range n {
		if _, err := m.pop(); err != nil {
			return err
		}
	}
	return nil
}

func (m *machine) top() (*value, error) {
	if len(m.stack) == 0 || m.stack[len(m.stack)-1].k == kMark {
		return nil, malformed("stack underflow at byte %d", m.pos)
	}
	return &m.stack[len(m.stack)-1], nil
}

// dropMark removes what was pushed since the last mark, and the mark.
func (m *machine) dropMark() error {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].k == kMark {
			clear(m.stack[i:])
			m.stack = m.stack[:i]
			return nil
		}
	}
	return malformed("no mark at byte %d", m.pos)
}

// tupleFromMark replaces what was pushed since the last mark, and the
// mark, by a tuple of it.
func (m *machine) tupleFromMark() error {
	for i := len(m.stack) - 1; i >= 0; i-- {
		if m.stack[i].k == kMark {
			t := tuple(m.stack[i+1:])
			clear(m.stack[i:])
			m.stack = append(m.stack[:i], t)
			return nil
		}
	}
	return malformed("no mark at byte %d", m.pos)
}

func (m *machine) read(n int) ([]byte, error) {
	if n < 0 || n > len(m.data)-m.pos {
		return nil, malformed("truncated at byte %d", m.pos)
	}
	b := m.data[m.pos : m.pos+n]
	m.pos += n
	return b, nil
}

func (m *machine) readLine() ([]byte, error) {
	i := bytes.IndexByte(m.data[m.pos:], '\n')
	if i < 0 {
		return nil, malformed("unterminated line at byte %d", m.pos)
	}
	line := m.data[m.pos : m.pos+i]
	m.pos += i + 1
	return line, nil
}

func (m *machine) uint(n int) (uint64, error) {
	b, err := m.read(n)
	if err != nil {
		return 0, err
	}
	var v uint64
	for i := n - 1; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v, nil
}

// sized reads an n-byte little-endian length, then that many bytes.
func (m *machine) sized(n int) ([]byte, error) {
	l, err := m.uint(n)
	if err != nil {
		return nil, err
	}
	if l > math.MaxInt32*2 {
		return nil, malformed("length %d at byte %d", l, m.pos)
	}
	return m.read(int(l))
}

// memoKey reads the argument of a memo opcode: a decimal line (GET, PUT),
// one byte (BINGET, BINPUT) or four (LONG_BINGET, LONG_BINPUT).
func (m *machine) memoKey(op byte) (uint64, error) {
	switch op {
	case 'h', 'q':
		return m.uint(1)
	case 'j', 'r':
		return m.uint(4)
	}
	line, err := m.readLine()
	if err != nil {
		return 0, err
	}
	return decimal(line)
}

func (m *machine) memoPut(key uint64) error {
	v, err := m.top()
	if err != nil {
		return err
	}
	if key < denseMemo {
		if n := int(key) + 1; n > len(m.memo) {
			m.memo = append(m.memo, make([]value, n-len(m.memo))...)
			m.memoSet = append(m.memoSet, make([]bool, n-len(m.memoSet))...)
		}
		if !m.memoSet[key] {
			m.memoLen++
		}
		m.memo[key], m.memoSet[key] = *v, true
		return nil
	}
	if m.memoBig == nil {
		m.memoBig = map[uint64]value{}
	}
	if _, ok := m.memoBig[key]; !ok {
		m.memoLen++
	}
	m.memoBig[key] = *v
	return nil
}

func (m *machine) memoGet(key uint64) error {
	var v value
	var ok bool
	if key < uint64(len(m.memo)) {
		v, ok = m.memo[key], m.memoSet[key]
	} else {
		v, ok = m.memoBig[key]
	}
	if !ok {
		return malformed("memo key %d missing at byte %d", key, m.pos)
	}
	m.push(v)
	return nil
}

// persistent records a persistent id as referencesf reads it.
func (m *machine) persistent(pid value) error {
	var oid value
	switch pid.k {
	case kTuple:
		if pid.n == 0 {
			return malformed("empty persistent id tuple at byte %d", m.pos)
		}
		oid = value{k: pid.first, b: pid.b, ascii: pid.ascii}
	case kBytes:
		oid = pid
	case kList:
		return nil // weak or cross-database reference: left out
	default:
		return malformed("persistent id of an unexpected type at byte %d", m.pos)
	}
	if oid.k != kBytes {
		return malformed("persistent id whose oid is not a string at byte %d", m.pos)
	}
	if oid.ascii {
		for _, c := range oid.b {
			if c >= 0x80 {
				return malformed("persistent id with a non-ASCII text oid at byte %d", m.pos)
			}
		}
	}
	m.refs = append(m.refs, oid.b)
	return nil
}

func decimal(line []byte) (uint64, error) {
	v, err := strconv.ParseUint(string(line), 10, 64)
	if err != nil {
		return 0, malformed("bad number %q", line)
	}
	return v, nil
}

// run executes one pickle, up to and including its STOP.
func (m *machine) run() error {
	m.stack = m.stack[:0] // the memo carries over: the state refers to the class pickle's entries
	for {
		if m.pos >= len(m.data) {
			return malformed("no STOP before the end (byte %d)", m.pos)
		}
		op := m.data[m.pos]
		m.pos++
		if err := m.step(op); err != nil {
			if errors.Is(err, errStop) {
				return nil
			}
			return err
		}
	}
}

var errStop = errors.New("stop")

var other = value{k: kOther}
var none = value{k: kNone}

func (m *machine) step(op byte) error {
	switch op {
	case '.': // STOP
		if _, err := m.pop(); err != nil {
			return err
		}
		return errStop
	case '(': // MARK
		m.push(value{k: kMark})
	case '0': // POP
		if len(m.stack) == 0 {
			return malformed("stack underflow at byte %d", m.pos)
		}
		m.stack = m.stack[:len(m.stack)-1]
	case '1': // POP_MARK
		err := m.dropMark()
		return err
	case '2': // DUP
		v, err := m.top()
		if err != nil {
			return err
		}
		m.push(*v)
	case 0x80: // PROTO
		_, err := m.read(1)
		return err
	case 0x95: // FRAME
		_, err := m.read(8)
		return err
	case 'N':
		m.push(none)
	case 0x88, 0x89: // NEWTRUE, NEWFALSE
		m.push(other)
	case 'I', 'L', 'F': // INT, LONG, FLOAT as text
		if _, err := m.readLine(); err != nil {
			return err
		}
		m.push(other)
	case 'J': // BININT
		return m.skipPush(4)
	case 'K': // BININT1
		return m.skipPush(1)
	case 'M': // BININT2
		return m.skipPush(2)
	case 'G': // BINFLOAT
		return m.skipPush(8)
	case 0x8a: // LONG1
		if _, err := m.sized(1); err != nil {
			return err
		}
		m.push(other)
	case 0x8b: // LONG4
		if _, err := m.sized(4); err != nil {
			return err
		}
		m.push(other)
	case 'S': // STRING: a quoted Python literal
		line, err := m.readLine()
		if err != nil {
			return err
		}
		b, err := unquote(line)
		if err != nil {
			return err
		}
		m.push(value{k: kBytes, b: b})
	case 'T': // BINSTRING
		return m.pushBytes(4, false)
	case 'U': // SHORT_BINSTRING
		return m.pushBytes(1, false)
	case 'B': // BINBYTES
		return m.pushBytes(4, false)
	case 'C': // SHORT_BINBYTES
		return m.pushBytes(1, false)
	case 0x8e: // BINBYTES8
		return m.pushBytes(8, false)
	case 0x96: // BYTEARRAY8
		if _, err := m.sized(8); err != nil {
			return err
		}
		m.push(other)
	case 'V': // UNICODE: raw-unicode-escape text
		line, err := m.readLine()
		if err != nil {
			return err
		}
		m.push(value{k: kBytes, b: line, ascii: true})
	case 'X': // BINUNICODE
		return m.pushBytes(4, true)
	case 0x8c: // SHORT_BINUNICODE
		return m.pushBytes(1, true)
	case 0x8d: // BINUNICODE8
		return m.pushBytes(8, true)
	case ')': // EMPTY_TUPLE
		m.push(value{k: kTuple})
	case 't': // TUPLE
		return m.tupleFromMark()
	case 0x85, 0x86, 0x87: // TUPLE1, TUPLE2, TUPLE3
		n := int(op - 0x84)
		if len(m.stack) < n {
			return malformed("stack underflow at byte %d", m.pos)
		}
		items := m.stack[len(m.stack)-n:]
		for _, it := range items {
			if it.k == kMark {
				return malformed("unexpected mark at byte %d", m.pos)
			}
		}
		t := tuple(items)
		m.stack = m.stack[:len(m.stack)-n]
		m.push(t)
	case ']': // EMPTY_LIST
		m.push(value{k: kList})
	case 'l': // LIST
		if err := m.dropMark(); err != nil {
			return err
		}
		m.push(value{k: kList})
	case '}': // EMPTY_DICT
		m.push(value{k: kDict})
	case 'd': // DICT
		if err := m.dropMark(); err != nil {
			return err
		}
		m.push(value{k: kDict})
	case 0x8f: // EMPTY_SET
		m.push(other)
	case 0x91: // FROZENSET
		if err := m.dropMark(); err != nil {
			return err
		}
		m.push(other)
	case 'a': // APPEND: the item goes into the list (or nowhere)
		if _, err := m.pop(); err != nil {
			return err
		}
		_, err := m.top()
		return err
	case 'e', 'u', 0x90: // APPENDS, SETITEMS, ADDITEMS
		if err := m.dropMark(); err != nil {
			return err
		}
		_, err := m.top()
		return err
	case 's': // SETITEM
		if err := m.popN(2); err != nil {
			return err
		}
		_, err := m.top()
		return err
	case 'c': // GLOBAL
		for range 2 {
			if _, err := m.readLine(); err != nil {
				return err
			}
		}
		m.push(none)
	case 0x93: // STACK_GLOBAL
		if err := m.popN(2); err != nil {
			return err
		}
		m.push(none)
	case 'i': // INST
		for range 2 {
			if _, err := m.readLine(); err != nil {
				return err
			}
		}
		if err := m.dropMark(); err != nil {
			return err
		}
		m.push(none)
	case 'o': // OBJ
		if err := m.dropMark(); err != nil {
			return err
		}
		m.push(none)
	case 'R', 0x81: // REDUCE, NEWOBJ
		if err := m.popN(2); err != nil {
			return err
		}
		m.push(none)
	case 0x92: // NEWOBJ_EX
		if err := m.popN(3); err != nil {
			return err
		}
		m.push(none)
	case 'b': // BUILD
		if _, err := m.pop(); err != nil {
			return err
		}
		_, err := m.top()
		return err
	case 0x82, 0x83, 0x84: // EXT1, EXT2, EXT4
		n := map[byte]int{0x82: 1, 0x83: 2, 0x84: 4}[op]
		return m.skipPush(n)
	case 'P': // PERSID
		line, err := m.readLine()
		if err != nil {
			return err
		}
		if err := m.persistent(value{k: kBytes, b: line, ascii: true}); err != nil {
			return err
		}
		m.push(none)
	case 'Q': // BINPERSID
		pid, err := m.pop()
		if err != nil {
			return err
		}
		if err := m.persistent(pid); err != nil {
			return err
		}
		m.push(none)
	case 'g', 'h', 'j': // GET, BINGET, LONG_BINGET
		key, err := m.memoKey(op)
		if err != nil {
			return err
		}
		return m.memoGet(key)
	case 'p', 'q', 'r': // PUT, BINPUT, LONG_BINPUT
		key, err := m.memoKey(op)
		if err != nil {
			return err
		}
		return m.memoPut(key)
	case 0x94: // MEMOIZE
		return m.memoPut(uint64(m.memoLen))
	default:
		return malformed("unknown opcode 0x%02x at byte %d", op, m.pos-1)
	}
	return nil
}

func (m *machine) skipPush(n int) error {
	if _, err := m.read(n); err != nil {
		return err
	}
	m.push(other)
	return nil
}

func (m *machine) pushBytes(lenSize int, text bool) error {
	b, err := m.sized(lenSize)
	if err != nil {
		return err
	}
	m.push(value{k: kBytes, b: b, ascii: text})
	return nil
}

// unquote decodes a STRING opcode's argument, a Python 2 string literal
// in single or double quotes.
func unquote(line []byte) ([]byte, error) {
	if len(line) < 2 || line[0] != line[len(line)-1] || (line[0] != '\'' && line[0] != '"') {
		return nil, malformed("STRING argument %q is not quoted", line)
	}
	s := line[1 : len(line)-1]
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' {
			out = append(out, c)
			continue
		}
		i++
		if i >= len(s) {
			return nil, malformed("STRING argument %q ends in a backslash", line)
		}
		switch e := s[i]; e {
		case '\\', '\'', '"':
			out = append(out, e)
		case 'n':
			out = append(out, '\n')
		case 'r':
			out = append(out, '\r')
		case 't':
			out = append(out, '\t')
		case 'a':
			out = append(out, 7)
		case 'b':
			out = append(out, 8)
		case 'f':
			out = append(out, 12)
		case 'v':
			out = append(out, 11)
		case '\n':
		case 'x':
			if i+2 >= len(s) {
				return nil, malformed("STRING argument %q has a short \\x escape", line)
			}
			v, err := strconv.ParseUint(string(s[i+1:i+3]), 16, 8)
			if err != nil {
				return nil, malformed("STRING argument %q has a bad \\x escape", line)
			}
			out = append(out, byte(v))
			i += 2
		default:
			if e >= '0' && e <= '7' {
				j := i
				for j < len(s) && j < i+3 && s[j] >= '0' && s[j] <= '7' {
					j++
				}
				v, _ := strconv.ParseUint(string(s[i:j]), 8, 16)
				out = append(out, byte(v))
				i = j - 1
				continue
			}
			out = append(out, '\\', e) // Python keeps unknown escapes
		}
	}
	return out, nil
}
