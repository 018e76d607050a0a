package projections_test

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/projections"
)

// BenchmarkApply folds the records of benchEvents events, each raised for
// one of benchEndpoints endpoints, queued, failed once and delivered in
// batches of 100: the shape of a busy log. It reports records applied per
// second and the heap the view keeps per event.
func BenchmarkApply(b *testing.B) {
	const (
		benchEvents    = 100_000
		benchEndpoints = 100
		batch          = 100
	)
	s := newScript(b)
	for i := 0; i < benchEvents; i += batch {
		ep := fmt.Sprintf("ep%04d", (i/batch)%benchEndpoints)
		ids := make([]string, batch)
		for j := range ids {
			ids[j] = fmt.Sprintf("ev_%024d", i+j)
			s.notify("example.com", ids[j], "nodeCreated", ep)
			s.queued(ep, ids[j], t0)
		}
		s.attempt(ep, fmt.Sprintf("at_%d_1", i), 503, t0, endpoint.ResultRetry, ids...)
		s.attempt(ep, fmt.Sprintf("at_%d_2", i), 200, t0.Add(time.Hour), endpoint.ResultDelivered, ids...)
	}
	b.ResetTimer()
	var kept uint64
	for range b.N {
		b.StopTimer()
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		b.StartTimer()
		var d projections.Deliveries
		for _, rec := range s.recs {
			if err := d.Apply(rec); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		runtime.GC()
		runtime.ReadMemStats(&after)
		kept = after.HeapAlloc - before.HeapAlloc
		runtime.KeepAlive(&d)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(s.recs))*float64(b.N)/b.Elapsed().Seconds(), "records/s")
	b.ReportMetric(float64(kept)/benchEvents, "heapB/event")
}
