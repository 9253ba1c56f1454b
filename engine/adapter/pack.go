package adapter

import (
	"context"
	"errors"
)

// ErrPackLocked is returned (wrapped) by OpenPack when another pack (ours or
// RelStorage's zodbpack) holds the pack lock.
var ErrPackLocked = errors.New("another pack is running (the pack lock is held)")

// Packer is implemented by dialects that pack. The pack algorithm lives in
// engine/pack and is written once, in SQL every database runs; a dialect
// supplies connections, its locks and the few spellings that differ.
type Packer interface {
	// OpenPack takes RelStorage's pack lock without waiting (ErrPackLocked
	// when it is held) and returns a session holding it until Close.
	OpenPack(ctx context.Context) (PackSession, error)
}

// PackSession is the connections of one pack. Read streams long queries
// (each statement sees one consistent state); Write runs the changes, in a
// transaction between Begin and Commit, autocommitted outside one.
type PackSession interface {
	Flavor() *Flavor
	Read() SQL
	Write() SQL
	Begin(ctx context.Context) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context)
	// LockCommit takes the commit lock writers take, inside the write
	// transaction, until Commit or Rollback: no transaction commits while it
	// is held.
	LockCommit(ctx context.Context) error
	// Close releases the pack lock and closes every connection of the session.
	Close() error
}

// PackWorkers is implemented by sessions whose database can take two
// writers at once: a worker is one more write connection, for the
// removals that need no commit lock, beside the session's own.
type PackWorkers interface {
	Worker(ctx context.Context) (PackWorker, error)
}

// PackWorker is a write connection of a pack session: its own
// transactions, between Begin and Commit; Close ends it (not the session).
type PackWorker interface {
	Write() SQL
	Begin(ctx context.Context) error
	Commit(ctx context.Context) error
	Rollback(ctx context.Context)
	Close() error
}

// SQL runs statements written with ? placeholders and the Flavor's markers.
type SQL interface {
	Exec(ctx context.Context, query string, args ...any) (int64, error)
	Query(ctx context.Context, query string, args ...any) (Rows, error)
}

// BulkInserter is implemented by the SQL of databases that insert many
// rows faster than multi-row INSERT statements do (PostgreSQL's COPY,
// MySQL's LOAD DATA LOCAL INFILE).
type BulkInserter interface {
	// InsertInt64s inserts len(values)/len(cols) rows of integers; an error
	// that is ErrBulkRefused inserted none, and asks for INSERT statements.
	InsertInt64s(ctx context.Context, table string, cols []string, values []int64) error
}

// ErrBulkRefused: the server refused a BulkInserter's way (MySQL's LOAD
// DATA LOCAL INFILE with local_infile off).
var ErrBulkRefused = errors.New("the server refused the bulk insert")

// Rows is a streamed result.
type Rows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close()
}

// Flavor is how a database spells what SQL leaves open.
type Flavor struct {
	// Numbered placeholders: "$" gives $1, $2 (PostgreSQL), ":" gives :1, :2
	// (Oracle); "" leaves ? (MySQL, SQLite).
	Numbered string
	True     string // boolean literals of the packed/keep columns
	False    string
	Txn      string // the transaction table's name as a statement must spell it
	// Empty empties a table outside any transaction, as fast as the
	// database can (MySQL's and Oracle's TRUNCATE TABLE commits, so no
	// transaction may be open).
	Empty string
	// Analyze, when set, refreshes a table's statistics after a pack
	// ("ANALYZE", "ANALYZE TABLE"), as RelStorage does: the planner's and
	// the size estimates see the rows removed.
	Analyze string
	// InsertAll: multi-row inserts are INSERT ALL ... SELECT 1 FROM DUAL (Oracle).
	InsertAll bool
	// MaxParams bounds the values bound to one statement.
	MaxParams int
	// JoinDelete: rows matching another table's are deleted with a join,
	// DELETE t FROM t JOIN ... (MySQL, whose optimizer runs an IN (SELECT ...)
	// of a single-table DELETE once per row); otherwise with
	// WHERE (zoid, tid) IN (SELECT ...).
	JoinDelete bool
	// RowsFirst: writers lock the rows of the objects they change before the
	// commit lock (MySQL, Oracle), so a pack batch removes its rows first and
	// takes the commit lock last, in the same order. Otherwise (PostgreSQL's
	// advisory locks, SQLite's one write lock) it takes the commit lock first.
	RowsFirst bool
	// ByTID, when set, follows object_state's name in a FROM clause that
	// reads it in tid order, so that it is read through its tid index as
	// the rows are sent (MySQL's FORCE INDEX): the planner would otherwise
	// sort the whole table, states included, before the first row.
	ByTID string
}
