package endpoint

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/signer"
)

// first is when the first attempt of events notified at t0 happens.
var first = t0.Add(DefaultBatchLinger)

// verify checks a request's signature with exactly these secrets at the
// time it arrived, with no tolerance: it was signed at that attempt.
func verify(rq request, secrets ...string) error {
	return signer.Verify(rq.header.Get(signer.HeaderName), rq.body, secrets, rq.at, 0)
}

// checkAttempt checks the k-th request (0-based) and attempt record.
func checkAttempt(t *testing.T, k int, rq request, rec *AttemptRecord, due time.Time, want []string) {
	t.Helper()
	if !rq.at.Equal(due) || !rec.Started.Equal(due) {
		t.Fatalf("attempt %d: request at t0+%v, record started t0+%v; want t0+%v", k+1, rq.at.Sub(t0), rec.Started.Sub(t0), due.Sub(t0))
	}
	if err := verify(rq, secretA); err != nil {
		t.Fatalf("attempt %d: signature: %v", k+1, err)
	}
	if !slices.Equal(rq.ids, want) || !slices.Equal(rec.Events, want) {
		t.Fatalf("attempt %d: body ids %v, record events %v; want %v", k+1, rq.ids, rec.Events, want)
	}
	if rec.BodyBytes != len(rq.body) {
		t.Fatalf("attempt %d: record says %d body bytes, %d were sent", k+1, rec.BodyBytes, len(rq.body))
	}
	if got := rq.header.Get("Content-Type"); got != "application/json" {
		t.Fatalf("attempt %d: Content-Type %q, want application/json", k+1, got)
	}
}

// checkQuiet advances far into the future and checks that nothing more
// happens: no timer pending, no request, no record.
func checkQuiet(t *testing.T, h *harness, ep *epHandle, r *receiver, requests, attempts int) {
	t.Helper()
	if n := h.clk.Pending(); n != 0 {
		d, _ := h.clk.NextDue()
		t.Fatalf("%d timers pending (next at t0+%v), want none", n, d.Sub(t0))
	}
	h.clk.Advance(100 * time.Hour)
	ep.status() // a round trip: the actor has handled anything the clock caused
	if got := r.count(); got != requests {
		t.Fatalf("got %d requests after advancing far past the window, want %d", got, requests)
	}
	if got := len(h.attempts(ep.id)); got != attempts {
		t.Fatalf("got %d attempt records, want %d", got, attempts)
	}
}

func TestExactScheduleAlwaysFailing(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(alwaysFail)
	ep := h.spawn(h.settings("ep1", r))
	ns := h.raise(events.NodeCreated, 2, "ep1")
	ep.notify(ns...)

	const attempts = 25
	for k := range attempts {
		due := first.Add(time.Duration(k) * time.Hour)
		h.fire(due)
		recs := h.waitAttempts("ep1", k+1)
		rq := r.waitCount(k + 1)[k]
		checkAttempt(t, k, rq, recs[k], due, ids(ns))
		if len(recs[k].Outcomes) != 1 || len(recs[k].Outcomes[0].Events) != 2 {
			t.Fatalf("attempt %d: outcomes %+v, want one for both events (they fail together)", k+1, recs[k].Outcomes)
		}
		for _, o := range recs[k].Outcomes {
			switch {
			case k < attempts-1 && (o.Result != ResultRetry || !o.NextDue.Equal(due.Add(time.Hour))):
				t.Fatalf("attempt %d: outcome %+v, want retry at t0+%v", k+1, o, due.Add(time.Hour).Sub(t0))
			case k == attempts-1 && (o.Result != ResultAbandoned || o.Reason != ReasonWindowExhausted):
				t.Fatalf("last attempt: outcome %+v, want abandoned (%s)", o, ReasonWindowExhausted)
			}
		}
		if recs[k].StatusCode != http.StatusServiceUnavailable || recs[k].ErrorClass != "status" {
			t.Fatalf("attempt %d: record status %d class %q, want 503 status", k+1, recs[k].StatusCode, recs[k].ErrorClass)
		}
	}
	if last := r.requests()[attempts-1].at; !last.Equal(first.Add(24 * time.Hour)) {
		t.Fatalf("last attempt at t0+%v, want t0+24h", last.Sub(first))
	}
	st := ep.waitStatus("both events abandoned", func(s *Status) bool { return s.Abandoned == 2 })
	if st.Pending != 0 || st.Delivered != 0 || st.Attempts != attempts || !st.NextDue.IsZero() {
		t.Fatalf("status %+v, want nothing pending, %d attempts, no due time", st, attempts)
	}
	checkQuiet(t, h, ep, r, attempts, attempts)
}

