package esdbserver_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/herald-webhooks/herald/internal/esdbserver"
)

const testTimeout = 10 * time.Second

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// start runs a server and returns the real client connected to it.
func start(t *testing.T) (*esdb.Client, *esdbserver.Server) {
	t.Helper()
	conn, srv := esdbserver.Start(t)
	cfg, err := esdb.ParseConnectionString(conn)
	if err != nil {
		t.Fatalf("ParseConnectionString(%q): %v", conn, err)
	}
	cfg.Logger = esdb.NoopLogging()
	c, err := esdb.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, srv
}

func appendN(t *testing.T, c *esdb.Client, stream string, n int) *esdb.WriteResult {
	t.Helper()
	var events []esdb.EventData
	for i := range n {
		events = append(events, esdb.EventData{EventType: "t", Data: []byte(fmt.Sprintf("%s-%d", stream, i))})
	}
	res, err := c.AppendToStream(ctxFor(t), stream, esdb.AppendToStreamOptions{}, events...)
	if err != nil {
		t.Fatalf("append %d to %q: %v", n, stream, err)
	}
	return res
}

// appendLater appends one event to each stream, in order, from another
// goroutine, which the test waits for before it ends.
func appendLater(t *testing.T, c *esdb.Client, streams ...string) {
	ctx := ctxFor(t)
	done := make(chan struct{})
	t.Cleanup(func() { <-done })
	go func() {
		defer close(done)
		for _, s := range streams {
			if _, err := c.AppendToStream(ctx, s, esdb.AppendToStreamOptions{}, esdb.EventData{EventType: "t", Data: []byte(s + "-0")}); err != nil {
				t.Errorf("append to %q: %v", s, err)
			}
		}
	}()
}

func readAll(t *testing.T, rs *esdb.ReadStream, err error) ([]*esdb.ResolvedEvent, error) {
	t.Helper()
	if err != nil {
		return nil, err
	}
	defer rs.Close()
	var out []*esdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ev)
	}
}

func data(evs []*esdb.ResolvedEvent) []string {
	var out []string
	for _, ev := range evs {
		out = append(out, string(ev.Event.Data))
	}
	return out
}

func TestStreamReads(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "s", 5)
	cases := []struct {
		name  string
		opts  esdb.ReadStreamOptions
		count uint64
		want  string
	}{
		{"ForwardsFromStart", esdb.ReadStreamOptions{From: esdb.Start{}}, 10, "[s-0 s-1 s-2 s-3 s-4]"},
		{"ForwardsFromRevisionInclusive", esdb.ReadStreamOptions{From: esdb.Revision(2)}, 2, "[s-2 s-3]"},
		{"ForwardsFromEnd", esdb.ReadStreamOptions{From: esdb.End{}}, 10, "[]"},
		{"BackwardsFromEnd", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.End{}}, 2, "[s-4 s-3]"},
		{"BackwardsFromRevisionInclusive", esdb.ReadStreamOptions{Direction: esdb.Backwards, From: esdb.Revision(1)}, 10, "[s-1 s-0]"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rs, err := c.ReadStream(ctxFor(t), "s", tc.opts, tc.count)
			evs, err := readAll(t, rs, err)
			if err != nil {
				t.Fatalf("read: %v", err)
			}
			if got := fmt.Sprint(data(evs)); got != tc.want {
				t.Fatalf("got %s, want %s", got, tc.want)
			}
			for _, ev := range evs {
				if ev.Event.CreatedDate.IsZero() || ev.Event.EventType != "t" || ev.Event.ContentType != "application/octet-stream" {
					t.Fatalf("event metadata: got created %v type %q content type %q, want all set", ev.Event.CreatedDate, ev.Event.EventType, ev.Event.ContentType)
				}
			}
		})
	}
}

func TestMissingStreamIsNotFound(t *testing.T) {
	c, _ := start(t)
	rs, err := c.ReadStream(ctxFor(t), "missing", esdb.ReadStreamOptions{}, 10)
	_, err = readAll(t, rs, err)
	var e *esdb.Error
	if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeResourceNotFound {
		t.Fatalf("reading a missing stream: got %v, want ErrorCodeResourceNotFound", err)
	}
}

