// Package adapter is the seam between the engine and a database. A dialect
// implements these interfaces for one database (sqlite, postgresql, ...); the
// engine never switches on the database name, and a dialect never knows about
// Python. The split follows RelStorage's: load connections (snapshots),
// store connections (commit), OID allocation and schema live behind it.
package adapter

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"
	"time"
)

// Settings are the options every dialect receives at open.
type Settings struct {
	KeepHistory  bool
	CreateSchema bool
	ReadOnly     bool
	LockTimeout  time.Duration // commit-lock-timeout
	// BlobChunkSize is blob-chunk-size: the largest blob_chunk row a dialect
	// that splits blobs writes, and the buffer it streams them through.
	BlobChunkSize int
	Options       json.RawMessage // the adapter's own section, e.g. data_dir and pragmas
	// ReplicaConf and ROReplicaConf are RelStorage's replica-conf and
	// ro-replica-conf: files of host[:port] lines ("" for none), the first
	// entry preferred, the next tried when a connection to one fails;
	// ReplicaTimeout (replica-timeout) sends new connections back to the
	// first entry that long after they left it.
	ReplicaConf, ROReplicaConf string
	ReplicaTimeout             time.Duration
}

// Opener opens a dialect for one database.
type Opener func(ctx context.Context, s Settings) (Dialect, error)

var (
	registryMu sync.Mutex
	registry   = map[string]Opener{}
)

// Register makes a dialect available under name; dialect packages call it from init.
func Register(name string, open Opener) {
	registryMu.Lock()
	defer registryMu.Unlock()
	registry[name] = open
}

// Lookup returns the opener registered under name.
func Lookup(name string) (Opener, bool) {
	registryMu.Lock()
	defer registryMu.Unlock()
	o, ok := registry[name]
	return o, ok
}

// Names lists the registered dialects, sorted.
func Names() []string {
	registryMu.Lock()
	defer registryMu.Unlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ErrBadConfig marks errors caused by the adapter's configuration, not the database.
var ErrBadConfig = errors.New("bad configuration")

// ConfigError returns an error wrapping ErrBadConfig.
func ConfigError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrBadConfig}, args...)...)
}

// DecodeOptions reads a dialect's section of the options into v, refusing
// unknown keys; an empty section leaves v as it is.
func DecodeOptions(dialect string, raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return ConfigError("%s options: %v", dialect, err)
	}
	return nil
}

// ErrLockTimeout is returned (wrapped) when a lock could not be taken within the timeout.
var ErrLockTimeout = errors.New("lock timeout")

// ErrDisconnected is returned (wrapped) when the connection to the database
// was lost in the middle of a transaction: nothing of it was committed, and
// retrying the transaction on a new connection is safe.
var ErrDisconnected = errors.New("connection to the database lost")

// ErrUnreachable is returned (wrapped) when no connection to the database
// can be made (the server is down, restarting or refusing). Opening a storage
// then fails; once it is open, a transaction that meets it is retryable, as
// with ErrDisconnected.
var ErrUnreachable = errors.New("cannot connect")

// ErrCommitUnknown is returned (wrapped) by Commit when the connection was
// lost after COMMIT was sent and a new connection could not find out whether
// the transaction landed. Not retryable: running it again may apply it twice.
var ErrCommitUnknown = errors.New("the connection was lost during COMMIT and whether the transaction committed cannot be known")

// OutcomeWait bounds how long Commit spends finding out, on new connections,
// whether a commit whose reply was lost landed (the server may be
// restarting). A variable only so that tests can shorten it.
var OutcomeWait = 30 * time.Second

// ErrDeadlock is returned (wrapped) when the database broke a deadlock by
// aborting this transaction. Retryable.
var ErrDeadlock = errors.New("deadlock detected")

// ReadCurrentLockedError reports that an object the transaction read with
// readCurrent is being changed by another transaction right now.
type ReadCurrentLockedError struct {
	OID uint64
}

func (e *ReadCurrentLockedError) Error() string {
	return fmt.Sprintf("oid %d, read with readCurrent, is being changed by another transaction", e.OID)
}

