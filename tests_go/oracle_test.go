package tests_go

import (
	"database/sql"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/godror/godror"
	"github.com/godror/godror/dsn"
	"github.com/stretchr/testify/require"

	"github.com/gorelstorage/gorelstorage/engine"
	_ "github.com/gorelstorage/gorelstorage/engine/adapter/oracle"
)

// oracleSkip is why the Oracle entries of the suites do not run here.
const oracleSkip = "GORELSTORAGE_ORACLE_DSN and GORELSTORAGE_ORACLE_USER are not set: no Oracle server to test " +
	"against (none can run on this machine; the README says how to run the suite against one)"

// oracleOptions reads GORELSTORAGE_ORACLE_DSN, _USER and _PASSWORD.
func oracleOptions() (map[string]any, bool) {
	d, u := os.Getenv("GORELSTORAGE_ORACLE_DSN"), os.Getenv("GORELSTORAGE_ORACLE_USER")
	if d == "" || u == "" {
		return nil, false
	}
	return map[string]any{"dsn": d, "user": u, "password": os.Getenv("GORELSTORAGE_ORACLE_PASSWORD")}, true
}

// oracleDatabase is the Oracle entry of databases(), when a server is
// configured. Each call of options drops the schema objects first.
func oracleDatabase() (database, bool) {
	opts, ok := oracleOptions()
	if !ok {
		return database{}, false
	}
	return database{
		name: "oracle",
		options: func(string) engine.Options {
			zapOracle(opts)
			raw, _ := json.Marshal(opts)
			o := engine.DefaultOptions()
			o.Adapter, o.AdapterOptions = "oracle", raw
			o.CommitLockTimeout = 10
			return o
		},
	}, true
}

// The objects RelStorage's Oracle schema has, in an order that drops cleanly.
var oracleObjects = [][2]string{
	{"VIEW", "current_object_state"}, {"PACKAGE", "relstorage_op"}, {"SEQUENCE", "zoid_seq"},
	{"TABLE", "temp_undo"}, {"TABLE", "temp_pack_visit"}, {"TABLE", "temp_blob_chunk"}, {"TABLE", "temp_store"},
	{"TABLE", "pack_state_tid"}, {"TABLE", "pack_state"}, {"TABLE", "pack_object"}, {"TABLE", "object_refs_added"},
	{"TABLE", "object_ref"}, {"TABLE", "current_object"}, {"TABLE", "blob_chunk"}, {"TABLE", "object_state"},
	{"TABLE", "transaction"}, {"TABLE", "pack_lock"}, {"TABLE", "commit_row_lock"},
}

// zapOracle drops the schema objects the test user owns.
func zapOracle(opts map[string]any) {
	var p dsn.ConnectionParams
	p.Username, p.Password = opts["user"].(string), dsn.NewPassword(opts["password"].(string))
	p.ConnectString, p.StandaloneConnection = opts["dsn"].(string), true
	db := sql.OpenDB(godror.NewConnector(p))
	defer db.Close()
	for _, o := range oracleObjects {
		var n int
		if err := db.QueryRow(`SELECT COUNT(*) FROM user_objects WHERE object_type = :1 AND object_name = :2`,
			o[0], strings.ToUpper(o[1])).Scan(&n); err != nil {
			panic(err)
		}
		if n == 0 {
			continue
		}
		stmt := "DROP " + o[0] + " " + o[1]
		if o[0] == "TABLE" {
			stmt += " CASCADE CONSTRAINTS PURGE"
		}
		if _, err := db.Exec(stmt); err != nil {
			panic(err)
		}
	}
}

// TestOracleSchemaServesRelStorage checks what RelStorage processes sharing
// an Oracle database rely on: GoRelStorage installs RelStorage's package
// and sequence, and a second process (a second storage) reads what the
// first committed. The shared engine suites run the rest against Oracle.
func TestOracleSchemaServesRelStorage(t *testing.T) {
	opts, ok := oracleOptions()
	if !ok {
		t.Skip(oracleSkip)
	}
	db, _ := oracleDatabase()
	o := db.options(t.TempDir())
	o.KeepHistory = true
	s := open(t, o)
	in := instance(t, s)
	oid, err := s.NewOID(ctx)
	require.NoError(t, err)
	tid := commit(t, in, nil, map[uint64]string{oid: "from the first storage"})

	var p dsn.ConnectionParams
	p.Username, p.Password = opts["user"].(string), dsn.NewPassword(opts["password"].(string))
	p.ConnectString, p.StandaloneConnection = opts["dsn"].(string), true
	conn := sql.OpenDB(godror.NewConnector(p))
	defer conn.Close()
	for _, object := range [][2]string{{"PACKAGE", "RELSTORAGE_OP"}, {"SEQUENCE", "ZOID_SEQ"}} {
		var n int
		require.NoError(t, conn.QueryRow(`SELECT COUNT(*) FROM user_objects WHERE object_type = :1 AND object_name = :2`,
			object[0], object[1]).Scan(&n))
		require.Equal(t, 1, n, "%s %s", object[0], object[1])
	}

	second := open(t, o)
	state, got, err := instance(t, second).Load(ctx, oid)
	require.NoError(t, err)
	require.Equal(t, "from the first storage", string(state))
	require.Equal(t, tid, got)
}