func TestExactScheduleDeliveredAtSeventh(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(6))
	ep := h.spawn(h.settings("ep1", r))
	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	for k := range 7 {
		due := first.Add(time.Duration(k) * time.Hour)
		h.fire(due)
		recs := h.waitAttempts("ep1", k+1)
		checkAttempt(t, k, r.waitCount(k + 1)[k], recs[k], due, ids(ns))
	}
	recs := h.attempts("ep1")
	if o := recs[6].Outcomes[0]; o.Result != ResultDelivered || recs[6].StatusCode != 200 || !recs[6].OK() {
		t.Fatalf("7th attempt: %+v, outcome %+v; want delivered with 200", recs[6], o)
	}
	st := ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == 1 })
	if st.Pending != 0 || st.LastAttempt == nil || st.LastAttempt.ID != recs[6].ID {
		t.Fatalf("status %+v, want nothing pending and the 7th attempt last", st)
	}
	checkQuiet(t, h, ep, r, 7, 7)
}

func TestBurstIsBatched(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(nil)
	ep := h.spawn(h.settings("ep1", r))
	var all []Notification
	for range 50 {
		ns := h.raise(events.NodeCreated, 1, "ep1")
		all = append(all, ns...)
		ep.notify(ns...)
	}
	ep.waitStatus("50 queued", func(s *Status) bool { return s.Pending == 50 })
	h.fire(first)
	ep.waitStatus("50 delivered", func(s *Status) bool { return s.Delivered == 50 })
	reqs := r.requests()
	if len(reqs) > 2 {
		t.Fatalf("got %d POSTs for a burst of 50, want at most 2", len(reqs))
	}
	var got []string
	for _, rq := range reqs {
		var arr []json.RawMessage
		if err := json.Unmarshal(rq.body, &arr); err != nil {
			t.Fatalf("body is not a JSON array: %v", err)
		}
		for i, raw := range arr {
			// The exact bytes logged at raise time are what is sent.
			if want := all[len(got)+i].Payload; string(raw) != string(want) {
				t.Fatalf("event %d sent as %s, want the raised bytes %s", len(got)+i, raw, want)
			}
		}
		got = append(got, rq.ids...)
	}
	if !slices.Equal(got, ids(all)) {
		t.Fatalf("ids sent %v, want %v in order", got, ids(all))
	}
}

