package tests_go

import (
	"sync"
	"testing"

	"github.com/gorelstorage/gorelstorage/engine"
)

// BenchmarkLoadParallel loads one object per op from one or two goroutines,
// each with its own instance (as ZODB gives each Connection its own).
func BenchmarkLoadParallel(b *testing.B) {
	for _, workers := range []int{1, 2} {
		b.Run(map[int]string{1: "1-instance", 2: "2-instances"}[workers], func(b *testing.B) {
			s, err := engine.Open(ctx, databases()[0].options(b.TempDir()))
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			w, _ := s.NewInstance()
			w.Begin(engine.TxnMeta{}, 0, false)
			for oid := range uint64(1000) {
				w.Store(oid, 0, make([]byte, 300))
			}
			w.Vote(ctx)
			w.FinishLock(ctx)
			w.FinishCommit(ctx)
			var wg sync.WaitGroup
			b.ResetTimer()
			for range workers {
				in, _ := s.NewInstance()
				in.Poll(ctx)
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range b.N {
						if _, _, err := in.Load(ctx, uint64(i%1000)); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}
