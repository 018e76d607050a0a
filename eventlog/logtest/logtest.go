package logtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

// Limits of the suite, kept small so that a backend runs it in seconds.
const (
	// testTimeout bounds every behaviour: a hung backend fails, it does not
	// stall the test binary.
	testTimeout = 20 * time.Second
	// largeRecordBytes is the record size every backend must accept.
	largeRecordBytes = 1 << 20
	// concurrentWriters is the number of goroutines in the concurrency cases.
	concurrentWriters = 8
	// contendedVersions is how long the contended stream grows.
	contendedVersions = 120
	// appendsPerWriter is how many appends each writer makes on its own stream.
	appendsPerWriter = 40
	// liveRecords is how many records writers add while a subscriber switches
	// from catch-up to live.
	liveRecords = 400
)

// Opener returns a new, empty log for one test.
type Opener func(t *testing.T) eventlog.Log

// behaviour is one named case of the suite.
type behaviour struct {
	name string
	run  func(t *testing.T, l eventlog.Log)
}

// behaviours is the table Run executes, in order.
var behaviours = []behaviour{
	{"AppendAndReadBack", testAppendAndReadBack},
	{"ExpectedVersionAny", testExpectedAny},
	{"ExpectedVersionNoStream", testExpectedNoStream},
	{"ExpectedVersionExact", testExpectedExact},
	{"WrongVersionWritesNothing", testWrongVersionWritesNothing},
	{"GlobalOrderIsCommitOrder", testGlobalOrder},
	{"ReadAllFromMiddle", testReadAllFromMiddle},
	{"ReadPaging", testReadPaging},
	{"SubscribeCatchUpThenLive", testSubscribeCatchUpThenLive},
	{"SubscribeFromMiddle", testSubscribeFromMiddle},
	{"SubscriptionCloseUnblocksNext", testSubscriptionClose},
	{"SubscriptionContextCancel", testSubscriptionContext},
	{"ConcurrentWritersOneStream", testConcurrentOneStream},
	{"ConcurrentWritersManyStreams", testConcurrentManyStreams},
	{"LargeRecord", testLargeRecord},
	{"UnicodeAndPrefixStreamNames", testStreamNames},
	{"EmptyReads", testEmptyReads},
	{"InvalidArguments", testInvalidArguments},
	{"CanceledContextWritesNothing", testCanceledAppend},
	{"ClosedLog", testClosedLog},
}

// Run runs every behaviour of the suite against logs made by open, each on
// a fresh log, then the property test against the memlog model.
func Run(t *testing.T, open Opener) {
	t.Helper()
	for _, b := range behaviours {
		t.Run(b.name, func(t *testing.T) {
			l := open(t)
			t.Cleanup(func() { l.Close() })
			b.run(t, l)
		})
	}
	t.Run("MatchesModel", func(t *testing.T) { RunModel(t, open) })
}

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// ev makes an event whose payload names it, so records are easy to compare.
func ev(typ, data string) eventlog.Event {
	return eventlog.Event{Type: typ, Data: []byte(data)}
}

func mustAppend(t *testing.T, l eventlog.Log, stream string, expected eventlog.ExpectedVersion, events ...eventlog.Event) eventlog.AppendResult {
	t.Helper()
	res, err := l.Append(ctxFor(t), stream, expected, events...)
	if err != nil {
		t.Fatalf("Append(%q, %v): got error %v, want nil", stream, expected, err)
	}
	return res
}

func mustReadAll(t *testing.T, l eventlog.Log, after eventlog.Position, limit int) []eventlog.Record {
	t.Helper()
	recs, err := l.ReadAll(ctxFor(t), after, limit)
	if err != nil {
		t.Fatalf("ReadAll(%d, %d): got error %v, want nil", after, limit, err)
	}
	return recs
}

func mustReadStream(t *testing.T, l eventlog.Log, stream string, from uint64, limit int) []eventlog.Record {
	t.Helper()
	recs, err := l.ReadStream(ctxFor(t), stream, from, limit)
	if err != nil {
		t.Fatalf("ReadStream(%q, %d, %d): got error %v, want nil", stream, from, limit, err)
	}
	return recs
}

// sameRecord compares everything but the position.
func sameRecord(got, want eventlog.Record) bool {
	return got.Stream == want.Stream && got.Version == want.Version &&
		got.Type == want.Type && bytes.Equal(got.Data, want.Data)
}