func TestBatchLimits(t *testing.T) {
	tests := []struct {
		name  string
		batch BatchPolicy
		n     int
	}{
		{"max events", BatchPolicy{MaxEvents: 10}, 35},
		{"max bytes", BatchPolicy{MaxBytes: 600}, 9},
		{"bigger than max bytes goes alone", BatchPolicy{MaxBytes: 100}, 3},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOpts{batch: tc.batch})
			r := h.newReceiver(nil)
			ep := h.spawn(h.settings("ep1", r))
			ns := h.raise(events.NodeCreated, tc.n, "ep1")

			// The batches a greedy cut in queue order gives; full ones go
			// at once, a last partial one after the linger.
			pol := tc.batch.withDefaults()
			var want []int
			count, size := 0, 0
			for _, n := range ns {
				if count > 0 && (count == pol.MaxEvents || events.BatchSize(size+len(n.Payload), count+1) > pol.MaxBytes) {
					want, count, size = append(want, count), 0, 0
				}
				count, size = count+1, size+len(n.Payload)
			}
			want = append(want, count)
			lastFull := count == pol.MaxEvents || events.BatchSize(size, count) >= pol.MaxBytes

			ep.notify(ns...)
			if !lastFull {
				h.fire(first)
			}
			ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == uint64(tc.n) })

			var got []int
			var sent []string
			for i, rq := range r.requests() {
				got = append(got, len(rq.ids))
				sent = append(sent, rq.ids...)
				if len(rq.ids) > pol.MaxEvents || (len(rq.body) > pol.MaxBytes && len(rq.ids) > 1) {
					t.Fatalf("a POST of %d events, %d bytes exceeds %+v", len(rq.ids), len(rq.body), pol)
				}
				if last := i == len(want)-1; !(last && !lastFull) && !rq.at.Equal(t0) {
					t.Fatalf("full batch %d sent at t0+%v, want at once", i+1, rq.at.Sub(t0))
				}
			}
			if !slices.Equal(got, want) || !slices.Equal(sent, ids(ns)) {
				t.Fatalf("batches of %v (ids %v), want %v in queue order", got, sent, want)
			}
			if pol.MaxBytes < len(ns[0].Payload) && !strings.Contains(h.logs.String(), "bigger than the batch byte limit") {
				t.Fatal("no warning logged for an event bigger than the byte limit")
			}
		})
	}
}

func TestOneRequestInFlight(t *testing.T) {
	h := newHarness(t, harnessOpts{batch: BatchPolicy{MaxEvents: 1}})
	slow := h.newReceiver(nil)
	fast := h.newReceiver(nil)
	gate := make(chan struct{})
	slow.mu.Lock()
	slow.gate = gate
	slow.mu.Unlock()
	ep := h.spawn(h.settings("slow", slow))
	other := h.spawn(h.settings("fast", fast))

	ns := h.raise(events.NodeCreated, 3, "slow")
	ep.notify(ns...)
	slow.waitCount(1)
	// The actor keeps taking messages while its request hangs.
	more := h.raise(events.NodeCreated, 2, "slow")
	ep.notify(more...)
	st := ep.waitStatus("5 pending", func(s *Status) bool { return s.Pending == 5 })
	if !st.InFlight {
		t.Fatalf("status %+v, want a request in flight", st)
	}
	// Another endpoint is not held up by the slow one.
	fn := h.raise(events.NodeCreated, 1, "fast")
	other.notify(fn...)
	other.waitStatus("the other endpoint delivered", func(s *Status) bool { return s.Delivered == 1 })
	if n := slow.count(); n != 1 {
		t.Fatalf("slow endpoint got %d requests while the first hangs, want 1", n)
	}
	for range 5 {
		gate <- struct{}{}
	}
	ep.waitStatus("all delivered", func(s *Status) bool { return s.Delivered == 5 })
	slow.mu.Lock()
	maxCur := slow.maxCur
	slow.mu.Unlock()
	if maxCur != 1 {
		t.Fatalf("up to %d concurrent requests to one endpoint, want 1", maxCur)
	}
	var sent []string
	for _, rq := range slow.requests() {
		sent = append(sent, rq.ids...)
	}
	if want := append(ids(ns), ids(more)...); !slices.Equal(sent, want) {
		t.Fatalf("sent %v, want %v one at a time in queue order", sent, want)
	}
}

