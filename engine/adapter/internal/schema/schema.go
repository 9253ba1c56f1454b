// Package schema holds what RelStorage's schema means to every dialect: the
// history-mode and creation checks at open, the OID counter's layout, and
// what the tables tell of a commit whose reply was lost.
package schema

import (
	"fmt"
	"slices"
	"strings"

	"github.com/gorelstorage/gorelstorage/engine/adapter"
)

// CheckHistoryMode refuses a database whose existing schema (it has
// object_state) is of the other history mode than keep-history asks for.
func CheckHistoryMode(describe string, keepHistory, hasObjectState, hasHistoryTables bool) error {
	switch {
	case !hasObjectState:
		return nil
	case keepHistory && !hasHistoryTables:
		return adapter.ConfigError("%s is history-free but keep-history is true; "+
			"use another database or convert this one with zodbconvert", describe)
	case !keepHistory && hasHistoryTables:
		return adapter.ConfigError("%s is history-preserving but keep-history is false; "+
			"use another database or convert this one with zodbconvert", describe)
	}
	return nil
}

// RefuseSchemaCreation says why a schema missing objects must not be
// created or completed here (create-schema off, or a read-only storage),
// or returns nil when the dialect may create them.
func RefuseSchemaCreation(describe string, s adapter.Settings, empty bool, missing []string) error {
	switch {
	case !s.CreateSchema && empty:
		return adapter.ConfigError("%s has no RelStorage schema and create-schema is off", describe)
	case s.ReadOnly && empty:
		return adapter.ConfigError("%s has no RelStorage schema and the storage is read-only", describe)
	case !s.CreateSchema || s.ReadOnly:
		return IncompleteSchema(describe, missing)
	}
	return nil
}

// Missing lists the names in need that tables lacks, in need's order.
func Missing(tables map[string]bool, need []string) []string {
	var missing []string
	for _, n := range need {
		if !tables[n] {
			missing = append(missing, n)
		}
	}
	return missing
}

// IncompleteSchema reports the objects a schema lacks.
func IncompleteSchema(describe string, missing []string) error {
	return fmt.Errorf("%s: the RelStorage schema is incomplete, missing %s", describe, strings.Join(missing, ", "))
}

// OIDBlock returns the 16 OIDs counter value n stands for, n*16-15 .. n*16
// (RelStorage's layout: OID 0, the root, is never issued).
func OIDBlock(n uint64) []uint64 {
	return OIDBlocks([]uint64{n})
}

// OIDBlocks is OIDBlock for several counter values, ascending.
func OIDBlocks(values []uint64) []uint64 {
	slices.Sort(values)
	out := make([]uint64, 0, 16*len(values))
	for _, n := range values {
		for i := uint64(0); i < 16; i++ {
			out = append(out, n*16-15+i)
		}
	}
	return out
}