func describe(r eventlog.Record) string {
	data := r.Data
	if len(data) > 32 {
		data = data[:32]
	}
	return fmt.Sprintf("{%q v%d @%d %s %q (%d bytes)}", r.Stream, r.Version, r.Position, r.Type, data, len(r.Data))
}

func checkIncreasing(t *testing.T, recs []eventlog.Record) {
	t.Helper()
	var last eventlog.Position
	for i, r := range recs {
		if r.Position <= last {
			t.Fatalf("record %d: got position %d after %d, want strictly increasing", i, r.Position, last)
		}
		last = r.Position
	}
}

func wantWrongVersion(t *testing.T, err error, stream string, expected eventlog.ExpectedVersion, actual int64) {
	t.Helper()
	var wv *eventlog.WrongVersionError
	if !errors.As(err, &wv) {
		t.Fatalf("Append(%q, %v): got error %v, want *eventlog.WrongVersionError", stream, expected, err)
	}
	if wv.Stream != stream || wv.Expected != expected || wv.Actual != actual {
		t.Fatalf("got WrongVersionError{%q, %v, %d}, want {%q, %v, %d}", wv.Stream, wv.Expected, wv.Actual, stream, expected, actual)
	}
}

func testAppendAndReadBack(t *testing.T, l eventlog.Log) {
	res := mustAppend(t, l, "tailnet-a", eventlog.NoStream, ev("created", "one"), ev("updated", "two"))
	if res.Version != 1 || res.Position == eventlog.Start {
		t.Fatalf("got AppendResult %+v, want version 1 and a position > 0", res)
	}
	res2 := mustAppend(t, l, "tailnet-a", eventlog.Exact(1), ev("deleted", "three"))
	if res2.Version != 2 || res2.Position <= res.Position {
		t.Fatalf("got AppendResult %+v after %+v, want version 2 and a later position", res2, res)
	}
	want := []eventlog.Record{
		{Stream: "tailnet-a", Version: 0, Type: "created", Data: []byte("one")},
		{Stream: "tailnet-a", Version: 1, Type: "updated", Data: []byte("two"), Position: res.Position},
		{Stream: "tailnet-a", Version: 2, Type: "deleted", Data: []byte("three"), Position: res2.Position},
	}
	for _, got := range [][]eventlog.Record{mustReadStream(t, l, "tailnet-a", 0, 0), mustReadAll(t, l, eventlog.Start, 0)} {
		if len(got) != len(want) {
			t.Fatalf("got %d records, want %d", len(got), len(want))
		}
		checkIncreasing(t, got)
		for i := range want {
			if !sameRecord(got[i], want[i]) {
				t.Fatalf("record %d: got %s, want %s", i, describe(got[i]), describe(want[i]))
			}
			if want[i].Position != 0 && got[i].Position != want[i].Position {
				t.Fatalf("record %d: got position %d, want %d (from AppendResult)", i, got[i].Position, want[i].Position)
			}
		}
	}
	// Appended data is copied: changing the caller's slice changes nothing.
	data := []byte("mutable")
	mustAppend(t, l, "copy", eventlog.Any, eventlog.Event{Type: "t", Data: data})
	data[0] = 'X'
	if got := mustReadStream(t, l, "copy", 0, 0); len(got) != 1 || string(got[0].Data) != "mutable" {
		t.Fatalf("after changing the caller's buffer: got %v, want one record %q", got, "mutable")
	}
}

func testExpectedAny(t *testing.T, l eventlog.Log) {
	for i := range 3 {
		res := mustAppend(t, l, "s", eventlog.Any, ev("t", fmt.Sprint(i)))
		if res.Version != uint64(i) {
			t.Fatalf("append %d with Any: got version %d, want %d", i, res.Version, i)
		}
	}
}

func testExpectedNoStream(t *testing.T, l eventlog.Log) {
	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "first"))
	_, err := l.Append(ctxFor(t), "s", eventlog.NoStream, ev("t", "second"))
	wantWrongVersion(t, err, "s", eventlog.NoStream, 0)
}

