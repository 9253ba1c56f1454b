// Bind arguments: values as the drivers take them.

package sqlrow

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
