package pickle

import (
	"encoding/binary"
	"os"
	"testing"
)

func BenchmarkRealStates(b *testing.B) {
	data, err := os.ReadFile("/tmp/states.bin")
	if err != nil {
		b.Skip(err)
	}
	var states [][]byte
	for len(data) > 4 {
		n := binary.LittleEndian.Uint32(data)
		states = append(states, data[4:4+n])
		data = data[4+n:]
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for _, s := range states {
			if _, err := OIDs(s); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(states)), "ns/state")
}