func TestStableIDsPerEndpoint(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	ra := h.newReceiver(failFirst(2))
	rb := h.newReceiver(nil)
	a := h.spawn(h.settings("a", ra))
	b := h.spawn(h.settings("b", rb))
	ns := h.raise(events.NodeCreated, 3, "a", "b")
	a.notify(ns...)
	b.notify(ns...)
	h.waitTimers(2, first)
	h.clk.Set(first)
	h.waitAttempts("a", 1)
	h.waitAttempts("b", 1)
	h.fire(first.Add(time.Hour))
	h.waitAttempts("a", 2)
	h.fire(first.Add(2 * time.Hour))
	h.waitAttempts("a", 3)
	a.waitStatus("a delivered", func(s *Status) bool { return s.Delivered == 3 })

	for i, rq := range ra.requests() {
		if !slices.Equal(rq.ids, ids(ns)) {
			t.Fatalf("attempt %d to a carried ids %v, want the same %v every time", i+1, rq.ids, ids(ns))
		}
	}
	if got := len(h.attempts("a")); got != 3 {
		t.Fatalf("endpoint a: %d attempts, want 3", got)
	}
	if got := h.attempts("b"); len(got) != 1 || got[0].Outcomes[0].Result != ResultDelivered {
		t.Fatalf("endpoint b: attempts %+v, want one, delivered (tracked apart from a)", got)
	}
	if st := b.status(); st.Delivered != 3 || st.Attempts != 1 {
		t.Fatalf("endpoint b status %+v, want 3 delivered in 1 attempt", st)
	}
}

func TestRestartKeepsSchedule(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(3))
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 2, "ep1")
	ep.notify(ns...)
	h.fire(first)
	h.waitAttempts("ep1", 1)
	h.fire(first.Add(time.Hour))
	h.waitAttempts("ep1", 2)
	h.waitTimer(first.Add(2 * time.Hour))

	h.stopSystem()
	if n := h.clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending after the actors stopped, want 0", n)
	}
	h.clk.Set(first.Add(90 * time.Minute))
	h.restart()
	ep = h.spawn(s)
	st := ep.waitStatus("rebuilt", func(s *Status) bool { return s.Ready })
	if st.Pending != 2 || st.Attempts != 2 || !st.NextDue.Equal(first.Add(2*time.Hour)) {
		t.Fatalf("rebuilt status %+v, want 2 pending after 2 attempts, next at t0+2h", st)
	}
	h.fire(first.Add(2 * time.Hour)) // the original slot: t0 was not reset
	recs := h.waitAttempts("ep1", 3)
	checkAttempt(t, 2, r.waitCount(3)[2], recs[2], first.Add(2*time.Hour), ids(ns))
	h.fire(first.Add(3 * time.Hour))
	recs = h.waitAttempts("ep1", 4)
	checkAttempt(t, 3, r.waitCount(4)[3], recs[3], first.Add(3*time.Hour), ids(ns))
	ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == 2 })
	checkQuiet(t, h, ep, r, 4, 4)
}

func TestRestartAfterDowntimeCollapses(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(3))
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	h.fire(first)
	h.waitAttempts("ep1", 1)
	h.fire(first.Add(time.Hour))
	h.waitAttempts("ep1", 2)

	h.stopSystem()
	down := first.Add(4*time.Hour + 30*time.Minute) // slots 2h, 3h and 4h missed
	h.clk.Set(down)
	h.restart()
	ep = h.spawn(s)
	recs := h.waitAttempts("ep1", 3)
	checkAttempt(t, 2, r.waitCount(3)[2], recs[2], down, ids(ns))
	if o := recs[2].Outcomes[0]; !o.NextDue.Equal(first.Add(5 * time.Hour)) {
		t.Fatalf("after the collapsed attempt: next due t0+%v, want t0+5h (back on the grid)", o.NextDue.Sub(first))
	}
	h.fire(first.Add(5 * time.Hour))
	recs = h.waitAttempts("ep1", 4)
	checkAttempt(t, 3, r.waitCount(4)[3], recs[3], first.Add(5*time.Hour), ids(ns))
	ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == 1 })
	checkQuiet(t, h, ep, r, 4, 4)
}

