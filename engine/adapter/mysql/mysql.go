// Package mysql is the MySQL and MariaDB dialect, built on
// go-sql-driver/mysql. It is data- and lock-compatible with RelStorage 4.x:
// the same schema, the same InnoDB row locks (the commit_row_lock row for
// the commit, FOR UPDATE on each modified object in oid order, shared
// NOWAIT locks for readCurrent), the same new_oid table (one AUTO_INCREMENT
// value = 16 OIDs) and the same tid rule under the commit lock, so
// RelStorage and GoRelStorage processes can commit to one database at once.
// It never calls RelStorage's stored procedures.
//
// Round trips are the cost that matters: the statements of one step go to
// the server as one multi-statement query (parameters interpolated by the
// driver, so nothing is prepared), and rows go as multi-row INSERTs, so a
// commit of any size takes the same few round trips as long as it fits in
// max_allowed_packet.
package mysql

import (
	"cmp"
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/user"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/netconn"
	"github.com/gorelstorage/gorelstorage/engine/adapter/internal/schema"
)

func init() {
	adapter.Register("mysql", Open)
}

// Options is the adapter section of the engine's options: RelStorage's
// <mysql> keys, which are MySQLdb's connect() arguments.
type Options struct {
	Host             string `json:"host"`
	User             string `json:"user"`
	Passwd           string `json:"passwd"`
	DB               string `json:"db"`
	Port             int    `json:"port"`
	UnixSocket       string `json:"unix_socket"`
	ConnectTimeout   int    `json:"connect_timeout"` // seconds
	Compress         bool   `json:"compress"`
	InitCommand      string `json:"init_command"`
	ReadDefaultFile  string `json:"read_default_file"`
	ReadDefaultGroup string `json:"read_default_group"`
	Driver           string `json:"driver"`
}

// Drivers RelStorage knows for MySQL. Any of them (or "auto") selects go-sql-driver.
var knownDrivers = map[string]bool{"": true, "auto": true, "go-sql-driver": true,
	"mysqlclient": true, "gevent mysqlclient": true, "PyMySQL": true, "C MySQL Connector/Python": true,
	"Py MySQL Connector/Python": true}

// defaultConnectTimeout bounds a connection attempt when none is configured.
const defaultConnectTimeout = 15 * time.Second

// maxIdle is the number of idle connections kept per pool.
const maxIdle = 16

// Default socket paths of Debian, MySQL's packages and macOS, as
// libmysqlclient looks for them when the host is localhost.
var defaultSockets = []string{"/run/mysqld/mysqld.sock", "/var/run/mysqld/mysqld.sock", "/tmp/mysql.sock"}

type dialect struct {
	settings adapter.Settings
	describe string
	server   server
	q        queries

	load  *sql.DB // REPEATABLE READ, snapshots started READ ONLY
	store *sql.DB // READ COMMITTED, innodb_lock_wait_timeout = commit-lock-timeout
	// storeInit is the store connections' session settings.
	storeInit string
	// replicas is the store pool's connector with replica-conf, nil without.
	replicas *replicaConnector
	// packRead is the pack's read pool: load, or with replica lists a pool
	// of load connections to the servers store connections use.
	packRead *sql.DB

	// maxQuery is the longest query text the server accepts (max_allowed_packet less a margin).
	maxQuery int
	// stmts are the bulk statements prepared on store connections (bulk.go).
	stmts stmtCache
	// oidsSinceCollect counts new_oid values this process took, for garbage collection.
	oidsSinceCollect atomic.Int64
	// noLocalInfile: the server refused LOAD DATA LOCAL INFILE (load_data.go).
	noLocalInfile atomic.Bool
}

// Open connects to the database, checks (or creates) the schema and returns the dialect.
func Open(ctx context.Context, s adapter.Settings) (adapter.Dialect, error) {
	var o Options
	if err := adapter.DecodeOptions("mysql", s.Options, &o); err != nil {
		return nil, err
	}
	return open(ctx, s, o, nil)
}

