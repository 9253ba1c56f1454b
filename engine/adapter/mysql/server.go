package mysql

import (
	"fmt"
	"strconv"
	"strings"
)

// server is what the dialect detected at open. MySQL 8 and MariaDB differ
// in the syntax this dialect needs; everything else is common.
type server struct {
	version string
	mariaDB bool
	v       [3]int
}

// parseServer reads SELECT version(), e.g. "8.0.36", "8.4.0-log" or
// "10.11.6-MariaDB-0+deb12u1", and refuses servers without row-lock NOWAIT.
func parseServer(version string) (server, error) {
	s := server{version: version, mariaDB: strings.Contains(strings.ToLower(version), "mariadb")}
	num := version
	if i := strings.IndexFunc(num, func(r rune) bool { return r != '.' && (r < '0' || r > '9') }); i >= 0 {
		num = num[:i]
	}
	parts := strings.Split(num, ".")
	for i := 0; i < len(parts) && i < 3; i++ {
		n, err := strconv.Atoi(parts[i])
		if err != nil {
			return s, fmt.Errorf("cannot read the server version %q", version)
		}
		s.v[i] = n
	}
	if len(parts) < 2 {
		return s, fmt.Errorf("cannot read the server version %q", version)
	}
	if s.mariaDB && s.before(10, 3, 0) {
		return s, fmt.Errorf("MariaDB %s is too old: GoRelStorage needs 10.3 or later (NOWAIT row locks)", version)
	}
	if !s.mariaDB && s.before(8, 0, 1) {
		return s, fmt.Errorf("MySQL %s is too old: GoRelStorage needs 8.0 or later (FOR SHARE NOWAIT)", version)
	}
	return s, nil
}

func (s server) before(major, minor, patch int) bool {
	return s.v[0] < major || (s.v[0] == major && (s.v[1] < minor || (s.v[1] == minor && s.v[2] < patch)))
}

// shareNowait is the clause that takes shared row locks without waiting:
// MySQL 8 has FOR SHARE NOWAIT, MariaDB only LOCK IN SHARE MODE NOWAIT.
func (s server) shareNowait() string {
	if s.mariaDB {
		return "LOCK IN SHARE MODE NOWAIT"
	}
	return "FOR SHARE NOWAIT"
}

// upsertAlias tells whether INSERT ... ON DUPLICATE KEY UPDATE names the new
// row with a row alias (MySQL 8.0.19+, where VALUES() is deprecated from
// 8.0.20) rather than with VALUES(col) (MariaDB, older MySQL).
func (s server) upsertAlias() bool {
	return !s.mariaDB && !s.before(8, 0, 19)
}

// newValue names column col of the row being inserted, in ON DUPLICATE KEY UPDATE.
func (s server) newValue(col string) string {
	if s.upsertAlias() {
		return "new." + col
	}
	return "VALUES(" + col + ")"
}

// rowAlias follows the VALUES list of an upsert.
func (s server) rowAlias() string {
	if s.upsertAlias() {
		return " AS new"
	}
	return ""
}

// insertReturning tells whether INSERT ... RETURNING exists (MariaDB 10.5+):
// a multi-row insert then names each row's AUTO_INCREMENT value itself.
func (s server) insertReturning() bool {
	return s.mariaDB && !s.before(10, 5, 0)
}

func (s server) String() string {
	name := "MySQL"
	if s.mariaDB {
		name = "MariaDB"
	}
	return name + " " + s.version
}
