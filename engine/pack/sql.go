package pack

import (
	"context"
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
// {TRUNCATE} for the database.
func rewrite(f *adapter.Flavor, q string) string {
	q = strings.NewReplacer("{TRUE}", f.True, "{FALSE}", f.False, "{TXN}", f.Txn,
		"{TRUNCATE}", f.Truncate).Replace(q)
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

// insert writes rows (each of len(cols) values) into table, as many per
// statement as the database binds.
func (d db) insert(ctx context.Context, table string, cols []string, rows [][]any) error {
	per := max(1, d.f.MaxParams/len(cols))
	for len(rows) > 0 {
		n := min(per, len(rows))
		args := make([]any, 0, n*len(cols))
		for _, r := range rows[:n] {
			args = append(args, r...)
		}
		if _, err := d.exec(ctx, insertRows(d.f, table, cols, n), args...); err != nil {
			return err
		}
		rows = rows[n:]
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

// maxIn bounds an IN list (Oracle refuses more than 1000 values).
const maxIn = 500

func insertRows(f *adapter.Flavor, table string, cols []string, rows int) string {
	row := "(" + placeholders(len(cols)) + ")"
	list := " (" + strings.Join(cols, ", ") + ")"
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