// config turns RelStorage's keys into the driver's configuration, reading
// an option file first when one is named (its values are defaults the keys
// override, as in libmysqlclient).
func config(o Options) (*mysql.Config, error) {
	if !knownDrivers[o.Driver] {
		return nil, adapter.ConfigError("mysql driver %q is not available; use auto (go-sql-driver/mysql)", o.Driver)
	}
	if o.ReadDefaultFile != "" || o.ReadDefaultGroup != "" {
		file, err := readOptionFile(o.ReadDefaultFile, o.ReadDefaultGroup)
		if err != nil {
			return nil, err
		}
		o = file.under(o)
	}
	if o.DB == "" {
		return nil, adapter.ConfigError("mysql: no database given (db)")
	}
	if o.Port < 0 || o.Port > 65535 {
		return nil, adapter.ConfigError("mysql: port %d is out of range", o.Port)
	}
	if o.ConnectTimeout < 0 {
		return nil, adapter.ConfigError("mysql: connect_timeout %d is negative", o.ConnectTimeout)
	}
	cfg := mysql.NewConfig()
	cfg.User = o.User
	if cfg.User == "" {
		if u, err := user.Current(); err == nil {
			cfg.User = u.Username
		}
	}
	cfg.Passwd = o.Passwd
	cfg.DBName = o.DB
	port := o.Port
	if port == 0 {
		port = 3306
	}
	switch {
	case o.UnixSocket != "":
		cfg.Net, cfg.Addr = "unix", o.UnixSocket
	case o.Host == "" || o.Host == "localhost":
		// libmysqlclient's rule: localhost means the default socket.
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort("localhost", strconv.Itoa(port))
		for _, s := range defaultSockets {
			if fi, err := os.Stat(s); err == nil && fi.Mode()&os.ModeSocket != 0 {
				cfg.Net, cfg.Addr = "unix", s
				break
			}
		}
	default:
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(o.Host, strconv.Itoa(port))
	}
	cfg.Timeout = defaultConnectTimeout
	if o.ConnectTimeout > 0 {
		cfg.Timeout = time.Duration(o.ConnectTimeout) * time.Second
	}
	cfg.InterpolateParams = true
	cfg.MultiStatements = true
	cfg.MaxAllowedPacket = 0 // ask the server
	cfg.Loc = time.UTC
	// The driver logs broken connections to stderr; the engine reports them.
	cfg.Logger = mysql.Logger(log.New(io.Discard, "", 0))
	if o.Compress {
		if err := cfg.Apply(mysql.EnableCompression(true)); err != nil {
			return nil, adapter.ConfigError("mysql compress: %v", err)
		}
	}
	return cfg, nil
}

// open opens the dialect; countRoundTrip, when set (tests), is called once per round trip.
func open(ctx context.Context, s adapter.Settings, o Options, countRoundTrip func()) (*dialect, error) {
	cfg, err := config(o)
	if err != nil {
		return nil, err
	}
	cfg.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := netconn.Dial(ctx, network, addr)
		if err != nil || countRoundTrip == nil {
			return c, err
		}
		return netconn.CountRoundTrips(c, countRoundTrip), nil
	}
	d := &dialect{settings: s}
	var where string
	if cfg.Net == "unix" {
		where = "unix_socket=" + cfg.Addr
	} else {
		host, port, _ := net.SplitHostPort(cfg.Addr)
		where = "host=" + host + " port=" + port
	}
	d.describe = fmt.Sprintf("mysql:%s db=%s user=%s", where, cfg.DBName, cfg.User)

	timeout := s.LockTimeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	// innodb_lock_wait_timeout counts whole seconds, at least 1.
	waitSeconds := max(1, int((timeout+time.Second-1)/time.Second))
	// character_set_client = binary: the server takes the statements' bytes
	// and parameters as they are. Under a text character set it reads every
	// string parameter (pickles, blob chunks) as text in that set, at about
	// 80 MB/s on MariaDB 10.11 against 500-600 MB/s as binary, measured with
	// SELECT LENGTH(?) of 1 MB; the columns they go to are binary anyway.
	common := `SET time_zone = '+00:00', character_set_client = binary, character_set_results = binary,
		sql_mode = CONCAT_WS(',', NULLIF(@@sql_mode, ''), 'ANSI_QUOTES')`
	if o.InitCommand != "" {
		common = o.InitCommand + ";\n" + common
	}
	loadInit := common + `; SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ`
	storeInit := common + fmt.Sprintf(`, innodb_lock_wait_timeout = %d;
		SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED`, waitSeconds)
	d.storeInit = storeInit
	// replica-conf for both pools, ro-replica-conf instead for the load pool;
	// each pool follows its own list (a load connection may use a replica, a
	// store one only a server that takes writes). The configured host and
	// socket are not used then.
	var load, store driver.Connector
	if load, err = d.connector(cfg, loadInit, cmp.Or(s.ROReplicaConf, s.ReplicaConf), false); err != nil {
		return nil, err
	}
	if store, err = d.connector(cfg, storeInit, s.ReplicaConf, true); err != nil {
		return nil, err
	}
	if rc, ok := store.(*replicaConnector); ok {
		d.replicas = rc
		d.describe = fmt.Sprintf("mysql:replica-conf=%s db=%s user=%s", rc.List.Path(), cfg.DBName, cfg.User)
	}
	// A pack reads what it removes on the server it removes it from, never a
	// replica that may lag: with lists, the store's choice with the load's settings.
	packRead := load
	if s.ReplicaConf != "" || s.ROReplicaConf != "" {
		if packRead, err = d.connector(cfg, loadInit, s.ReplicaConf, true); err != nil {
			return nil, err
		}
	}
	d.load, d.store = newPool(load), newPool(store)
	d.packRead = d.load
	if packRead != load {
		d.packRead = newPool(packRead)
	}
	if err := d.setUp(ctx); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// connector makes the connector of a pool whose connections run init once,