func testExpectedExact(t *testing.T, l eventlog.Log) {
	// Exact on a missing stream reports Actual -1.
	_, err := l.Append(ctxFor(t), "s", eventlog.Exact(0), ev("t", "x"))
	wantWrongVersion(t, err, "s", eventlog.Exact(0), -1)

	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "0"), ev("t", "1"))
	res := mustAppend(t, l, "s", eventlog.Exact(1), ev("t", "2"))
	if res.Version != 2 {
		t.Fatalf("got version %d, want 2", res.Version)
	}
	for _, wrong := range []uint64{0, 1, 3, 100} {
		_, err := l.Append(ctxFor(t), "s", eventlog.Exact(wrong), ev("t", "bad"))
		wantWrongVersion(t, err, "s", eventlog.Exact(wrong), 2)
		if errors.Is(err, eventlog.ErrInvalid) || errors.Is(err, eventlog.ErrUnavailable) {
			t.Fatalf("WrongVersionError %v must not be ErrInvalid or ErrUnavailable", err)
		}
	}
}

func testWrongVersionWritesNothing(t *testing.T, l eventlog.Log) {
	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "0"))
	before := mustReadAll(t, l, eventlog.Start, 0)
	if _, err := l.Append(ctxFor(t), "s", eventlog.Exact(5), ev("t", "a"), ev("t", "b")); err == nil {
		t.Fatal("Append with a wrong version: got nil error, want WrongVersionError")
	}
	if after := mustReadAll(t, l, eventlog.Start, 0); len(after) != len(before) {
		t.Fatalf("after a failed append: got %d records, want %d", len(after), len(before))
	}
	res := mustAppend(t, l, "s", eventlog.Exact(0), ev("t", "1"))
	if res.Version != 1 {
		t.Fatalf("after a failed append: got version %d, want 1 (no gap)", res.Version)
	}
}

func testGlobalOrder(t *testing.T, l eventlog.Log) {
	type appended struct {
		stream string
		res    eventlog.AppendResult
	}
	var order []appended
	streams := []string{"tailnet-a", "endpoint-1", "tailnet-b", "endpoint-2"}
	for i := range 20 {
		s := streams[i%len(streams)]
		order = append(order, appended{s, mustAppend(t, l, s, eventlog.Any, ev("t", fmt.Sprint(i)))})
	}
	all := mustReadAll(t, l, eventlog.Start, 0)
	if len(all) != len(order) {
		t.Fatalf("got %d records, want %d", len(all), len(order))
	}
	for i, r := range all {
		if r.Stream != order[i].stream || r.Position != order[i].res.Position || r.Version != order[i].res.Version || string(r.Data) != fmt.Sprint(i) {
			t.Fatalf("record %d: got %s, want stream %q version %d position %d data %q", i, describe(r), order[i].stream, order[i].res.Version, order[i].res.Position, fmt.Sprint(i))
		}
	}
	checkIncreasing(t, all)
}

func testReadAllFromMiddle(t *testing.T, l eventlog.Log) {
	for i := range 10 {
		mustAppend(t, l, fmt.Sprintf("s%d", i%3), eventlog.Any, ev("t", fmt.Sprint(i)))
	}
	all := mustReadAll(t, l, eventlog.Start, 0)
	for k := range all {
		got := mustReadAll(t, l, all[k].Position, 0)
		if len(got) != len(all)-k-1 {
			t.Fatalf("ReadAll after record %d: got %d records, want %d", k, len(got), len(all)-k-1)
		}
		for i := range got {
			if !sameRecord(got[i], all[k+1+i]) || got[i].Position != all[k+1+i].Position {
				t.Fatalf("ReadAll after record %d, item %d: got %s, want %s", k, i, describe(got[i]), describe(all[k+1+i]))
			}
		}
		// A position between two records (where positions are sparse) or
		// the exact one reads the same.
		if all[k].Position+1 < nextPos(all, k) {
			if got2 := mustReadAll(t, l, all[k].Position+1, 0); len(got2) != len(got) {
				t.Fatalf("ReadAll between records: got %d, want %d", len(got2), len(got))
			}
		}
	}
}

func nextPos(all []eventlog.Record, k int) eventlog.Position {
	if k+1 < len(all) {
		return all[k+1].Position
	}
	return all[k].Position + 1
}