func TestRestartAfterWindowAbandons(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(alwaysFail)
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 2, "ep1")
	ep.notify(ns...)
	h.fire(first)
	h.waitAttempts("ep1", 1)

	h.stopSystem()
	h.clk.Set(first.Add(25 * time.Hour))
	h.restart()
	ep = h.spawn(s)
	st := ep.waitStatus("abandoned", func(s *Status) bool { return s.Abandoned == 2 })
	if st.Pending != 0 || st.Attempts != 1 {
		t.Fatalf("status %+v, want nothing pending and no attempt after the window", st)
	}
	ab := ofType[AbandonedRecord](h.records("ep1"))
	if len(ab) != 1 || ab[0].Reason != ReasonWindowClosed || !slices.Equal(ab[0].Events, ids(ns)) || !ab[0].At.Equal(first.Add(25*time.Hour)) {
		t.Fatalf("abandoned records %+v, want one for %v with reason %q", ab, ids(ns), ReasonWindowClosed)
	}
	checkQuiet(t, h, ep, r, 1, 1)
}

func TestCatchUpAndDuplicates(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(nil)
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 3, "ep1")
	// Only the first reaches the actor: the process "crashes" between
	// logging the others and queueing them.
	ep.notify(ns[0])
	h.fire(first)
	ep.waitStatus("first delivered", func(s *Status) bool { return s.Delivered == 1 })
	h.restart()
	ep = h.spawn(s)
	ep.waitStatus("backlog queued", func(s *Status) bool { return s.Pending == 2 })
	h.fire(h.clk.Now().Add(DefaultBatchLinger))
	ep.waitStatus("backlog delivered", func(s *Status) bool { return s.Delivered == 3 })
	if rq := r.waitCount(2)[1]; !slices.Equal(rq.ids, ids(ns[1:])) {
		t.Fatalf("caught-up batch carried %v, want %v", rq.ids, ids(ns[1:]))
	}
	// A late duplicate from the tailnet actor is dropped.
	ep.notify(ns[1], ns[2])
	st := ep.status()
	if st.Pending != 0 || st.Delivered != 3 {
		t.Fatalf("status after duplicates %+v, want nothing pending, 3 delivered", st)
	}
	queued := ofType[QueuedRecord](h.records("ep1"))
	var got []uint64
	for _, q := range queued {
		got = append(got, q.TailnetVersion)
	}
	want := []uint64{ns[0].TailnetVersion, ns[1].TailnetVersion, ns[2].TailnetVersion}
	if !slices.Equal(got, want) {
		t.Fatalf("queued tailnet versions %v, want %v (each once)", got, want)
	}
	if n := r.count(); n != 2 {
		t.Fatalf("got %d requests, want 2", n)
	}
}

func TestStorageErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{flaky: true})
	r := h.newReceiver(nil)
	ep := h.spawn(h.settings("ep1", r))
	ep.waitStatus("ready", func(s *Status) bool { return s.Ready })

	// 1. The queued append fails: the notification is healed from the
	// tailnet stream once the log works again.
	h.flaky.setFailing(true)
	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	h.fire(t0.Add(StorageRetryMin))                          // still failing
	h.waitTimer(t0.Add(StorageRetryMin + 2*StorageRetryMin)) // backoff doubled
	h.flaky.setFailing(false)
	h.clk.Set(t0.Add(3 * StorageRetryMin))
	ep.waitStatus("queued after the outage", func(s *Status) bool { return s.Pending == 1 && s.StorageRetryAt.IsZero() })

	// 2. The attempt's outcome cannot be logged: it is kept, retried, and
	// logged once; the endpoint sees no second request.
	h.flaky.setFailing(true)
	start := t0.Add(3*StorageRetryMin + DefaultBatchLinger)
	h.fire(start)
	r.waitCount(1)
	st := ep.waitStatus("outcome held", func(s *Status) bool { return !s.StorageRetryAt.IsZero() })
	if !st.InFlight || st.Delivered != 0 || !st.StorageRetryAt.Equal(start.Add(StorageRetryMin)) {
		t.Fatalf("status %+v, want the outcome held in memory and a retry at +1s", st)
	}
	more := h.raise(events.NodeCreated, 1, "ep1") // arrives during the outage
	ep.notify(more...)
	h.fire(start.Add(StorageRetryMin))
	h.waitTimer(start.Add(3 * StorageRetryMin))
	h.flaky.setFailing(false)
	h.clk.Set(start.Add(3 * StorageRetryMin))
	ep.waitStatus("outcome logged", func(s *Status) bool { return s.Delivered == 1 })
	h.fire(start.Add(3*StorageRetryMin + DefaultBatchLinger))
	ep.waitStatus("the other delivered", func(s *Status) bool { return s.Delivered == 2 })

	recs := h.attempts("ep1")
	if len(recs) != 2 || !slices.Equal(recs[0].Events, ids(ns)) || !recs[0].Started.Equal(start) || !slices.Equal(recs[1].Events, ids(more)) {
		t.Fatalf("attempt records %+v, want one per event, the first started at the attempt", recs)
	}
	if n := r.count(); n != 2 {
		t.Fatalf("got %d requests, want 2 (no repeat)", n)
	}
	if f := h.flaky.failures(); f < 4 {
		t.Fatalf("%d appends failed, want at least 4", f)
	}
	if !strings.Contains(h.logs.String(), "event log unavailable") {
		t.Fatal("storage errors were not logged")
	}
}