// in one round trip: to the configured server, or with a replica list (path)
// to its choice.
func (d *dialect) connector(cfg *mysql.Config, init, path string, writes bool) (driver.Connector, error) {
	if path != "" {
		port := 3306
		if _, p, err := net.SplitHostPort(cfg.Addr); err == nil && cfg.Net == "tcp" {
			port, _ = strconv.Atoi(p)
		}
		return newReplicaConnector(path, d.settings.ReplicaTimeout, port, cfg, init, writes)
	}
	base, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, adapter.ConfigError("mysql: %v", err)
	}
	return &connector{base: base, init: init}, nil
}

func newPool(c driver.Connector) *sql.DB {
	db := sql.OpenDB(c)
	db.SetMaxIdleConns(maxIdle)
	return db
}

// connector runs the session settings on each new connection.
type connector struct {
	base driver.Connector
	init string
}

func (c *connector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := conn.(driver.ExecerContext).ExecContext(ctx, c.init, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("session settings: %w", err)
	}
	return conn, nil
}

func (c *connector) Driver() driver.Driver { return c.base.Driver() }

// setUp reads what the server is and supports, then checks or creates the schema.
func (d *dialect) setUp(ctx context.Context) error {
	conn, err := d.store.Conn(ctx)
	if err != nil {
		return d.connectError(err)
	}
	defer conn.Close()
	var version string
	var packet int64
	if err := conn.QueryRowContext(ctx, `SELECT version(), @@max_allowed_packet`).Scan(&version, &packet); err != nil {
		return d.connectError(err)
	}
	if d.server, err = parseServer(version); err != nil {
		return fmt.Errorf("%s: %w", d.describe, err)
	}
	d.maxQuery = int(packet) - queryMargin
	d.q = newQueries(d.settings.KeepHistory, d.server)
	return d.prepareSchema(ctx, conn)
}

// queryMargin is room left in max_allowed_packet for the packet header and
// what the driver adds.
const queryMargin = 1024

func (d *dialect) connectError(err error) error {
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1045: // ER_ACCESS_DENIED_ERROR
			return adapter.ConfigError("%s: authentication failed: %v", d.describe, err)
		case 1049: // ER_BAD_DB_ERROR
			return adapter.ConfigError("%s: the database does not exist: %v", d.describe, err)
		case 1044: // ER_DBACCESS_DENIED_ERROR
			return adapter.ConfigError("%s: access to the database denied: %v", d.describe, err)
		}
	}
	return fmt.Errorf("%s: %w: %w", d.describe, adapter.ErrUnreachable, err)
}

func (d *dialect) Describe() string { return d.describe }

func (d *dialect) OpenLoad(ctx context.Context) (adapter.LoadConn, error) {
	c, err := d.load.Conn(ctx)
	if err != nil {
		return nil, d.connectError(err)
	}
	return &loadConn{d: d, session: session{d: d, db: d.load, conn: c, begin: sqlBeginLoad}}, nil
}