func testReadPaging(t *testing.T, l eventlog.Log) {
	const n = 25
	for i := range n {
		mustAppend(t, l, "paged", eventlog.Any, ev("t", fmt.Sprint(i)))
		mustAppend(t, l, "other", eventlog.Any, ev("t", fmt.Sprint(i)))
	}
	for _, limit := range []int{1, 3, 7, 100} {
		var got []eventlog.Record
		after := eventlog.Start
		for {
			page := mustReadAll(t, l, after, limit)
			if len(page) > limit {
				t.Fatalf("ReadAll limit %d: got %d records", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			got = append(got, page...)
			after = page[len(page)-1].Position
		}
		if len(got) != 2*n {
			t.Fatalf("paging ReadAll by %d: got %d records, want %d", limit, len(got), 2*n)
		}
		checkIncreasing(t, got)
		var stream []eventlog.Record
		for from := uint64(0); ; {
			page := mustReadStream(t, l, "paged", from, limit)
			if len(page) > limit {
				t.Fatalf("ReadStream limit %d: got %d records", limit, len(page))
			}
			if len(page) == 0 {
				break
			}
			stream = append(stream, page...)
			from = page[len(page)-1].Version + 1
		}
		if len(stream) != n {
			t.Fatalf("paging ReadStream by %d: got %d records, want %d", limit, len(stream), n)
		}
		for i, r := range stream {
			if r.Version != uint64(i) || string(r.Data) != fmt.Sprint(i) {
				t.Fatalf("paging ReadStream by %d, record %d: got %s", limit, i, describe(r))
			}
		}
	}
}

// drain reads n records from sub and checks they continue want.
func drain(t *testing.T, sub eventlog.Subscription, n int) []eventlog.Record {
	t.Helper()
	ctx := ctxFor(t)
	out := make([]eventlog.Record, 0, n)
	for len(out) < n {
		r, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d records: got error %v, want a record", len(out), err)
		}
		out = append(out, r)
	}
	return out
}

func testSubscribeCatchUpThenLive(t *testing.T, l eventlog.Log) {
	const before = 100
	for i := range before {
		mustAppend(t, l, fmt.Sprintf("w%d", i%concurrentWriters), eventlog.Any, ev("t", fmt.Sprint(i)))
	}
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatalf("Subscribe: got error %v, want nil", err)
	}
	defer sub.Close()

	// Writers append while the subscriber is catching up and switching to live.
	var wg sync.WaitGroup
	errs := make(chan error, concurrentWriters)
	for w := range concurrentWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range liveRecords / concurrentWriters {
				if _, err := l.Append(ctxFor(t), fmt.Sprintf("w%d", w), eventlog.Any, ev("live", fmt.Sprint(i))); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	got := drain(t, sub, before+liveRecords)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("concurrent Append: got error %v, want nil", err)
	}
	checkIncreasing(t, got)
	all := mustReadAll(t, l, eventlog.Start, 0)
	if len(all) != len(got) {
		t.Fatalf("got %d records by subscription, want %d (ReadAll)", len(got), len(all))
	}
	for i := range all {
		if all[i].Position != got[i].Position || !sameRecord(got[i], all[i]) {
			t.Fatalf("subscription record %d: got %s, want %s", i, describe(got[i]), describe(all[i]))
		}
	}
	// Live: a record appended now arrives next.
	res := mustAppend(t, l, "late", eventlog.NoStream, ev("t", "late"))
	if r := drain(t, sub, 1)[0]; r.Position != res.Position || r.Stream != "late" {
		t.Fatalf("live record: got %s, want stream late at %d", describe(r), res.Position)
	}
}

func testSubscribeFromMiddle(t *testing.T, l eventlog.Log) {
	for i := range 10 {
		mustAppend(t, l, "s", eventlog.Any, ev("t", fmt.Sprint(i)))
	}
	all := mustReadAll(t, l, eventlog.Start, 0)
	sub, err := l.Subscribe(ctxFor(t), all[4].Position)
	if err != nil {
		t.Fatalf("Subscribe: got error %v, want nil", err)
	}
	defer sub.Close()
	got := drain(t, sub, 5)
	for i, r := range got {
		if r.Position != all[5+i].Position {
			t.Fatalf("record %d: got position %d, want %d", i, r.Position, all[5+i].Position)
		}
	}
	// Subscribing at the end sees only what comes later.
	sub2, err := l.Subscribe(ctxFor(t), all[9].Position)
	if err != nil {
		t.Fatalf("Subscribe at end: got error %v, want nil", err)
	}
	defer sub2.Close()
	res := mustAppend(t, l, "s", eventlog.Any, ev("t", "10"))
	if r := drain(t, sub2, 1)[0]; r.Position != res.Position {
		t.Fatalf("got position %d, want %d", r.Position, res.Position)
	}
}