func TestExpectedRevisions(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "s", 2) // revisions 0 and 1
	cases := []struct {
		name     string
		stream   string
		expected esdb.ExpectedRevision
		wantErr  bool
		wantText string // the current revision the answer names
	}{
		{"AnyOnExisting", "s", esdb.Any{}, false, ""},
		{"RevisionMatches", "s", esdb.Revision(2), false, ""},
		{"RevisionStale", "s", esdb.Revision(0), true, "but got '3'"},
		{"NoStreamOnExisting", "s", esdb.NoStream{}, true, "but got '3'"},
		{"StreamExistsOnExisting", "s", esdb.StreamExists{}, false, ""},
		{"StreamExistsOnMissing", "fresh", esdb.StreamExists{}, true, "but got 'no_stream'"},
		{"RevisionOnMissing", "fresh", esdb.Revision(0), true, "but got 'no_stream'"},
		{"NoStreamOnMissing", "fresh", esdb.NoStream{}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := c.AppendToStream(ctxFor(t), tc.stream, esdb.AppendToStreamOptions{ExpectedRevision: tc.expected},
				esdb.EventData{EventType: "t", Data: []byte(tc.name)})
			if !tc.wantErr {
				if err != nil {
					t.Fatalf("got error %v, want success", err)
				}
				if res.CommitPosition == 0 || res.CommitPosition != res.PreparePosition {
					t.Fatalf("got positions %d/%d, want equal commit and prepare positions > 0", res.CommitPosition, res.PreparePosition)
				}
				return
			}
			var e *esdb.Error
			if !errors.As(err, &e) || e.Code() != esdb.ErrorCodeWrongExpectedVersion {
				t.Fatalf("got %v, want ErrorCodeWrongExpectedVersion", err)
			}
			if got := err.Error(); !strings.Contains(got, tc.wantText) {
				t.Fatalf("got %q, want it to name %q", got, tc.wantText)
			}
		})
	}
}

func TestRepeatedAppendIsIdempotent(t *testing.T) {
	c, srv := start(t)
	events := []esdb.EventData{
		{EventID: uuid.New(), EventType: "t", Data: []byte("a")},
		{EventID: uuid.New(), EventType: "t", Data: []byte("b")},
	}
	first, err := c.AppendToStream(ctxFor(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, events...)
	if err != nil {
		t.Fatal(err)
	}
	again, err := c.AppendToStream(ctxFor(t), "s", esdb.AppendToStreamOptions{ExpectedRevision: esdb.Any{}}, events...)
	if err != nil {
		t.Fatalf("repeated append: got %v, want success", err)
	}
	if *again != *first {
		t.Fatalf("repeated append: got %+v, want the first answer %+v", *again, *first)
	}
	rs, err := c.ReadStream(ctxFor(t), "s", esdb.ReadStreamOptions{}, 10)
	evs, err := readAll(t, rs, err)
	if err != nil || len(evs) != 2 {
		t.Fatalf("after a repeated append: got %d events (%v), want 2", len(evs), err)
	}
	if got := srv.Appends(); got != 2 {
		t.Fatalf("Appends: got %d, want 2 (both requests reached the log)", got)
	}
}

// TestAllPositions checks the $all position rules the backend relies on:
// positions strictly increase and are sparse, a read from a position
// includes it, a subscription from a position starts after it, and a
// position inside a record is refused.
func TestAllPositions(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "a", 3)
	appendN(t, c, "b", 3)
	rs, err := c.ReadAll(ctxFor(t), esdb.ReadAllOptions{From: esdb.Start{}}, 100)
	all, err := readAll(t, rs, err)
	if err != nil {
		t.Fatal(err)
	}
	var user []*esdb.ResolvedEvent
	for i, ev := range all {
		if i > 0 && ev.Event.Position.Commit <= all[i-1].Event.Position.Commit+1 {
			t.Fatalf("position %d after %d: want strictly increasing and sparse", ev.Event.Position.Commit, all[i-1].Event.Position.Commit)
		}
		if ev.Event.StreamID[0] != '$' {
			user = append(user, ev)
		}
	}
	if len(all) == len(user) {
		t.Fatalf("$all: got no system events, want a fresh database's")
	}
	mid := user[2].Event.Position
	rs, err = c.ReadAll(ctxFor(t), esdb.ReadAllOptions{From: mid}, 2)
	got, err := readAll(t, rs, err)
	if err != nil || fmt.Sprint(data(got)) != "[a-2 b-0]" {
		t.Fatalf("read from a position: got %v (%v), want [a-2 b-0] (inclusive)", data(got), err)
	}
	rs, err = c.ReadAll(ctxFor(t), esdb.ReadAllOptions{Direction: esdb.Backwards, From: mid}, 2)
	got, err = readAll(t, rs, err)
	if err != nil || fmt.Sprint(data(got)) != "[a-1 a-0]" {
		t.Fatalf("read backwards from a position: got %v (%v), want [a-1 a-0]", data(got), err)
	}
	inside := esdb.Position{Commit: mid.Commit + 1, Prepare: mid.Commit + 1}
	rs, err = c.ReadAll(ctxFor(t), esdb.ReadAllOptions{From: inside}, 2)
	if _, err = readAll(t, rs, err); !strings.Contains(fmt.Sprint(err), "invalid position") {
		t.Fatalf("read from inside a record: got %v, want an invalid position error", err)
	}
	if _, err := c.SubscribeToAll(ctxFor(t), esdb.SubscribeToAllOptions{From: inside}); !strings.Contains(fmt.Sprint(err), "invalid position") {
		t.Fatalf("subscribe from inside a record: got %v, want an invalid position error", err)
	}
	sub, err := c.SubscribeToAll(ctxFor(t), esdb.SubscribeToAllOptions{From: mid})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if ev := nextEvent(t, sub); string(ev.Event.Data) != "b-0" {
		t.Fatalf("subscription from a position: got %q first, want b-0 (exclusive)", ev.Event.Data)
	}
}