func TestTestEventIsLikeAnyOther(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(1))
	ep := h.spawn(h.settings("ep1", r))
	ns := append(h.raise(events.Test, 1, "ep1"), h.raise(events.NodeCreated, 1, "ep1")...)
	ep.notify(ns...)
	h.fire(first)
	h.waitAttempts("ep1", 1)
	h.fire(first.Add(time.Hour))
	h.waitAttempts("ep1", 2)
	ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == 2 })
	for i, rq := range r.requests() {
		if !slices.Equal(rq.types, []string{events.Test, events.NodeCreated}) || !slices.Equal(rq.ids, ids(ns)) {
			t.Fatalf("attempt %d carried %v %v, want the test event batched with the other", i+1, rq.types, rq.ids)
		}
	}
}

func TestSettingsChanges(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(3))
	moved := h.newReceiver(nil)
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	h.fire(first)
	rq := r.waitCount(1)[0]
	if err := verify(rq, secretA); err != nil {
		t.Fatalf("attempt 1: %v", err)
	}
	h.waitAttempts("ep1", 1)

	// Rotation overlap: both secrets sign.
	s.Secrets = []string{secretB, secretA}
	ep.h.sys.Root.Send(ep.pid, &UpdateSettings{Settings: s})
	h.fire(first.Add(time.Hour))
	rq = r.waitCount(2)[1]
	for _, sec := range []string{secretA, secretB} {
		if err := verify(rq, sec); err != nil {
			t.Fatalf("attempt 2 (overlap): verify with one secret: %v", err)
		}
	}
	h.waitAttempts("ep1", 2)

	// Only the new secret.
	s.Secrets = []string{secretB}
	ep.h.sys.Root.Send(ep.pid, &UpdateSettings{Settings: s})
	h.fire(first.Add(2 * time.Hour))
	rq = r.waitCount(3)[2]
	if err := verify(rq, secretB); err != nil {
		t.Fatalf("attempt 3: verify with the new secret: %v", err)
	}
	if err := verify(rq, secretA); !errors.Is(err, signer.ErrMismatch) {
		t.Fatalf("attempt 3: verify with the old secret: got %v, want %v", err, signer.ErrMismatch)
	}
	h.waitAttempts("ep1", 3)

	// A new URL takes the next attempt.
	s.URL = moved.url()
	ep.h.sys.Root.Send(ep.pid, &UpdateSettings{Settings: s})
	h.fire(first.Add(3 * time.Hour))
	ep.waitStatus("delivered at the new URL", func(s *Status) bool { return s.Delivered == 1 })
	if r.count() != 3 || moved.count() != 1 {
		t.Fatalf("old URL got %d requests, new %d; want 3 and 1", r.count(), moved.count())
	}
}