func testSubscriptionClose(t *testing.T, l eventlog.Log) {
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatalf("Subscribe: got error %v, want nil", err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctxFor(t))
		done <- err
	}()
	if err := sub.Close(); err != nil {
		t.Fatalf("Subscription.Close: got %v, want nil", err)
	}
	if err := <-done; !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("blocked Next after Subscription.Close: got %v, want ErrClosed", err)
	}
	if _, err := sub.Next(ctxFor(t)); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Next after Subscription.Close: got %v, want ErrClosed", err)
	}
	if err := sub.Close(); err != nil {
		t.Fatalf("second Subscription.Close: got %v, want nil", err)
	}
	// The log itself is unaffected.
	mustAppend(t, l, "s", eventlog.Any, ev("t", "after"))
}

func testSubscriptionContext(t *testing.T, l eventlog.Log) {
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatalf("Subscribe: got error %v, want nil", err)
	}
	defer sub.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(ctx)
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Next with a canceled context: got %v, want context.Canceled", err)
	}
	// The subscription still works with a live context.
	res := mustAppend(t, l, "s", eventlog.Any, ev("t", "x"))
	if r := drain(t, sub, 1)[0]; r.Position != res.Position {
		t.Fatalf("got position %d, want %d", r.Position, res.Position)
	}
}