func nextEvent(t *testing.T, sub *esdb.Subscription) *esdb.ResolvedEvent {
	t.Helper()
	for {
		e := sub.Recv()
		switch {
		case e.EventAppeared != nil:
			return e.EventAppeared
		case e.SubscriptionDropped != nil:
			t.Fatalf("subscription dropped: %v", e.SubscriptionDropped.Error)
		}
	}
}

func TestFilteredSubscription(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "keep-1", 2)
	appendN(t, c, "skip-1", 40)
	sub, err := c.SubscribeToAll(ctxFor(t), esdb.SubscribeToAllOptions{
		From:               esdb.Start{},
		Filter:             &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{"keep-"}},
		MaxSearchWindow:    4,
		CheckpointInterval: 2,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var got []string
	checkpoints, caughtUp := 0, false
	var lastCheckpoint uint64
	for len(got) < 3 {
		e := sub.Recv()
		switch {
		case e.EventAppeared != nil:
			got = append(got, string(e.EventAppeared.Event.Data))
		case e.CheckPointReached != nil:
			if e.CheckPointReached.Commit <= lastCheckpoint {
				t.Fatalf("checkpoint %d after %d: want increasing", e.CheckPointReached.Commit, lastCheckpoint)
			}
			lastCheckpoint = e.CheckPointReached.Commit
			checkpoints++
		case e.CaughtUp != nil:
			if len(got) != 2 {
				t.Fatalf("caught up after %v, want after the two keep-1 events", got)
			}
			caughtUp = true
			appendLater(t, c, "keep-2") // live
		case e.SubscriptionDropped != nil:
			t.Fatalf("dropped: %v", e.SubscriptionDropped.Error)
		}
	}
	if fmt.Sprint(got) != "[keep-1-0 keep-1-1 keep-2-0]" {
		t.Fatalf("filtered subscription: got %v, want the keep- events only", got)
	}
	// 44 user and system events past a window of 4 times 2.
	if checkpoints < 5 || !caughtUp {
		t.Fatalf("got %d checkpoints and caught-up %v, want at least 5 and true", checkpoints, caughtUp)
	}
}