func (d *dialect) OpenStore(ctx context.Context) (adapter.StoreConn, error) {
	c, err := d.store.Conn(ctx)
	if err != nil {
		return nil, d.connectError(err)
	}
	return &storeConn{d: d, session: session{d: d, db: d.store, conn: c, begin: sqlBeginStore}}, nil
}

// withStore runs fn on a pooled store connection outside any transaction
// (autocommit), retrying on another connection when the pooled one turns
// out dead (the server restarted while it sat idle).
func (d *dialect) withStore(ctx context.Context, fn func(*sql.Conn) error) error {
	for attempt := 0; ; attempt++ {
		c, err := d.store.Conn(ctx)
		if err != nil {
			return d.connectError(err)
		}
		err = fn(c)
		c.Close()
		if err != nil && isDisconnect(err) && attempt <= maxIdle {
			continue
		}
		return d.wrap(err)
	}
}

// NewOIDs takes blocks new_oid values in one round trip and one transaction:
// value n stands for OIDs n*16-15 .. n*16. A multi-row insert's ids are
// consecutive only under some innodb_autoinc_lock_mode settings, so each
// value is read back as its own: on MariaDB 10.5+ one multi-row INSERT ...
// RETURNING, elsewhere a single-row INSERT and SELECT LAST_INSERT_ID() per
// value in one multi-statement query. InnoDB never hands an AUTO_INCREMENT
// value out twice, committed or not. Rows pile up, so after every 100,001
// values the process deletes older ones, as RelStorage does.
func (d *dialect) NewOIDs(ctx context.Context, blocks int) ([]uint64, error) {
	blocks = max(blocks, 1)
	values := make([]uint64, 0, blocks)
	err := d.withStore(ctx, func(c *sql.Conn) error {
		values = values[:0]
		err := d.readNewOIDs(ctx, c, blocks, &values)
		if err != nil && !isDisconnect(err) {
			// A statement failed: the ones after it, COMMIT among them, did not run.
			if _, rerr := c.ExecContext(context.Background(), "ROLLBACK"); rerr != nil {
				_ = c.Raw(func(any) error { return driver.ErrBadConn })
			}
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("allocate oids: %w", err)
	}
	if len(values) != blocks || slices.Contains(values, 0) {
		return nil, fmt.Errorf("allocate oids: the server returned %d new_oid values for %d inserts", len(values), blocks)
	}
	taken := d.oidsSinceCollect.Add(int64(blocks))
	if taken/oidCollectInterval != (taken-int64(blocks))/oidCollectInterval {
		// Best effort: a lock conflict with another allocator only delays it.
		oldest := slices.Min(values)
		_ = d.withStore(ctx, func(c *sql.Conn) error {
			_, err := c.ExecContext(ctx, `DELETE IGNORE FROM new_oid WHERE zoid < ? ORDER BY zoid LIMIT 1000`, oldest)
			return err
		})
	}
	return schema.OIDBlocks(values), nil
}

// readNewOIDs sends the query taking n new_oid values and appends them to values.
func (d *dialect) readNewOIDs(ctx context.Context, c *sql.Conn, n int, values *[]uint64) error {
	query, sets := "", n
	if d.server.insertReturning() {
		query, sets = "INSERT INTO new_oid VALUES ()"+strings.Repeat(", ()", n-1)+" RETURNING zoid", 1
	} else {
		const one = "INSERT INTO new_oid VALUES ();\nSELECT LAST_INSERT_ID();\n"
		query = sqlBeginStore + ";\n" + strings.Repeat(one, n) + "COMMIT"
	}
	rows, err := c.QueryContext(ctx, query)
	if err != nil {
		return err
	}
	defer rows.Close()
	r := newResultSets(rows)
	for range sets {
		err := r.next(func(rows *sql.Rows) error {
			var v int64
			if err := rows.Scan(&v); err != nil {
				return err
			}
			*values = append(*values, uint64(v))
			return nil
		})
		if err != nil {
			return err
		}
	}
	// COMMIT's result: an error there is reported by the remaining result sets.
	for rows.NextResultSet() {
	}
	if err := rows.Err(); err != nil {
		return err
	}
	return rows.Close()
}

const oidCollectInterval = 100001

// SetMinOID makes sure new_oid never issues a value covering oid again, as
// RelStorage's set_min_oid procedure does: nothing when the committed rows
// are already past it; otherwise take the next value and, if that is still
// below, insert the wanted value itself.
func (d *dialect) SetMinOID(ctx context.Context, oid uint64) error {
	n := int64((oid + 15) / 16)
	return d.withStore(ctx, func(c *sql.Conn) error {
		var top int64
		if err := c.QueryRowContext(ctx, `SELECT COALESCE(MAX(zoid), 0) FROM new_oid`).Scan(&top); err != nil {
			return err
		}
		if top >= n {
			return nil
		}
		res, err := c.ExecContext(ctx, `INSERT INTO new_oid VALUES ()`)
		if err != nil {
			return err
		}
		if top, err = res.LastInsertId(); err != nil {
			return err
		}
		if n > top {
			_, err = c.ExecContext(ctx, `INSERT IGNORE INTO new_oid (zoid) VALUES (?)`, n)
		}
		return err
	})
}

// Size counts the current objects, exactly while InnoDB's estimate is under
// a million rows (a count scans the whole index; above that the estimate is
// returned, as RelStorage always does), and sums the database's data and
// index bytes.
func (d *dialect) Size(ctx context.Context) (int64, int64, error) {
	var objects, bytes int64
	table := "current_object"
	if !d.settings.KeepHistory {
		table = "object_state"
	}
	err := d.withStore(ctx, func(c *sql.Conn) error {
		return c.QueryRowContext(ctx, `SELECT CASE WHEN est < 1000000 THEN (SELECT COUNT(*) FROM `+table+`) ELSE est END,
			bytes FROM (SELECT COALESCE(MAX(CASE WHEN table_name = ? THEN table_rows END), 0) AS est,
				COALESCE(SUM(data_length + index_length), 0) AS bytes
			FROM information_schema.tables WHERE table_schema = DATABASE()) e`, table).Scan(&objects, &bytes)
	})
	return objects, bytes, err
}

func (d *dialect) Close() error {
	d.load.Close()
	d.store.Close()
	d.stmts.clear()
	if d.packRead != nil && d.packRead != d.load {
		d.packRead.Close()
	}
	return nil
}

// CheckState refuses, when it is stored, a state the server could not
// receive: the INSERT carrying it would exceed max_allowed_packet.
func (d *dialect) CheckState(oid uint64, state []byte) error {
	// Written as a literal or escaped, a state at most doubles: only a state that
	// might not fit is measured.
	if 2*len(state)+len("_binary''")+rowOverhead <= d.maxQuery {
		return nil
	}
	if need := paramLen(state) + rowOverhead; need > d.maxQuery {
		return fmt.Errorf("oid %d: the object's state is %d bytes; %s accepts at most about %d "+
			"(max_allowed_packet is %d bytes; raise it on the server to store this object)",
			oid, len(state), d.describe, max(0, d.maxQuery-rowOverhead), d.maxQuery+queryMargin)
	}
	return nil
}

// Server errors the dialect classifies.
const (
	errLockWaitTimeout = 1205 // ER_LOCK_WAIT_TIMEOUT; MariaDB's NOWAIT failure too
	errLockDeadlock    = 1213 // ER_LOCK_DEADLOCK
	errLockNowait      = 3572 // ER_LOCK_NOWAIT (MySQL 8)
	errPacketTooLarge  = 1153 // ER_NET_PACKET_TOO_LARGE
)

// isDisconnect tells whether err means the connection is gone.
func isDisconnect(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, driver.ErrBadConn) || errors.Is(err, mysql.ErrInvalidConn) ||
		errors.Is(err, sql.ErrConnDone) || errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) {
		return true
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case 1053, 1077, 1078, 1079, 1080, 1927, 2006, 2013:
			// shutdown in progress, server gone away, connection killed, lost connection
			return true
		}
		return false
	}
	var netErr net.Error
	return errors.As(err, &netErr)
}

// wrap classifies a database error for the engine.
func (d *dialect) wrap(err error) error {
	if err == nil {
		return nil
	}
	if isDisconnect(err) {
		return fmt.Errorf("%s: %w: %v", d.describe, adapter.ErrDisconnected, err)
	}
	var myErr *mysql.MySQLError
	if errors.As(err, &myErr) {
		switch myErr.Number {
		case errLockWaitTimeout, errLockNowait:
			return fmt.Errorf("%w: %v", adapter.ErrLockTimeout, err)
		case errLockDeadlock:
			return fmt.Errorf("%w: %v", adapter.ErrDeadlock, err)
		}
	}
	return err
}