func testConcurrentOneStream(t *testing.T, l eventlog.Log) {
	const stream = "contended"
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		winners = map[uint64]string{} // version -> writer's payload
		errs    = make(chan error, concurrentWriters)
	)
	for w := range concurrentWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			expected := eventlog.NoStream
			for attempt := 0; ; attempt++ {
				payload := fmt.Sprintf("w%d-a%d", w, attempt)
				res, err := l.Append(ctxFor(t), stream, expected, ev("t", payload))
				var wv *eventlog.WrongVersionError
				switch {
				case err == nil:
					mu.Lock()
					if prev, dup := winners[res.Version]; dup {
						mu.Unlock()
						errs <- fmt.Errorf("version %d won twice: %s and %s", res.Version, prev, payload)
						return
					}
					winners[res.Version] = payload
					mu.Unlock()
					expected = eventlog.Exact(res.Version)
				case errors.As(err, &wv):
					if wv.Actual < 0 {
						errs <- fmt.Errorf("writer %d: got Actual %d after the stream existed", w, wv.Actual)
						return
					}
					expected = eventlog.Exact(uint64(wv.Actual))
				default:
					errs <- err
					return
				}
				if int64(expected) >= contendedVersions-1 {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	recs := mustReadStream(t, l, stream, 0, 0)
	if len(recs) < contendedVersions || len(recs) > contendedVersions+concurrentWriters {
		t.Fatalf("got %d records, want between %d and %d", len(recs), contendedVersions, contendedVersions+concurrentWriters)
	}
	if len(winners) != len(recs) {
		t.Fatalf("got %d successful appends, want %d (one per version)", len(winners), len(recs))
	}
	for i, r := range recs {
		if r.Version != uint64(i) {
			t.Fatalf("record %d: got version %d, want %d (no gaps)", i, r.Version, i)
		}
		if string(r.Data) != winners[r.Version] {
			t.Fatalf("version %d: got payload %q, want the winner's %q", i, r.Data, winners[r.Version])
		}
	}
	checkIncreasing(t, recs)
}

func testConcurrentManyStreams(t *testing.T, l eventlog.Log) {
	var wg sync.WaitGroup
	errs := make(chan error, concurrentWriters)
	results := make([][]eventlog.AppendResult, concurrentWriters)
	for w := range concurrentWriters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			stream := fmt.Sprintf("endpoint-%d", w)
			for i := range appendsPerWriter {
				expected := eventlog.NoStream
				if i > 0 {
					expected = eventlog.Exact(uint64(2*i - 1))
				}
				res, err := l.Append(ctxFor(t), stream, expected, ev("a", fmt.Sprint(i)), ev("b", fmt.Sprint(i)))
				if err != nil {
					errs <- fmt.Errorf("writer %d append %d: %w", w, i, err)
					return
				}
				results[w] = append(results[w], res)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := mustReadAll(t, l, eventlog.Start, 0)
	if want := concurrentWriters * appendsPerWriter * 2; len(all) != want {
		t.Fatalf("got %d records, want %d", len(all), want)
	}
	checkIncreasing(t, all)
	byPos := map[eventlog.Position]eventlog.Record{}
	next := map[string]uint64{}
	for i, r := range all {
		if r.Version != next[r.Stream] {
			t.Fatalf("record %d: got %s, want version %d of its stream (stream order follows global order)", i, describe(r), next[r.Stream])
		}
		next[r.Stream]++
		byPos[r.Position] = r
		// An append's two events are adjacent in the global order.
		if r.Type == "b" && (i == 0 || all[i-1].Stream != r.Stream || all[i-1].Type != "a") {
			t.Fatalf("record %d: got %s not directly after its append's first event", i, describe(r))
		}
	}
	for w, rs := range results {
		for i, res := range rs {
			r, ok := byPos[res.Position]
			if !ok || r.Stream != fmt.Sprintf("endpoint-%d", w) || r.Version != res.Version || r.Type != "b" || string(r.Data) != fmt.Sprint(i) {
				t.Fatalf("writer %d append %d: AppendResult %+v does not point at its last event (found %s)", w, i, res, describe(r))
			}
		}
	}
}

func testLargeRecord(t *testing.T, l eventlog.Log) {
	big := make([]byte, largeRecordBytes)
	for i := range big {
		big[i] = byte(i*7 + i>>11)
	}
	mustAppend(t, l, "big", eventlog.NoStream, eventlog.Event{Type: "blob", Data: big}, ev("small", "x"))
	mustAppend(t, l, "big", eventlog.Exact(1), eventlog.Event{Type: "blob", Data: big[:largeRecordBytes-1]})
	recs := mustReadStream(t, l, "big", 0, 0)
	if len(recs) != 3 {
		t.Fatalf("got %d records, want 3", len(recs))
	}
	if !bytes.Equal(recs[0].Data, big) || string(recs[1].Data) != "x" || !bytes.Equal(recs[2].Data, big[:largeRecordBytes-1]) {
		t.Fatalf("large records: got sizes %d, %d, %d, want %d, 1, %d with the same bytes", len(recs[0].Data), len(recs[1].Data), len(recs[2].Data), largeRecordBytes, largeRecordBytes-1)
	}
	all := mustReadAll(t, l, eventlog.Start, 0)
	if len(all) != 3 || !bytes.Equal(all[0].Data, big) {
		t.Fatalf("ReadAll: got %d records, want 3 with the 1 MiB one first", len(all))
	}
}

// streamNames are names a backend must keep apart: unicode, names that are
// prefixes of each other, separators and a long name.
var streamNames = []string{
	"a", "ab", "a b", "a/b", "a-b", "a\tb", "aa", "b", "ab ",
	"tailnet-ünïcødé.example", "tailnet-例え.jp", "endpoint-😀", "endpoint-😀😀",
	strings.Repeat("x", 300), strings.Repeat("x", 301),
}

func testStreamNames(t *testing.T, l eventlog.Log) {
	for i, s := range streamNames {
		for j := range i%3 + 1 {
			mustAppend(t, l, s, eventlog.Any, ev("t", fmt.Sprintf("%d/%d", i, j)))
		}
	}
	for i, s := range streamNames {
		recs := mustReadStream(t, l, s, 0, 0)
		if len(recs) != i%3+1 {
			t.Fatalf("stream %q: got %d records, want %d", s, len(recs), i%3+1)
		}
		for j, r := range recs {
			if r.Stream != s || r.Version != uint64(j) || string(r.Data) != fmt.Sprintf("%d/%d", i, j) {
				t.Fatalf("stream %q record %d: got %s", s, j, describe(r))
			}
		}
		// The stream's version is its own, not a prefix neighbour's.
		_, err := l.Append(ctxFor(t), s, eventlog.Exact(uint64(i%3)+1), ev("t", "wrong"))
		wantWrongVersion(t, err, s, eventlog.Exact(uint64(i%3)+1), int64(i%3))
	}
	if got := mustReadAll(t, l, eventlog.Start, 0); len(got) != len(streamNames)*2 {
		t.Fatalf("ReadAll: got %d records, want %d", len(got), len(streamNames)*2)
	}
}

func testEmptyReads(t *testing.T, l eventlog.Log) {
	if got := mustReadAll(t, l, eventlog.Start, 0); len(got) != 0 {
		t.Fatalf("ReadAll on an empty log: got %d records, want 0", len(got))
	}
	if got := mustReadStream(t, l, "missing", 0, 10); len(got) != 0 {
		t.Fatalf("ReadStream of a missing stream: got %d records, want 0", len(got))
	}
	res := mustAppend(t, l, "s", eventlog.NoStream, ev("t", "0"), ev("t", "1"))
	if got := mustReadAll(t, l, res.Position, 0); len(got) != 0 {
		t.Fatalf("ReadAll after the last position: got %d records, want 0", len(got))
	}
	if got := mustReadAll(t, l, res.Position+1000, 5); len(got) != 0 {
		t.Fatalf("ReadAll far past the end: got %d records, want 0", len(got))
	}
	if got := mustReadStream(t, l, "s", 2, 0); len(got) != 0 {
		t.Fatalf("ReadStream past the stream's end: got %d records, want 0", len(got))
	}
	if got := mustReadStream(t, l, "s", 1, 0); len(got) != 1 || got[0].Version != 1 {
		t.Fatalf("ReadStream from version 1: got %v, want version 1 only", got)
	}
	if got := mustReadStream(t, l, "", 0, 0); len(got) != 0 {
		t.Fatalf("ReadStream of the empty name: got %d records, want 0", len(got))
	}
}

func testInvalidArguments(t *testing.T, l eventlog.Log) {
	cases := []struct {
		name     string
		stream   string
		expected eventlog.ExpectedVersion
		events   []eventlog.Event
	}{
		{"EmptyStream", "", eventlog.Any, []eventlog.Event{ev("t", "x")}},
		{"NoEvents", "s", eventlog.Any, nil},
		{"EmptyType", "s", eventlog.Any, []eventlog.Event{{Data: []byte("x")}}},
		{"BadExpected", "s", eventlog.ExpectedVersion(-3), []eventlog.Event{ev("t", "x")}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := l.Append(ctxFor(t), c.stream, c.expected, c.events...)
			if !errors.Is(err, eventlog.ErrInvalid) {
				t.Fatalf("got error %v, want ErrInvalid", err)
			}
		})
	}
	if got := mustReadAll(t, l, eventlog.Start, 0); len(got) != 0 {
		t.Fatalf("after invalid appends: got %d records, want 0", len(got))
	}
}

func testCanceledAppend(t *testing.T, l eventlog.Log) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := l.Append(ctx, "s", eventlog.Any, ev("t", "x")); !errors.Is(err, context.Canceled) {
		t.Fatalf("Append with a canceled context: got %v, want context.Canceled", err)
	}
	if got := mustReadAll(t, l, eventlog.Start, 0); len(got) != 0 {
		t.Fatalf("after a canceled append: got %d records, want 0", len(got))
	}
}

