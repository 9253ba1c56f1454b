package pack

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// db runs the pack's statements on one connection of the session, spelled
// for its database.
type db struct {
	sql adapter.SQL
	f   *adapter.Flavor
}

// rewrite spells a statement written with ? and {TRUE}, {FALSE}, {TXN},
// {EMPTY} for the database.
func rewrite(f *adapter.Flavor, q string) string {
	q = strings.NewReplacer("{TRUE}", f.True, "{FALSE}", f.False, "{TXN}", f.Txn,
		"{EMPTY}", f.Empty).Replace(q)
	if f.Numbered == "" || !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r != '?' {
			b.WriteRune(r)
			continue
		}
		n++
		b.WriteString(f.Numbered)
		b.WriteString(strconv.Itoa(n))
	}
	return b.String()
}

func (d db) exec(ctx context.Context, q string, args ...any) (int64, error) {
	return d.sql.Exec(ctx, rewrite(d.f, q), args...)
}

func (d db) query(ctx context.Context, q string, args ...any) (adapter.Rows, error) {
	return d.sql.Query(ctx, rewrite(d.f, q), args...)
}

// each runs q and calls row for every row, stopping at the first error.
func (d db) each(ctx context.Context, q string, args []any, row func(adapter.Rows) error) error {
	rows, err := d.query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := row(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// int64 reads a single number; a NULL reads as 0.
func (d db) int64(ctx context.Context, q string, args ...any) (int64, error) {
	var v *int64
	err := d.each(ctx, q, args, func(r adapter.Rows) error { return r.Scan(&v) })
	if err != nil || v == nil {
		return 0, err
	}
	return *v, nil
}

// int64s reads a column of numbers.
func (d db) int64s(ctx context.Context, q string, args ...any) ([]int64, error) {
	var out []int64
	err := d.each(ctx, q, args, func(r adapter.Rows) error {
		var v int64
		err := r.Scan(&v)
		out = append(out, v)
		return err
	})
	return out, err
}

// insert writes rows of integers into table, len(cols) values a row, in
// the database's fastest way: COPY, or as many rows per statement as it binds.
func (d db) insert(ctx context.Context, table string, cols []string, values []int64) error {
	if len(values) == 0 {
		return nil
	}
	if bulk, ok := d.sql.(adapter.BulkInserter); ok {
		err := bulk.InsertInt64s(ctx, table, cols, values)
		if !errors.Is(err, adapter.ErrBulkRefused) {
			return err
		}
	}
	return d.insertWith(ctx, table, cols, values)
}

// insertWith writes rows of integers into table as multi-row INSERTs;
// fixed, pairs of a column and its literal (spelled as in rewrite), gives
// columns the same value in every row.
func (d db) insertWith(ctx context.Context, table string, cols []string, values []int64, fixed ...string) error {
	per := max(1, d.f.MaxParams/len(cols))
	for len(values) > 0 {
		n := min(per, len(values)/len(cols))
		if _, err := d.exec(ctx, insertRows(d.f, table, cols, n, fixed...), anys(values[:n*len(cols)])...); err != nil {
			return err
		}
		values = values[n*len(cols):]
	}
	return nil
}

// inBatches runs q, whose "(?)" list stands for oids, for at most
// maxIn oids at a time; the other arguments come first.
func (d db) inBatches(ctx context.Context, q string, oids []int64, args ...any) (int64, error) {
	var total int64
	per := min(maxIn, d.f.MaxParams-len(args))
	for len(oids) > 0 {
		n := min(per, len(oids))
		all := append(append([]any{}, args...), anys(oids[:n])...)
		c, err := d.exec(ctx, strings.Replace(q, "(?)", "("+placeholders(n)+")", 1), all...)
		if err != nil {
			return total, err
		}
		total += c
		oids = oids[n:]
	}
	return total, nil
}

// onRevs runs head (a DELETE or UPDATE of table, up to its WHERE) on the
// rows that are the revisions revs, maxIn/2 at a time.
func (d db) onRevs(ctx context.Context, head string, revs []Rev) (int64, error) {
	var total int64
	for len(revs) > 0 {
		n := min(len(revs), maxIn/2)
		args := make([]any, 0, 2*n)
		for _, r := range revs[:n] {
			args = append(args, int64(r.OID), int64(r.TID))
		}
		q := head + ` WHERE ` + strings.TrimSuffix(strings.Repeat(`(zoid = ? AND tid = ?) OR `, n), ` OR `)
		c, err := d.exec(ctx, q, args...)
		if err != nil {
			return total, err
		}
		total += c
		revs = revs[n:]
	}
	return total, nil
}

// deletePlanned deletes the rows of table whose (zoid, tid) pack_state
// lists with a tid in [lo, hi], driven by pack_state's key.
func (d db) deletePlanned(ctx context.Context, table string, lo, hi int64) (int64, error) {
	q := `DELETE FROM ` + table + ` WHERE (zoid, tid) IN
		(SELECT zoid, tid FROM pack_state WHERE tid BETWEEN ? AND ?)`
	if d.f.JoinDelete {
		q = `DELETE t FROM ` + table + ` t JOIN pack_state s ON s.zoid = t.zoid AND s.tid = t.tid
			WHERE s.tid BETWEEN ? AND ?`
	}
	return d.exec(ctx, q, lo, hi)
}

// empty empties tables, outside any transaction.
func (d db) empty(ctx context.Context, tables ...string) error {
	for _, t := range tables {
		if _, err := d.exec(ctx, `{EMPTY} `+t); err != nil {
			return fmt.Errorf("empty %s: %w", t, err)
		}
	}
	return nil
}

// maxIn bounds an IN list (Oracle refuses more than 1000 values).
const maxIn = 500

// insertRows is an INSERT of rows rows of len(cols) values; fixed, pairs
// of a column and its literal, adds columns with the same value in every row.
func insertRows(f *adapter.Flavor, table string, cols []string, rows int, fixed ...string) string {
	names, values := slices.Clone(cols), []string{placeholders(len(cols))}
	for i := 0; i+1 < len(fixed); i += 2 {
		names, values = append(names, fixed[i]), append(values, fixed[i+1])
	}
	row := "(" + strings.Join(values, ", ") + ")"
	list := " (" + strings.Join(names, ", ") + ")"
	var b strings.Builder
	if f.InsertAll {
		b.WriteString("INSERT ALL")
		for i := 0; i < rows; i++ {
			b.WriteString(" INTO " + table + list + " VALUES " + row)
		}
		b.WriteString(" SELECT 1 FROM DUAL")
		return b.String()
	}
	b.WriteString("INSERT INTO " + table + list + " VALUES ")
	for i := 0; i < rows; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(row)
	}
	return b.String()
}

func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}

func anys(v []int64) []any {
	out := make([]any, len(v))
	for i, x := range v {
		out[i] = x
	}
	return out
}
