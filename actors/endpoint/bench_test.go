package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"runtime"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/embedded"
)

// BenchmarkRebuild measures an endpoint actor's start on a stream of n
// pending events (n queued records of ~250-byte events, plus one failed
// attempt record per 100 of them): read, decode, fold, arm the timer.
func BenchmarkRebuild(b *testing.B) {
	for _, n := range []int{10_000, 100_000} {
		b.Run(fmt.Sprintf("pending=%d", n), func(b *testing.B) {
			l, err := embedded.Open(b.TempDir(), embedded.Options{Logger: slog.New(slog.DiscardHandler), MinFreeBytes: -1})
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			writeBacklog(b, l, "bench", n)
			clk := clock.NewFake(t0.Add(30 * time.Minute)) // all due at t0+1h: nothing is sent
			cfg := Config{Log: l, Clock: clk, Logger: slog.New(slog.DiscardHandler)}
			sys := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return slog.New(slog.DiscardHandler) }))
			defer sys.Shutdown()

			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			var heap uint64
			b.ResetTimer()
			for range b.N {
				pid := sys.Root.Spawn(Props(cfg, Settings{ID: "bench", URL: "https://example.com/"}))
				res, err := sys.Root.RequestFuture(pid, &GetStatus{}, time.Minute).Result()
				if err != nil {
					b.Fatal(err)
				}
				if st := res.(*Status); !st.Ready || st.Pending != n {
					b.Fatalf("status %+v, want ready with %d pending", st, n)
				}
				b.StopTimer()
				var after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&after)
				heap = after.HeapAlloc - min(before.HeapAlloc, after.HeapAlloc)
				if err := sys.Root.StopFuture(pid).Wait(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
			b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
			b.ReportMetric(float64(heap)/float64(n), "heapB/event")
		})
	}
}

// writeBacklog writes n queued records and a failed attempt per 100.
func writeBacklog(b *testing.B, l eventlog.Log, id string, n int) {
	const page = 1000
	ctx := context.Background()
	stream := StreamName(id)
	expected := eventlog.NoStream
	for i := 0; i < n; i += page {
		var evs []eventlog.Event
		var batch []string
		for j := i; j < min(i+page, n); j++ {
			ev := fmt.Sprintf("ev_%07d", j)
			e, err := encodeRecord(TypeQueued, &QueuedRecord{Type: TypeQueued, V: SchemaVersion, Event: ev, TailnetVersion: uint64(j + 1), QueuedAt: t0, Payload: payload(b, ev, 250)})
			if err != nil {
				b.Fatal(err)
			}
			evs = append(evs, e)
			batch = append(batch, ev)
			if len(batch) == DefaultBatchMaxEvents {
				r := &AttemptRecord{Type: TypeAttempt, V: SchemaVersion, ID: "at_" + ev, Events: batch, Started: t0, Finished: t0, StatusCode: 500, ErrorClass: "status"}
				r.Outcomes = []EventOutcome{{Result: ResultRetry, NextDue: t0.Add(time.Hour), Events: batch}}
				a, err := encodeRecord(TypeAttempt, r)
				if err != nil {
					b.Fatal(err)
				}
				evs = append(evs, a)
				batch = nil
			}
		}
		res, err := l.Append(ctx, stream, expected, evs...)
		if err != nil {
			b.Fatal(err)
		}
		expected = eventlog.Exact(res.Version)
	}
}

// BenchmarkQueueDrain measures the queue logic alone (no I/O): n events
// whose slots were missed are cut into batches, finished and applied, as
// after a restart that collapses their slots.
func BenchmarkQueueDrain(b *testing.B) {
	const n = 100_000
	m := newModel(b, RetryPolicy{}, BatchPolicy{})
	m.queue(t0, n, 250)
	for {
		batch, _ := m.step(t0.Add(time.Hour - time.Minute))
		if batch == nil {
			break
		}
		m.finish(batch, false, batch.Started)
	}
	records := m.records
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		q := NewQueue(RetryPolicy{}, BatchPolicy{})
		for i, r := range records {
			q.Apply(uint64(i), r)
		}
		b.StartTimer()
		now := t0.Add(5 * time.Hour)
		for {
			p := q.Step(now)
			if p.Batch == nil {
				break
			}
			p.Batch.ID, p.Batch.Started = "at", now
			q.Apply(0, q.Finish(p.Batch, Outcome{StatusCode: 200}, "", now))
		}
		if q.Len() != 0 {
			b.Fatalf("%d left pending", q.Len())
		}
	}
	b.ReportMetric(float64(n*b.N)/b.Elapsed().Seconds(), "events/s")
}
