package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
)

// checkpointer copies a big commit's pages from the WAL into the database
// in the background. SQLite checkpoints in the COMMIT that takes the WAL past
// wal_autocheckpoint pages: the committing thread writes the pages a second
// time and waits for two fsyncs (1,000 blobs of 50 kB, four runs alternating:
// tpc_finish 0.30-0.38 s so, 0.14-0.22 s with this). A commit that writes at
// least that many pages' worth of states and blobs commits with automatic
// checkpoints off, then has this goroutine run a PASSIVE checkpoint, which
// neither waits for nor stops readers and writers. Smaller commits leave
// checkpoints to SQLite, which takes them when the WAL is long enough, as
// before. A process that dies first leaves the WAL, which the next
// connection reads as SQLite always does; Close stops the goroutine before
// the connections close (the last one checkpoints).
type checkpointer struct {
	db    *sql.DB // the write pool: a checkpoint needs a writable connection
	pages int     // wal_autocheckpoint
	big   int64   // the bytes a commit writes to be checkpointed here: pages * page_size

	kick chan struct{}
	stop chan struct{}
	done chan struct{}
	once sync.Once
	busy sync.Mutex // held while a checkpoint runs
}

// newCheckpointer starts the checkpointer of db, or returns nil when its
// connections do not checkpoint automatically (wal_autocheckpoint 0): then
// nothing is changed.
func newCheckpointer(ctx context.Context, db *sql.DB) (*checkpointer, error) {
	var pages, pageSize int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_autocheckpoint").Scan(&pages); err != nil {
		return nil, fmt.Errorf("sqlite3: read wal_autocheckpoint: %w", err)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA page_size").Scan(&pageSize); err != nil {
		return nil, fmt.Errorf("sqlite3: read page_size: %w", err)
	}
	if pages <= 0 {
		return nil, nil
	}
	k := &checkpointer{db: db, pages: pages, big: int64(pages) * int64(pageSize),
		kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go k.run()
	return k, nil
}

func (k *checkpointer) run() {
	defer close(k.done)
	for {
		select {
		case <-k.stop:
			return
		case <-k.kick:
		}
		// Busy (another connection is checkpointing) or failed: the next
		// big commit, SQLite's automatic checkpoints, or the last connection's
		// close checkpoint what is left.
		k.busy.Lock()
		k.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		k.busy.Unlock()
	}
}

// commit runs COMMIT on conn, which wrote about written bytes: without an
// automatic checkpoint, then asks for one in the background, when that is
// at least a checkpoint's worth of pages.
func (k *checkpointer) commit(ctx context.Context, conn *sql.Conn, written int64) error {
	if k == nil || written < k.big {
		_, err := conn.ExecContext(ctx, "COMMIT")
		return err
	}
	if _, err := conn.ExecContext(ctx, "PRAGMA wal_autocheckpoint = 0"); err != nil {
		_, err = conn.ExecContext(ctx, "COMMIT")
		return err
	}
	// The pool's other users (pack, zap) checkpoint as SQLite does.
	defer conn.ExecContext(context.Background(), fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", k.pages))
	if _, err := conn.ExecContext(ctx, "COMMIT"); err != nil {
		return err
	}
	select {
	case k.kick <- struct{}{}:
	default: // one is asked for already
	}
	return nil
}

// close stops the goroutine, waiting for a checkpoint it is running.
func (k *checkpointer) close() {
	if k == nil {
		return
	}
	k.once.Do(func() { close(k.stop) })
	<-k.done
}