func TestStopDropsLateOutcome(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(nil)
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	s := h.settings("ep1", r)
	ep := h.spawn(s)

	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	h.waitTimer(first)
	h.clk.Set(first)
	r.waitCount(1) // hangs at the receiver
	if err := h.sys.Root.PoisonFuture(ep.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := h.clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending after Poison, want 0", n)
	}
	r.mu.Lock()
	r.gate = nil
	r.mu.Unlock()
	close(gate)
	eventually(t, "the receiver to answer", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return r.handled == 1
	})
	if n := len(h.attempts("ep1")); n != 0 {
		t.Fatalf("%d attempt records after a stop, want 0 (the late outcome is dropped)", n)
	}

	// At least once: the next start attempts the event again.
	h.restart()
	ep = h.spawn(s)
	ep.waitStatus("delivered after restart", func(s *Status) bool { return s.Delivered == 1 })
	if n, a := r.count(), len(h.attempts("ep1")); n != 2 || a != 1 {
		t.Fatalf("got %d requests and %d attempt records, want 2 and 1", n, a)
	}
}

func TestStopStopsTimer(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(nil)
	ep := h.spawn(h.settings("ep1", r))
	ep.notify(h.raise(events.NodeCreated, 1, "ep1")...)
	h.waitTimer(first)
	if err := h.sys.Root.PoisonFuture(ep.pid).Wait(); err != nil {
		t.Fatal(err)
	}
	if n := h.clk.Pending(); n != 0 {
		t.Fatalf("%d timers pending after Poison, want 0", n)
	}
	h.clk.Advance(time.Hour)
	if n := r.count(); n != 0 {
		t.Fatalf("got %d requests from a stopped actor, want 0", n)
	}
}

func TestDeletedEndpoint(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(failFirst(1))
	s := h.settings("ep1", r)
	ep := h.spawn(s)
	ns := h.raise(events.NodeCreated, 2, "ep1")
	ep.notify(ns...)
	h.fire(first)
	h.waitAttempts("ep1", 1) // failed: retry at +1h

	// The tailnet raises webhookDeleted, then logs the deletion.
	bye := h.raise(events.WebhookDeleted, 1, "ep1")
	res, err := h.base.Append(context.Background(), "tailnet-"+tailnetName, eventlog.Any, eventlog.Event{Type: "endpointDeleted", Data: []byte(`{}`)})
	if err != nil {
		t.Fatal(err)
	}
	s.Deleted, s.DeletedVersion = true, res.Version
	h.sys.Root.Send(ep.pid, &UpdateSettings{Settings: s})
	ep.notify(bye...) // raised before the deletion: still accepted
	late := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(late...) // raised after it: refused
	st := ep.waitStatus("webhookDeleted queued", func(s *Status) bool { return s.Pending == 3 })
	if st.Delivered != 0 {
		t.Fatalf("status %+v", st)
	}
	h.fire(h.clk.Now().Add(DefaultBatchLinger))
	h.waitAttempts("ep1", 2)
	h.fire(first.Add(time.Hour))
	select {
	case <-ep.terminated:
	case <-time.After(waitTimeout):
		t.Fatal("the deleted endpoint's actor did not stop after delivering what was pending")
	}
	var sent []string
	for _, rq := range r.requests()[1:] {
		sent = append(sent, rq.ids...)
	}
	slices.Sort(sent)
	want := ids(append(slices.Clone(ns), bye...))
	slices.Sort(want)
	if !slices.Equal(sent, want) {
		t.Fatalf("delivered %v after the deletion, want %v (not the late one)", sent, want)
	}
	for _, q := range ofType[QueuedRecord](h.records("ep1")) {
		if q.Event == late[0].EventID {
			t.Fatal("a notification raised after the deletion was queued")
		}
	}
}