func TestStreamSubscription(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "s", 3)
	appendN(t, c, "other", 1)
	sub, err := c.SubscribeToStream(ctxFor(t), "s", esdb.SubscribeToStreamOptions{From: esdb.Revision(0)})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	appendLater(t, c, "other", "s")
	var got []string
	for len(got) < 3 {
		got = append(got, string(nextEvent(t, sub).Event.Data))
	}
	if fmt.Sprint(got) != "[s-1 s-2 s-0]" {
		t.Fatalf("stream subscription after revision 0: got %v, want [s-1 s-2 s-0] (the last one live)", got)
	}
}

func TestSoftDelete(t *testing.T) {
	c, _ := start(t)
	appendN(t, c, "s", 2)
	if _, err := c.DeleteStream(ctxFor(t), "s", esdb.DeleteStreamOptions{ExpectedRevision: esdb.Revision(1)}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	rs, err := c.ReadStream(ctxFor(t), "s", esdb.ReadStreamOptions{}, 10)
	if _, err := readAll(t, rs, err); !isCode(err, esdb.ErrorCodeResourceNotFound) {
		t.Fatalf("read after delete: got %v, want not found", err)
	}
	res := appendN(t, c, "s", 1)
	if res.NextExpectedVersion != 2 {
		t.Fatalf("append after delete: got revision %d, want 2 (numbering continues)", res.NextExpectedVersion)
	}
	rs, err = c.ReadStream(ctxFor(t), "s", esdb.ReadStreamOptions{}, 10)
	evs, err := readAll(t, rs, err)
	if err != nil || len(evs) != 1 || evs[0].Event.EventNumber != 2 {
		t.Fatalf("read after delete and append: got %d events (%v), want revision 2 only", len(evs), err)
	}
	meta, err := c.GetStreamMetadata(ctxFor(t), "s", esdb.ReadStreamOptions{})
	if err != nil || meta.TruncateBefore() == nil || *meta.TruncateBefore() != 2 {
		t.Fatalf("metadata after delete: got %+v (%v), want truncate-before 2", meta, err)
	}
}

func isCode(err error, code esdb.ErrorCode) bool {
	var e *esdb.Error
	return errors.As(err, &e) && e.Code() == code
}

func TestFaults(t *testing.T) {
	cases := []struct {
		name        string
		fault       esdbserver.Fault
		wantWritten bool
	}{
		{"Unavailable", esdbserver.FaultUnavailable, false},
		{"LoseResponse", esdbserver.FaultLoseResponse, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, srv := start(t)
			srv.FailNextAppend(tc.fault)
			_, err := c.AppendToStream(ctxFor(t), "s", esdb.AppendToStreamOptions{}, esdb.EventData{EventType: "t"})
			if !isCode(err, esdb.ErrorUnavailable) {
				t.Fatalf("faulty append: got %v, want ErrorUnavailable", err)
			}
			// The client reconnects on the next call.
			rs, err := c.ReadStream(ctxFor(t), "s", esdb.ReadStreamOptions{}, 10)
			evs, err := readAll(t, rs, err)
			if err != nil && !isCode(err, esdb.ErrorCodeResourceNotFound) {
				t.Fatalf("reading back: %v", err)
			}
			if written := len(evs) == 1; written != tc.wantWritten {
				t.Fatalf("written: got %v, want %v", written, tc.wantWritten)
			}
			// The fault fires once.
			if _, err := c.AppendToStream(ctxFor(t), "s", esdb.AppendToStreamOptions{}, esdb.EventData{EventType: "t"}); err != nil {
				t.Fatalf("next append: got %v, want success", err)
			}
		})
	}
}

func TestRestartKeepsData(t *testing.T) {
	c, srv := start(t)
	appendN(t, c, "s", 2)
	addr := srv.Addr()
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	if srv.Addr() != addr {
		t.Fatalf("after Restart: got address %s, want %s", srv.Addr(), addr)
	}
	var evs []*esdb.ResolvedEvent
	ctx := ctxFor(t)
	for {
		rs, err := c.ReadStream(ctx, "s", esdb.ReadStreamOptions{}, 10)
		if evs, err = readAll(t, rs, err); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("reading after restart: %v", err)
		}
	}
	if len(evs) != 2 {
		t.Fatalf("after Restart: got %d events, want 2", len(evs))
	}
}
