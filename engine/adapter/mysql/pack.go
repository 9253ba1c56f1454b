package mysql

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/sqlpack"
)

var flavor = &adapter.Flavor{True: "TRUE", False: "FALSE", Txn: "transaction", Empty: "TRUNCATE TABLE", Analyze: "ANALYZE TABLE",
	MaxParams: 60000, RowsFirst: true, JoinDelete: true}

// OpenPack takes RelStorage's pack lock (GET_LOCK on "<database>.pack", not
// waiting) on a connection of its own, held until Close. TRUNCATE would end
// the write transaction, so tables are emptied with DELETE.
func (d *dialect) OpenPack(ctx context.Context) (adapter.PackSession, error) {
	lock, err := d.store.Conn(ctx)
	if err != nil {
		return nil, d.wrap(err)
	}
	var got sql.NullInt64
	if err := lock.QueryRowContext(ctx, sqlPackLock).Scan(&got); err != nil {
		lock.Close()
		return nil, d.wrap(err)
	}
	if got.Int64 != 1 {
		lock.Close()
		return nil, fmt.Errorf("%s: %w", d.describe, adapter.ErrPackLocked)
	}
	release := func() error {
		_, err := lock.ExecContext(context.Background(), sqlPackRelease)
		lock.Close()
		return err
	}
	lockCommit := func(ctx context.Context, tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, sqlCommitLock)
		if err != nil {
			return d.wrap(err)
		}
		return rows.Close()
	}
	s, err := sqlpack.Open(ctx, flavor, d.load, d.store, lockCommit, release, d.loadData)
	if err != nil {
		release()
		return nil, d.wrap(err)
	}
	return s, nil
}

// loadData inserts rows with LOAD DATA LOCAL INFILE, several times faster
// than INSERT statements; a server that refuses it (local_infile off, the
// default of MySQL 8) gets INSERT statements instead.
func (d *dialect) loadData(ctx context.Context, q sqlpack.Querier, table string, cols []string, values []int64) error {
	if d.noLoadData.Load() {
		return adapter.ErrNoBulk
	}
	var buf bytes.Buffer
	w := len(cols)
	for i, v := range values {
		buf.WriteString(strconv.FormatInt(v, 10))
		if (i+1)%w == 0 {
			buf.WriteByte('\n')
		} else {
			buf.WriteByte(',')
		}
	}
	name := fmt.Sprintf("gorelstorage-pack-%d", loadDataSeq.Add(1))
	mysql.RegisterReaderHandler(name, func() io.Reader { return bytes.NewReader(buf.Bytes()) })
	defer mysql.DeregisterReaderHandler(name)
	_, err := q.ExecContext(ctx, `LOAD DATA LOCAL INFILE 'Reader::`+name+`' INTO TABLE `+table+
		` FIELDS TERMINATED BY ',' LINES TERMINATED BY '\n' (`+strings.Join(cols, ", ")+`)`)
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) && (myErr.Number == errLocalInfileRefused || myErr.Number == errLocalInfileDisabled) {
		d.noLoadData.Store(true)
		return adapter.ErrNoBulk
	}
	return d.wrap(err)
}

// loadDataSeq names each LOAD DATA's reader.
var loadDataSeq atomic.Int64

const (
	errLocalInfileRefused  = 1148 // ER_NOT_ALLOWED_COMMAND
	errLocalInfileDisabled = 3948 // ER_CLIENT_LOCAL_FILES_DISABLED (MySQL 8)
)