func testClosedLog(t *testing.T, l eventlog.Log) {
	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "0"))
	caughtUp, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatalf("Subscribe: got error %v, want nil", err)
	}
	drain(t, caughtUp, 1)
	blocked := make(chan error, 1)
	go func() {
		_, err := caughtUp.Next(ctxFor(t))
		blocked <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if err := <-blocked; !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("blocked Next after Close: got %v, want ErrClosed", err)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("second Close: got %v, want nil (idempotent)", err)
	}
	ctx := ctxFor(t)
	calls := map[string]func() error{
		"Append": func() error {
			_, err := l.Append(ctx, "s", eventlog.Any, ev("t", "x"))
			return err
		},
		"ReadStream": func() error { _, err := l.ReadStream(ctx, "s", 0, 0); return err },
		"ReadAll":    func() error { _, err := l.ReadAll(ctx, eventlog.Start, 0); return err },
		"Subscribe":  func() error { _, err := l.Subscribe(ctx, eventlog.Start); return err },
		"Next":       func() error { _, err := caughtUp.Next(ctx); return err },
	}
	for name, call := range calls {
		if err := call(); !errors.Is(err, eventlog.ErrClosed) {
			t.Errorf("%s after Close: got %v, want ErrClosed", name, err)
		}
	}
}
