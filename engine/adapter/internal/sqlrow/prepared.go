// Statements prepared on a driver connection (the dc of sql.Conn.Raw) and
// run with the driver's own values: database/sql neither parses them again
// nor converts every argument.

package sqlrow

import (
	"context"
	"database/sql/driver"
	"errors"
)

// Prepare prepares text on dc.
func Prepare(ctx context.Context, dc any, text string) (driver.Stmt, error) {
	p, ok := dc.(driver.ConnPrepareContext)
	if !ok {
		return nil, errors.New("the driver's connections cannot prepare with a context")
	}
	return p.PrepareContext(ctx, text)
}

// ExecStmt runs st, prepared by Prepare, with args.
func ExecStmt(ctx context.Context, st driver.Stmt, args []driver.NamedValue) error {
	ex, ok := st.(driver.StmtExecContext)
	if !ok {
		return errors.New("the driver's statements cannot execute with a context")
	}
	_, err := ex.ExecContext(ctx, args)
	return err
}
