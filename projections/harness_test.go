package projections_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/embedded"
)

// waitLimit bounds every wait for a condition.
const waitLimit = 20 * time.Second

var (
	t0      = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)
	discard = slog.New(slog.NewTextHandler(io.Discard, nil))
)

// scriptedReceiver is a real HTTPS endpoint that answers its n-th POST
// with statuses[n] (the last one from then on) and remembers the event ids
// of every POST.
type scriptedReceiver struct {
	*httptest.Server
	mu       sync.Mutex
	statuses []int
	posts    [][]string
}

func newScriptedReceiver(t *testing.T, statuses ...int) *scriptedReceiver {
	r := &scriptedReceiver{statuses: statuses}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var evs []struct {
			ID string `json:"id"`
		}
		_ = json.NewDecoder(req.Body).Decode(&evs)
		ids := make([]string, len(evs))
		for i, e := range evs {
			ids[i] = e.ID
		}
		r.mu.Lock()
		status := r.statuses[min(len(r.posts), len(r.statuses)-1)]
		r.posts = append(r.posts, ids)
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *scriptedReceiver) received() [][]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([][]string(nil), r.posts...)
}

// waitTimers waits until exactly n timers are armed on the fake clock:
// the endpoint actors are its only users, and an actor arms its timer only
// after it logged what it did.
func waitTimers(t *testing.T, fc *clock.Fake, n int, what string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := fc.WaitFor(ctx, func(c *clock.Fake) bool { return c.Pending() == n }); err != nil {
		t.Fatalf("%s: got %d timers armed after %v, want %d", what, fc.Pending(), waitLimit, n)
	}
}

// waitRecords waits until the log holds n records that match.
func waitRecords(t *testing.T, log eventlog.Log, n int, what string, match func(eventlog.Record) bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	sub, err := log.Subscribe(ctx, eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for got := 0; got < n; {
		rec, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("%s: got %d records, want %d (%v)", what, got, n, err)
		}
		if match(rec) {
			got++
		}
	}
}

func openLog(t *testing.T, dir string) *embedded.Log {
	t.Helper()
	l, err := embedded.Open(dir, embedded.Options{Logger: discard})
	if err != nil {
		t.Fatalf("open the log: %v", err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// lastPosition is the position of the log's last record.
func lastPosition(t *testing.T, log eventlog.Log) eventlog.Position {
	t.Helper()
	recs, err := log.ReadAll(context.Background(), eventlog.Start, 0)
	if err != nil || len(recs) == 0 {
		t.Fatalf("read the log: %d records, %v", len(recs), err)
	}
	return recs[len(recs)-1].Position
}

// script builds records as the actors write them: endpoint records from
// the endpoint package's own record types, notifications in the tailnet
// stream's documented layout (actors/tailnet/doc.go). It numbers
// positions and stream versions as a log would.
type script struct {
	t        testing.TB
	recs     []eventlog.Record
	versions map[string]uint64
}

func newScript(t testing.TB) *script { return &script{t: t, versions: map[string]uint64{}} }

func (s *script) add(stream, typ string, v any) eventlog.Record {
	data, ok := v.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(v); err != nil {
			s.t.Fatal(err)
		}
	}
	rec := eventlog.Record{Stream: stream, Version: s.versions[stream], Position: eventlog.Position(len(s.recs) + 1), Type: typ, Data: data}
	s.versions[stream]++
	s.recs = append(s.recs, rec)
	return rec
}

// notify adds a notification of event id to tailnet name's stream, with a
// field a later Herald might add.
func (s *script) notify(name, id, typ string, targets ...string) {
	if targets == nil {
		targets = []string{}
	}
	tj, _ := json.Marshal(targets)
	s.add(tailnet.StreamName(name), "notification", fmt.Appendf(nil,
		`{"type":"notification","v":1,"eventId":%q,"eventType":%q,"targets":%s,"payload":"e30=","raisedBy":"a later version"}`, id, typ, tj))
}

func (s *script) queued(ep, id string, at time.Time) {
	s.add(endpoint.StreamName(ep), endpoint.TypeQueued, &endpoint.QueuedRecord{
		Type: endpoint.TypeQueued, V: endpoint.SchemaVersion, Event: id, QueuedAt: at, Payload: []byte(`{}`),
	})
}

// attempt adds an attempt of ids at ep that got status (0: a connection
// error) at started, with result for every event.
func (s *script) attempt(ep, attemptID string, status int, started time.Time, result string, ids ...string) {
	r := &endpoint.AttemptRecord{
		Type: endpoint.TypeAttempt, V: endpoint.SchemaVersion, ID: attemptID, Events: ids,
		Started: started, Finished: started.Add(time.Second), StatusCode: status,
		Outcomes: []endpoint.EventOutcome{{Result: result, Events: ids}},
	}
	if status == 0 {
		r.ErrorClass, r.Error = "connect", "connection refused"
	}
	switch result {
	case endpoint.ResultRetry:
		r.Outcomes[0].NextDue = started.Add(time.Hour)
	case endpoint.ResultAbandoned:
		r.Outcomes[0].Reason = endpoint.ReasonWindowExhausted
	}
	s.add(endpoint.StreamName(ep), endpoint.TypeAttempt, r)
}

func (s *script) abandoned(ep string, at time.Time, ids ...string) {
	s.add(endpoint.StreamName(ep), endpoint.TypeAbandoned, &endpoint.AbandonedRecord{
		Type: endpoint.TypeAbandoned, V: endpoint.SchemaVersion, Events: ids, At: at, Reason: endpoint.ReasonWindowClosed,
	})
}
