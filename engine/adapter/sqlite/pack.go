package sqlite

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlpack"
)

// flavor: the SQLite built into go-sqlite3 binds up to 32766 values a statement.
var flavor = &adapter.Flavor{True: "1", False: "0", Txn: `"transaction"`, Empty: "DELETE FROM", MaxParams: 32766}

// packInsertRows: the most rows of one prepared insert (bound values stay
// within SQLite's 32766).
const packInsertRows = 4096

// OpenPack: RelStorage's SQLite adapter has no pack lock; one pack at a time
// is kept by an exclusive flock on pack.lock in the data-dir, which ends
// with the process if it dies. The write transaction (BEGIN IMMEDIATE)
// holds SQLite's one write lock, which is the commit lock.
func (d *Dialect) OpenPack(ctx context.Context) (adapter.PackSession, error) {
	if d.writeDB == nil {
		return nil, errors.New("sqlite3: the storage is read-only")
	}
	f, err := d.packLock()
	if err != nil {
		return nil, err
	}
	s, err := sqlpack.Open(ctx, flavor, d.readDB, d.writeDB, nil, f.Close)
	if err != nil {
		f.Close()
		return nil, err
	}
	s.PrepareInserts(packInsertRows)
	return s, nil
}

// packLock takes the pack lock without waiting (ErrPackLocked); closing the
// file releases it.
func (d *Dialect) packLock() (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(d.dir, "pack.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("sqlite3: pack lock: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("sqlite3: %w", adapter.ErrPackLocked)
		}
		return nil, fmt.Errorf("sqlite3: pack lock: %w", err)
	}
	return f, nil
}
