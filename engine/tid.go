// Transaction ids are ZODB TimeStamps: the high 32 bits count minutes since
// 1900-01-01 UTC in a calendar of 31-day months, the low 32 bits are seconds
// scaled by 2^32/60. They must strictly increase, so a new tid is
// max(now, last+1), chosen under the commit lock.
package engine

import "time"

// TIDAt returns the TimeStamp tid for t (UTC), truncating below the tick.
func TIDAt(t time.Time) uint64 {
	t = t.UTC()
	y, mo, d := t.Date()
	minutes := ((((uint64(y)-1900)*12+uint64(mo)-1)*31+uint64(d)-1)*24+uint64(t.Hour()))*60 + uint64(t.Minute())
	secs := float64(t.Second()) + float64(t.Nanosecond())/1e9
	low := uint64(secs * (1 << 32) / 60)
	if low > 0xFFFFFFFF {
		low = 0xFFFFFFFF
	}
	return minutes<<32 | low
}

// NextTID returns the tid for a commit at now after a database whose newest tid is last.
func NextTID(now time.Time, last uint64) uint64 {
	tid := TIDAt(now)
	if tid <= last {
		tid = last + 1
	}
	return tid
}
