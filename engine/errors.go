// Error kinds the engine reports. Each kind maps to one ZODB exception on the
// Python side (_native.KINDS names them, and tests_py/test_abi.py checks that
// the two lists agree); the C ABI carries the kind as an integer, so the
// numeric values are part of the ABI.

package engine

import (
	"errors"
	"fmt"
)

// Kind classifies an engine error for the caller.
type Kind int32

const (
	KindNone            Kind = 0
	KindPOSKey          Kind = 1  // no such object or revision
	KindConflict        Kind = 2  // stale write, unresolved conflict
	KindReadConflict    Kind = 3  // readCurrent violated, snapshot went backwards
	KindTransaction     Kind = 4  // wrong transaction, protocol misuse
	KindReadOnly        Kind = 5  // write on a read-only storage
	KindUndo            Kind = 6  // undo impossible
	KindUnsupported     Kind = 7  // feature not available in this mode
	KindStorage         Kind = 8  // database unreachable, schema mismatch, I/O
	KindConfig          Kind = 9  // bad configuration
	KindLockTimeout     Kind = 10 // could not take a lock in time: retryable
	KindClosed          Kind = 11 // use after close
	KindInternal        Kind = 12 // a bug: panic recovered, invariant broken
	KindInvalidArgument Kind = 13 // caller passed a bad value
	KindDisconnected    Kind = 14 // connection lost mid-transaction: retryable
	KindCommitUnknown   Kind = 15 // connection lost during COMMIT, outcome unknown: not retryable; Serials[0] is the tid
)

// Error is the engine's error type. OID and Serials are set where they apply.
type Error struct {
	Kind    Kind
	OID     uint64
	HasOID  bool
	Serials [2]uint64 // (current/committed, read/old), as ZODB's ConflictError
	Msg     string
	Err     error
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf builds an Error of the given kind.
func Errorf(kind Kind, format string, args ...any) *Error {
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...)}
}

// Wrap attaches a kind and context to err, keeping an inner kind if err already has one.
func Wrap(kind Kind, err error, format string, args ...any) error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return &Error{Kind: e.Kind, OID: e.OID, HasOID: e.HasOID, Serials: e.Serials,
			Msg: fmt.Sprintf(format, args...) + ": " + e.Msg, Err: e.Err}
	}
	return &Error{Kind: kind, Msg: fmt.Sprintf(format, args...), Err: err}
}

// KindOf returns the kind of err, KindStorage for foreign errors.
func KindOf(err error) Kind {
	if err == nil {
		return KindNone
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return KindStorage
}

// POSKeyError reports a missing object or revision.
func POSKeyError(oid uint64, format string, args ...any) *Error {
	return &Error{Kind: KindPOSKey, OID: oid, HasOID: true, Msg: fmt.Sprintf(format, args...)}
}

// ConflictError reports a write against a serial that is no longer current.
func ConflictError(kind Kind, oid, current, read uint64, msg string) *Error {
	return &Error{Kind: kind, OID: oid, HasOID: true, Serials: [2]uint64{current, read}, Msg: msg}
}
