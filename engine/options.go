// Options are the RelStorage options this build implements, decoded from the
// JSON the Python side passes at open. Unknown keys are rejected: an option a
// user sets must never be silently ignored.
package engine

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// Options configure a Storage. Field names follow RelStorage's option keys.
type Options struct {
	Name                string          `json:"name"`
	ReadOnly            bool            `json:"read_only"`
	KeepHistory         bool            `json:"keep_history"`
	CreateSchema        bool            `json:"create_schema"`
	CommitLockTimeout   float64         `json:"commit_lock_timeout"` // seconds
	CacheDeltaSizeLimit int             `json:"cache_delta_size_limit"`
	Adapter             string          `json:"adapter"`
	AdapterOptions      json.RawMessage `json:"adapter_options"`
}

// DefaultOptions returns RelStorage's defaults.
func DefaultOptions() Options {
	return Options{KeepHistory: true, CreateSchema: true, CommitLockTimeout: 30, CacheDeltaSizeLimit: 100000}
}

// ParseOptions decodes JSON over the defaults and validates the result.
func ParseOptions(data []byte) (Options, error) {
	o := DefaultOptions()
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&o); err != nil {
		return o, Errorf(KindConfig, "configuration: %v", err)
	}
	return o, o.Validate()
}

// Validate reports the first option with an impossible value.
func (o Options) Validate() error {
	switch {
	case o.Adapter == "":
		return Errorf(KindConfig, "configuration: no database adapter given")
	case o.CommitLockTimeout < 0:
		return Errorf(KindConfig, "configuration: commit-lock-timeout must be >= 0, got %v", o.CommitLockTimeout)
	case o.CacheDeltaSizeLimit < 0:
		return Errorf(KindConfig, "configuration: cache-delta-size-limit must be >= 0, got %d", o.CacheDeltaSizeLimit)
	}
	return nil
}

// LockTimeout is commit-lock-timeout as a duration.
func (o Options) LockTimeout() time.Duration {
	return time.Duration(o.CommitLockTimeout * float64(time.Second))
}

func (o Options) String() string {
	return fmt.Sprintf("adapter=%s keep_history=%v read_only=%v", o.Adapter, o.KeepHistory, o.ReadOnly)
}