// Dialect is one open database.
type Dialect interface {
	// Describe names the database without secrets, e.g. "sqlite3:/srv/data".
	// It is stable across processes and used for sortKey.
	Describe() string
	OpenLoad(ctx context.Context) (LoadConn, error)
	OpenStore(ctx context.Context) (StoreConn, error)
	// NewOIDs returns new OIDs in blocks of 16 (one per counter value),
	// ascending: up to blocks blocks in one round trip, at least one.
	NewOIDs(ctx context.Context, blocks int) ([]uint64, error)
	// SetMinOID makes sure OIDs up to oid are never issued again.
	SetMinOID(ctx context.Context, oid uint64) error
	// Size returns the number of current objects and the database size in bytes.
	Size(ctx context.Context) (objects int64, bytes int64, err error)
	Close() error
}

// MultiMover is implemented by store connections whose write transaction
// can take several Moves, one per transaction with ascending tids, all
// committed together (the engine's RestoreBatch); a lost COMMIT is judged
// by the last of them.
type MultiMover interface {
	MovesMany()
}

// ManyMover is implemented by store connections that write several whole
// transactions with a few statements for all (RestoreBatch): in the write
// transaction, committed together; tids ascend; no blobs.
type ManyMover interface {
	MoveMany(ctx context.Context, txns []MovedTxn) error
}

// MovedTxn is one transaction for MoveMany: Writes' PrevTIDs follow the
// batch's earlier transactions.
type MovedTxn struct {
	Meta   TxnInfo
	Writes []Write
}

// Zapper is implemented by dialects that can empty their database, as
// RelStorage's zap_all does: every row of its object, transaction, blob and
// pack tables (PostgreSQL's large objects with them), the OID counter
// started again; the schema and its lock tables stay.
type Zapper interface {
	Zap(ctx context.Context) error
}

// StateChecker is implemented by dialects that cannot store every state
// (MySQL's max_allowed_packet bounds a row). The engine calls CheckState when
// a state is stored, so the transaction fails before anything is written.
type StateChecker interface {
	CheckState(oid uint64, state []byte) error
}

// Revision is one stored state of an object. State is nil for a deletion or an
// undone creation. A revision read from the database is the reader's: its State
// is a slice no one else holds (the drivers copy rows out of their buffers), so
// the engine keeps it in the shared cache without copying it again.
type Revision struct {
	OID   uint64
	TID   uint64
	State []byte
}

// Change is one row of a poll: oid's current tid is TID.
type Change struct {
	OID uint64
	TID uint64
}

// TxnInfo is one transaction's metadata. History-free databases keep none.
type TxnInfo struct {
	TID         uint64
	Packed      bool
	User        []byte
	Description []byte
	Extension   []byte
}

// HistoryEntry is one revision of an object with its transaction's metadata.
type HistoryEntry struct {
	TxnInfo
	Size int64
}

// TxnQuery selects transactions: TIDs in [Start, Stop], newest or oldest
// first, Offset and Limit applied after ordering.
type TxnQuery struct {
	Start, Stop   uint64
	NewestFirst   bool
	SkipPacked    bool
	Offset, Limit int
}

// LoadConn reads through a snapshot. Between Begin and End every read sees one
// consistent state of the database; outside, each read sees the latest.
type LoadConn interface {
	Begin(ctx context.Context) error
	End()
	// LastTID is the newest committed tid, 0 for an empty database.
	LastTID(ctx context.Context) (uint64, error)
	// Changes lists objects whose current tid is in (after, upTo], at most limit rows.
	Changes(ctx context.Context, after, upTo uint64, limit int) ([]Change, error)
	// Current returns the current revisions of those oids that exist.
	Current(ctx context.Context, oids []uint64) ([]Revision, error)
	// Revision returns the state of oid written by tid.
	Revision(ctx context.Context, oid, tid uint64) (state []byte, found bool, err error)
	// Before returns the newest revision of oid with tid < before and the tid of
	// the revision after it (0 if current). found is false when no revision
	// precedes before; exists tells whether the oid has any revision at all.
	Before(ctx context.Context, oid, before uint64) (rev Revision, end uint64, found, exists bool, err error)
	History(ctx context.Context, oid uint64, size int) ([]HistoryEntry, error)
	Transactions(ctx context.Context, q TxnQuery) ([]TxnInfo, error)
	// TxnRecords returns the revisions written by tid, in oid order.
	TxnRecords(ctx context.Context, tid uint64) ([]Revision, error)
	// CurrentFrom returns current revisions with oid >= start in oid order.
	CurrentFrom(ctx context.Context, start uint64, limit int) ([]Revision, error)
	Close() error
}

