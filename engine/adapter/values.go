package adapter

import (
	"fmt"
	"strings"
)

// NonNil returns b, or an empty slice for nil: metadata columns are NOT NULL.
func NonNil(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// Int64Args turns oids into bind arguments, as the drivers take BIGINT/NUMBER values.
func Int64Args(oids []uint64) []any {
	out := make([]any, len(oids))
	for i, o := range oids {
		out[i] = int64(o)
	}
	return out
}

// BoundTID is tid as a bind argument, an upper bound past int64 cut to the
// largest int64 (tids never reach it).
func BoundTID(tid uint64) int64 {
	if tid > 1<<63-1 {
		return 1<<63 - 1
	}
	return int64(tid)
}

// CheckHistoryMode refuses a database whose existing schema (it has
// object_state) is of the other history mode than keep-history asks for.
func CheckHistoryMode(describe string, keepHistory, hasObjectState, hasHistoryTables bool) error {
	switch {
	case !hasObjectState:
		return nil
	case keepHistory && !hasHistoryTables:
		return ConfigError("%s is history-free but keep-history is true", describe)
	case !keepHistory && hasHistoryTables:
		return ConfigError("%s is history-preserving but keep-history is false", describe)
	}
	return nil
}

// RefuseSchemaCreation says why a schema missing objects must not be
// created or completed here (create-schema off, or a read-only storage),
// or returns nil when the dialect may create them.
func RefuseSchemaCreation(describe string, s Settings, empty bool, missing []string) error {
	switch {
	case !s.CreateSchema && empty:
		return ConfigError("%s has no RelStorage schema and create-schema is off", describe)
	case s.ReadOnly && empty:
		return ConfigError("%s has no RelStorage schema and the storage is read-only", describe)
	case !s.CreateSchema || s.ReadOnly:
		return IncompleteSchema(describe, missing)
	}
	return nil
}

// IncompleteSchema reports the objects a schema lacks.
func IncompleteSchema(describe string, missing []string) error {
	return fmt.Errorf("%s: the RelStorage schema is incomplete, missing %s", describe, strings.Join(missing, ", "))
}
