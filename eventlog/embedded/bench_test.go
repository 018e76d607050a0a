package embedded

import (
	"context"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

const (
	// benchPayload is the size of a benchmark record's data.
	benchPayload = 100
	// catchUpRecords is the size of the catch-up fixture.
	catchUpRecords = 1_000_000
	// catchUpPerAppend is how many records the fixture writes per append.
	catchUpPerAppend = 1000
	// benchWriters is the number of goroutines in BenchmarkAppend64Writers.
	benchWriters = 64
)

func benchEvent(i int) eventlog.Event {
	data := make([]byte, benchPayload)
	copy(data, fmt.Sprintf(`{"type":"queued","n":%d}`, i))
	return eventlog.Event{Type: "queued", Data: data}
}

func reportRecords(b *testing.B, records int64, start time.Time) {
	b.ReportMetric(float64(records)/time.Since(start).Seconds(), "records/s")
}

func BenchmarkAppendSingleWriter(b *testing.B) {
	l := openTest(b, b.TempDir(), Options{})
	defer l.Close()
	ctx := context.Background()
	ev := benchEvent(0)
	start := time.Now()
	for b.Loop() {
		if _, err := l.Append(ctx, "single", eventlog.Any, ev); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, int64(b.N), start)
}

// BenchmarkAppend64Writers has 64 goroutines each appending one record at a
// time to its own stream: the group commit's case.
func BenchmarkAppend64Writers(b *testing.B) {
	l := openTest(b, b.TempDir(), Options{})
	defer l.Close()
	ctx := context.Background()
	var next atomic.Int64
	var wg sync.WaitGroup
	ev := benchEvent(0)
	b.ResetTimer()
	start := time.Now()
	for w := range benchWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("endpoint-%d", w)
			for next.Add(1) <= int64(b.N) {
				if _, err := l.Append(ctx, stream, eventlog.Any, ev); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	reportRecords(b, int64(b.N), start)
}

// BenchmarkAppendBatch100 appends 100 records per Append from one writer.
func BenchmarkAppendBatch100(b *testing.B) {
	l := openTest(b, b.TempDir(), Options{})
	defer l.Close()
	ctx := context.Background()
	events := make([]eventlog.Event, 100)
	for i := range events {
		events[i] = benchEvent(i)
	}
	start := time.Now()
	for b.Loop() {
		if _, err := l.Append(ctx, "batch", eventlog.Any, events...); err != nil {
			b.Fatal(err)
		}
	}
	reportRecords(b, int64(b.N)*100, start)
}

var (
	catchUpOnce sync.Once
	catchUpDir  string
	catchUpErr  error
)

// catchUpFixture writes catchUpRecords small records once per test binary
// run (only when this benchmark runs), in appends of catchUpPerAppend
// records round-robin over 1,000 streams.
func catchUpFixture(b *testing.B) string {
	catchUpOnce.Do(func() {
		catchUpDir, catchUpErr = os.MkdirTemp("", "herald-catchup-")
		if catchUpErr != nil {
			return
		}
		l, err := Open(catchUpDir, Options{Logger: quietLogger(), MinFreeBytes: -1})
		if err != nil {
			catchUpErr = err
			return
		}
		defer l.Close()
		events := make([]eventlog.Event, catchUpPerAppend)
		for i := range events {
			events[i] = benchEvent(i)
		}
		start := time.Now()
		for i := range catchUpRecords / catchUpPerAppend {
			if _, err := l.Append(context.Background(), fmt.Sprintf("endpoint-%d", i%1000), eventlog.Any, events...); err != nil {
				catchUpErr = err
				return
			}
		}
		b.Logf("fixture: %d records in %v", catchUpRecords, time.Since(start))
	})
	if catchUpErr != nil {
		b.Fatal(catchUpErr)
	}
	return catchUpDir
}

// BenchmarkCatchUpRead1M reads 1M records with a subscription from the
// start of a freshly opened log (open and its verification not timed).
func BenchmarkCatchUpRead1M(b *testing.B) {
	dir := catchUpFixture(b)
	for b.Loop() {
		b.StopTimer()
		l := openTest(b, dir, Options{SkipVerify: true})
		b.StartTimer()
		sub, err := l.Subscribe(context.Background(), eventlog.Start)
		if err != nil {
			b.Fatal(err)
		}
		for range catchUpRecords {
			if _, err := sub.Next(context.Background()); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		sub.Close()
		l.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(catchUpRecords)*float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkOpenVerify1M times Open with the full verification of 1M
// records (the restart cost).
func BenchmarkOpenVerify1M(b *testing.B) {
	dir := catchUpFixture(b)
	for b.Loop() {
		l := openTest(b, dir, Options{})
		b.StopTimer()
		l.Close()
		b.StartTimer()
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if catchUpDir != "" {
		os.RemoveAll(catchUpDir)
	}
	os.Exit(code)
}