// SnapshotPoller is implemented by load connections that can start a
// snapshot and list what changed in one round trip.
type SnapshotPoller interface {
	// BeginPoll starts a snapshot (as Begin) and returns its newest tid and
	// the objects whose current tid is above after, at most limit rows.
	BeginPoll(ctx context.Context, after uint64, limit int) (last uint64, changes []Change, err error)
}

// SnapshotLoader is implemented by load connections that can also read one
// object's current revision in the round trip that starts a snapshot.
type SnapshotLoader interface {
	// BeginPollLoad is BeginPoll that also returns oid's current revision in
	// the new snapshot; found is false when the object has no row.
	BeginPollLoad(ctx context.Context, after uint64, limit int, oid uint64) (last uint64, changes []Change,
		rev Revision, found bool, err error)
}

// LateEnder is implemented by load connections whose Begin (and BeginPoll)
// ends a snapshot still open in the same round trip that starts the new one.
// The instance may then leave End out between them: ZODB polls right after
// a transaction ends, and one round trip does for both.
type LateEnder interface {
	EndsWithNextBegin()
}

// Write is one object change sent at commit.
type Write struct {
	OID     uint64
	PrevTID uint64 // the object's current tid at lock time, 0 if new
	State   []byte // nil: deletion (history-free) or a revision without state (history-preserving)
	MD5     []byte // hex MD5 of State, history-preserving only; nil with State
	// Blob: a blob was staged for this object (BlobStager.StageBlobs); Move
	// files it under the transaction's tid.
	Blob bool
	// BlobFrom, when not 0, is the tid of an earlier revision whose blob this
	// one carries (undo brings a revision back): Move copies its blob_chunk rows.
	BlobFrom uint64
}

// BlobReader is implemented by load connections of dialects that keep blobs.
type BlobReader interface {
	// ReadBlob writes the blob oid committed in tid to w chunk by chunk,
	// never holding it whole; found is false when the database has no chunk of it.
	ReadBlob(ctx context.Context, oid, tid uint64, w io.Writer) (found bool, err error)
}

// Embedded is implemented by dialects whose database runs inside this
// process (SQLite): a read waits for no server, so the engine does not
// overlap file work with it.
type Embedded interface {
	Embedded()
}

// StagedBlob is a transaction's blob file for one object.
type StagedBlob struct {
	OID  uint64
	Path string
}

// BlobStager is implemented by store connections of dialects that keep blobs.
type BlobStager interface {
	// StageBlobs stores each file as its object's blob for the transaction in
	// progress, between BeginCommit and Move, before the commit lock where
	// the dialect can: a large file chunk by chunk, small ones several per
	// round trip. Move files them under the transaction's tid (in a
	// history-free database, in place of each object's older blob).
	StageBlobs(ctx context.Context, blobs []StagedBlob) error
}

// UndoItem describes one object of a transaction to undo.
type UndoItem struct {
	OID        uint64
	CurrentTID uint64
	CurrentMD5 []byte
	UndoneMD5  []byte
	PrevTID    uint64 // revision before the undone one, 0 if the undone one created the object
	PrevState  []byte
}

// StoreConn writes one transaction at a time.
type StoreConn interface {
	// BeginCommit starts the write transaction; LockObjects and Move run inside it.
	BeginCommit(ctx context.Context) error
	// LockObjects locks readCurrent oids shared and modified oids exclusively
	// (both sorted), and returns the current tid of each that exists.
	LockObjects(ctx context.Context, readCurrent, modified []uint64) (map[uint64]uint64, error)
	// States returns the current states of oids, read inside the write transaction.
	States(ctx context.Context, oids []uint64) (map[uint64]Revision, error)
	// LockCommit takes the commit lock and returns the newest committed tid
	// and the database server's clock; a zero now means the dialect has no
	// server clock and the engine uses its own.
	LockCommit(ctx context.Context) (last uint64, now time.Time, err error)
	// Move writes the transaction: its metadata (history-preserving) and its writes.
	Move(ctx context.Context, tid uint64, meta TxnInfo, writes []Write) error
	Commit(ctx context.Context) error
	Rollback()
	// UndoPlan reads, from the latest committed state, what undoing tid means.
	// found is false when no such transaction exists (or it was packed).
	UndoPlan(ctx context.Context, tid uint64) (items []UndoItem, found bool, err error)
	Close() error
}