func TestRestartOnStaleVersion(t *testing.T) {
	h := newHarness(t, harnessOpts{})
	r := h.newReceiver(nil)
	gate := make(chan struct{})
	r.mu.Lock()
	r.gate = gate
	r.mu.Unlock()
	ep := h.spawn(h.settings("ep1", r))
	ns := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(ns...)
	h.fire(first)
	r.waitCount(1) // in flight

	// Another writer appends to the actor's stream: its next append
	// conflicts, it fails, and its supervisor restarts it.
	p := payload(t, "ev_other", 0)
	ev, err := encodeRecord(TypeQueued, &QueuedRecord{Type: TypeQueued, V: SchemaVersion, Event: "ev_other", TailnetVersion: ns[0].TailnetVersion, QueuedAt: first, Payload: p})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.base.Append(context.Background(), StreamName("ep1"), eventlog.Any, ev); err != nil {
		t.Fatal(err)
	}
	more := h.raise(events.NodeCreated, 1, "ep1")
	ep.notify(more...)
	st := ep.waitStatus("rebuilt with the other writer's record", func(s *Status) bool { return s.Pending == 3 })
	if !st.InFlight {
		t.Fatalf("status %+v, want the request of the failed incarnation adopted", st)
	}
	if n := r.count(); n != 1 {
		t.Fatalf("got %d requests while the first hangs, want 1", n)
	}
	close(gate)
	st = ep.waitStatus("first outcome logged", func(s *Status) bool { return s.Delivered == 1 })
	if !st.NextDue.Equal(first.Add(DefaultBatchLinger)) {
		t.Fatalf("status %+v, want the rest due after the linger", st)
	}
	h.fire(first.Add(DefaultBatchLinger))
	ep.waitStatus("all delivered", func(s *Status) bool { return s.Delivered == 3 })
	select {
	case <-ep.terminated:
		t.Fatal("the actor stopped instead of restarting")
	default:
	}
	recs := h.attempts("ep1")
	if len(recs) != 2 || !slices.Equal(recs[0].Events, ids(ns)) {
		t.Fatalf("attempt records %+v, want the hanging attempt logged once, then one more", recs)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.maxCur != 1 {
		t.Fatalf("up to %d concurrent requests across the restart, want 1", r.maxCur)
	}
}

// waitTimers waits until n timers are armed, the earliest at due.
func (h *harness) waitTimers(n int, due time.Time) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := h.clk.WaitFor(ctx, func(c *clock.Fake) bool {
		d, ok := c.NextDue()
		return ok && d.Equal(due) && c.Pending() == n
	}); err != nil {
		h.t.Fatalf("%d timers at t0+%v never armed (%d pending)", n, due.Sub(t0), h.clk.Pending())
	}
}

func TestRebuildRetriesReadErrors(t *testing.T) {
	h := newHarness(t, harnessOpts{flaky: true})
	r := h.newReceiver(nil)
	s := h.settings("ep1", r)
	ns := h.raise(events.NodeCreated, 2, "ep1") // logged, never queued
	h.flaky.setFailReads(true)
	ep := h.spawnNoWait(s)
	st := ep.waitStatus("a failed rebuild", func(s *Status) bool { return !s.StorageRetryAt.IsZero() })
	if st.Ready || !st.StorageRetryAt.Equal(t0.Add(StorageRetryMin)) {
		t.Fatalf("status %+v, want not ready, retrying at +1s", st)
	}
	ep.notify(ns...) // while not ready: left to the catch-up
	h.fire(t0.Add(StorageRetryMin))
	h.waitTimer(t0.Add(3 * StorageRetryMin))
	h.flaky.setFailReads(false)
	h.clk.Set(t0.Add(3 * StorageRetryMin))
	ep.waitStatus("rebuilt and caught up", func(s *Status) bool { return s.Ready && s.Pending == 2 })
	h.fire(t0.Add(3*StorageRetryMin + DefaultBatchLinger))
	ep.waitStatus("delivered", func(s *Status) bool { return s.Delivered == 2 })
	if rq := r.requests(); len(rq) != 1 || !slices.Equal(rq[0].ids, ids(ns)) {
		t.Fatalf("requests %v, want one with %v", rq, ids(ns))
	}
}
