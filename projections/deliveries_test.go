package projections_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/projections"
)

// want is what a test expects of one event at one endpoint.
type want struct {
	endpoint string
	target   bool
	queued   bool
	statuses []int    // of its attempts, in order
	results  []string // of its attempts, in order
	outcome  projections.Outcome
	reason   string
}

func checkEvent(t *testing.T, d *projections.Deliveries, id, typ, tailnetName string, wants ...want) {
	t.Helper()
	h := d.Event(id)
	if h.ID != id || h.Type != typ || h.Tailnet != tailnetName {
		t.Errorf("event %s: got id %q type %q tailnet %q, want %q %q %q", id, h.ID, h.Type, h.Tailnet, id, typ, tailnetName)
	}
	if len(h.Endpoints) != len(wants) {
		t.Fatalf("event %s: got %d endpoints %+v, want %d", id, len(h.Endpoints), h.Endpoints, len(wants))
	}
	for i, w := range wants {
		got := h.Endpoints[i]
		var statuses []int
		var results []string
		for _, a := range got.Attempts {
			statuses, results = append(statuses, a.Status), append(results, a.Result)
		}
		if got.Endpoint != w.endpoint || got.Target != w.target || got.Queued != w.queued ||
			!slices.Equal(statuses, w.statuses) || !slices.Equal(results, w.results) ||
			got.Outcome != w.outcome || got.Reason != w.reason {
			t.Errorf("event %s at endpoint %d: got endpoint %s target %v queued %v statuses %v results %v outcome %s reason %q,\n"+
				"want endpoint %s target %v queued %v statuses %v results %v outcome %s reason %q",
				id, i, got.Endpoint, got.Target, got.Queued, statuses, results, got.Outcome, got.Reason,
				w.endpoint, w.target, w.queued, w.statuses, w.results, w.outcome, w.reason)
		}
	}
}

func checkSummary(t *testing.T, d *projections.Deliveries, want projections.EndpointSummary) {
	t.Helper()
	got := d.Endpoint(want.ID)
	got.LastAttempt = nil
	if got != want {
		t.Errorf("endpoint %s: got %+v, want %+v", want.ID, got, want)
	}
}

// TestFold: each way an event's delivery can go, folded from records
// written as the actors write them.
func TestFold(t *testing.T) {
	tests := []struct {
		name  string
		build func(s *script)
		check func(t *testing.T, d *projections.Deliveries)
	}{
		{
			name: "delivered at the first attempt",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("A", "ev_1", t0)
				s.attempt("A", "at_1", 200, t0, endpoint.ResultDelivered, "ev_1")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, true, []int{200}, []string{"delivered"}, projections.Delivered, ""})
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Delivered: 1, Attempts: 1})
				if got := d.Event("ev_1").Endpoints[0].DecidedAt; !got.Equal(t0.Add(time.Second)) {
					t.Errorf("decided at %v, want the attempt's finish %v", got, t0.Add(time.Second))
				}
			},
		},
		{
			name: "failed twice, then delivered",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("A", "ev_1", t0)
				s.attempt("A", "at_1", 503, t0, endpoint.ResultRetry, "ev_1")
				s.attempt("A", "at_2", 0, t0.Add(time.Hour), endpoint.ResultRetry, "ev_1")
				s.attempt("A", "at_3", 204, t0.Add(2*time.Hour), endpoint.ResultDelivered, "ev_1")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, true, []int{503, 0, 204}, []string{"retry", "retry", "delivered"}, projections.Delivered, ""})
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Delivered: 1, Attempts: 3, FailedAttempts: 2})
				h := d.Event("ev_1")
				if a := h.Endpoints[0].Attempts[1]; a.ErrorClass != "connect" || !a.NextDue.Equal(t0.Add(2*time.Hour)) {
					t.Errorf("second attempt: got class %q next due %v, want \"connect\" and %v", a.ErrorClass, a.NextDue, t0.Add(2*time.Hour))
				}
				if last := d.Endpoint("A").LastAttempt; last == nil || last.ID != "at_3" || last.Status != 204 || !last.OK() {
					t.Errorf("last attempt %+v, want at_3 with status 204", last)
				}
			},
		},
		{
			name: "abandoned by the last attempt",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("A", "ev_1", t0)
				s.attempt("A", "at_1", 500, t0, endpoint.ResultRetry, "ev_1")
				s.attempt("A", "at_2", 500, t0.Add(time.Hour), endpoint.ResultAbandoned, "ev_1")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, true, []int{500, 500}, []string{"retry", "abandoned"}, projections.Abandoned, endpoint.ReasonWindowExhausted})
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Abandoned: 1, Attempts: 2, FailedAttempts: 2})
			},
		},
		{
			name: "abandoned when the window closed during downtime",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("A", "ev_1", t0)
				s.attempt("A", "at_1", 500, t0, endpoint.ResultRetry, "ev_1")
				s.abandoned("A", t0.Add(48*time.Hour), "ev_1")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, true, []int{500}, []string{"retry"}, projections.Abandoned, endpoint.ReasonWindowClosed})
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Abandoned: 1, Attempts: 1, FailedAttempts: 1})
				if got := d.Event("ev_1").Endpoints[0].DecidedAt; !got.Equal(t0.Add(48 * time.Hour)) {
					t.Errorf("decided at %v, want the abandoned record's time %v", got, t0.Add(48*time.Hour))
				}
			},
		},
		{
			name: "raised but not yet queued is pending, and not counted",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A", "B")
				s.queued("A", "ev_1", t0)
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, true, nil, nil, projections.Pending, ""},
					want{"B", true, false, nil, nil, projections.Pending, ""})
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})
				checkSummary(t, d, projections.EndpointSummary{ID: "B", Tailnet: "example.com"})
			},
		},
		{
			name: "a duplicate queued record counts once",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("A", "ev_1", t0)
				s.queued("A", "ev_1", t0.Add(time.Minute))
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})
				if got := d.Event("ev_1").Endpoints[0].QueuedAt; !got.Equal(t0) {
					t.Errorf("queued at %v, want the first queued record's %v", got, t0)
				}
			},
		},
		{
			name: "an event nobody subscribed to has no endpoints",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "userCreated")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "userCreated", "example.com")
				if h := d.Event("ev_1"); h.Raised != 1 {
					t.Errorf("raised at %d, want 1", h.Raised)
				}
			},
		},
		{
			name: "an endpoint that logs an event it was not raised for is listed after the targets",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.queued("B", "ev_1", t0)
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkEvent(t, d, "ev_1", "nodeCreated", "example.com",
					want{"A", true, false, nil, nil, projections.Pending, ""},
					want{"B", false, true, nil, nil, projections.Pending, ""})
			},
		},
		{
			name: "one POST carries two events of two tailnets' endpoints",
			build: func(s *script) {
				s.notify("example.com", "ev_1", "nodeCreated", "A")
				s.notify("example.com", "ev_2", "nodeDeleted", "A")
				s.notify("other.org", "ev_3", "nodeCreated", "C")
				s.queued("A", "ev_1", t0)
				s.queued("A", "ev_2", t0)
				s.attempt("A", "at_1", 200, t0, endpoint.ResultDelivered, "ev_1", "ev_2")
			},
			check: func(t *testing.T, d *projections.Deliveries) {
				checkSummary(t, d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 2, Delivered: 2, Attempts: 1})
				checkSummary(t, d, projections.EndpointSummary{ID: "C", Tailnet: "other.org"})
				if a := d.Event("ev_2").Endpoints[0].Attempts; len(a) != 1 || a[0].ID != "at_1" || a[0].Events != 2 {
					t.Errorf("ev_2's attempts %+v, want at_1 carrying 2 events", a)
				}
				var order []string
				for h := range d.Events {
					order = append(order, h.ID)
				}
				if !slices.Equal(order, []string{"ev_1", "ev_2", "ev_3"}) {
					t.Errorf("Events in order %v, want raise order [ev_1 ev_2 ev_3]", order)
				}
			},
		},
		{
			name:  "an unknown event and endpoint read as empty",
			build: func(s *script) {},
			check: func(t *testing.T, d *projections.Deliveries) {
				if h := d.Event("ev_nope"); h.ID != "" || h.Endpoints != nil {
					t.Errorf("unknown event: got %+v, want the zero EventHistory", h)
				}
				checkSummary(t, d, projections.EndpointSummary{ID: "nope"})
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newScript(t)
			tt.build(s)
			var d projections.Deliveries
			for _, rec := range s.recs {
				if err := d.Apply(rec); err != nil {
					t.Fatalf("apply %s %s: %v", rec.Stream, rec.Type, err)
				}
			}
			if got, want := d.Position(), eventlog.Position(len(s.recs)); got != want {
				t.Errorf("position %d, want %d", got, want)
			}
			tt.check(t, &d)
		})
	}
}

// TestUnknownRecordsAreSkipped: record types and streams the projection
// does not know change nothing but the position.
func TestUnknownRecordsAreSkipped(t *testing.T) {
	s := newScript(t)
	s.notify("example.com", "ev_1", "nodeCreated", "A")
	s.queued("A", "ev_1", t0)
	before := len(s.recs)
	s.add(endpoint.StreamName("A"), "paused", []byte(`{"type":"paused","v":1,"events":["ev_1"]}`))
	s.add(tailnet.StreamName("example.com"), "change", []byte(`{"type":"change","v":1,"change":{"kind":"nodeAdded"}}`))
	s.add(tailnet.StreamName("example.com"), "policyPinned", []byte(`not even JSON`))
	s.add("herald-directory", "tailnetRegistered", []byte(`{"type":"tailnetRegistered","v":1,"name":"example.com"}`))

	var d projections.Deliveries
	for i, rec := range s.recs {
		if err := d.Apply(rec); err != nil {
			t.Fatalf("apply %s %s: %v", rec.Stream, rec.Type, err)
		}
		if i == before-1 {
			checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})
		}
	}
	if got, want := d.Position(), eventlog.Position(len(s.recs)); got != want {
		t.Errorf("position %d after the unknown records, want %d", got, want)
	}
	checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})
	checkEvent(t, &d, "ev_1", "nodeCreated", "example.com", want{"A", true, true, nil, nil, projections.Pending, ""})
	n := 0
	for range d.Events {
		n++
	}
	if n != 1 {
		t.Errorf("got %d events, want 1", n)
	}
}

// TestUndecodableRecordIsReportedAndSkipped: a known record type that does
// not decode is a *RecordError naming its position; the position moves
// past it and later records still apply.
func TestUndecodableRecordIsReportedAndSkipped(t *testing.T) {
	s := newScript(t)
	s.notify("example.com", "ev_1", "nodeCreated", "A")
	bad := s.add(endpoint.StreamName("A"), endpoint.TypeAttempt, []byte(`{"type":"attempt","v":1,"events":"not a list"}`))
	s.queued("A", "ev_1", t0)

	var d projections.Deliveries
	var errs []error
	for _, rec := range s.recs {
		if err := d.Apply(rec); err != nil {
			errs = append(errs, err)
		}
	}
	var re *projections.RecordError
	if len(errs) != 1 || !errors.As(errs[0], &re) || re.Position != bad.Position || re.Stream != bad.Stream {
		t.Fatalf("got errors %v, want one *RecordError for %s at position %d", errs, bad.Stream, bad.Position)
	}
	checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})
}

// TestReappliedRecordsAreIgnored: a replay that overlaps what was applied
// (a resubscription from an older position) counts nothing twice.
func TestReappliedRecordsAreIgnored(t *testing.T) {
	s := newScript(t)
	s.notify("example.com", "ev_1", "nodeCreated", "A")
	s.queued("A", "ev_1", t0)
	s.attempt("A", "at_1", 500, t0, endpoint.ResultRetry, "ev_1")
	var d projections.Deliveries
	for range 2 {
		for _, rec := range s.recs {
			if err := d.Apply(rec); err != nil {
				t.Fatal(err)
			}
		}
	}
	checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1, Attempts: 1, FailedAttempts: 1})
	if a := d.Event("ev_1").Endpoints[0].Attempts; len(a) != 1 {
		t.Errorf("got %d attempts after applying every record twice, want 1", len(a))
	}
}

// TestRunCatchesUpThenFollows: Run on a real embedded log first applies
// what the log holds (unknown records included, and skipped), then each
// record appended while it runs; it returns ctx's error when ctx ends.
func TestRunCatchesUpThenFollows(t *testing.T) {
	log := openLog(t, t.TempDir())
	ctx := context.Background()
	s := newScript(t)
	s.notify("example.com", "ev_1", "nodeCreated", "A")
	s.queued("A", "ev_1", t0)
	s.add("herald-directory", "tailnetRegistered", []byte(`{"type":"tailnetRegistered","v":1,"name":"example.com"}`))
	s.add(endpoint.StreamName("A"), "paused", []byte(`{"type":"paused","v":1}`))
	s.attempt("A", "at_1", 503, t0.Add(100*time.Millisecond), endpoint.ResultRetry, "ev_1")
	s.attempt("A", "at_2", 200, t0.Add(time.Hour+100*time.Millisecond), endpoint.ResultDelivered, "ev_1")
	const written = 4 // records in the log before Run starts
	appendRec := func(rec eventlog.Record) eventlog.Position {
		t.Helper()
		res, err := log.Append(ctx, rec.Stream, eventlog.Any, eventlog.Event{Type: rec.Type, Data: rec.Data})
		if err != nil {
			t.Fatal(err)
		}
		return res.Position
	}
	var last eventlog.Position
	for _, rec := range s.recs[:written] {
		last = appendRec(rec)
	}

	var d projections.Deliveries
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- d.Run(runCtx, log, eventlog.Start) }()
	waitCtx, waitCancel := context.WithTimeout(ctx, waitLimit)
	defer waitCancel()

	if err := d.Wait(waitCtx, last); err != nil {
		t.Fatalf("catch-up: position %d, want %d: %v", d.Position(), last, err)
	}
	checkEvent(t, &d, "ev_1", "nodeCreated", "example.com", want{"A", true, true, nil, nil, projections.Pending, ""})
	checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Pending: 1})

	for i, rec := range s.recs[written:] {
		pos := appendRec(rec)
		if err := d.Wait(waitCtx, pos); err != nil {
			t.Fatalf("live record %d: position %d, want %d: %v", i, d.Position(), pos, err)
		}
		if got := d.Endpoint("A").Attempts; got != uint64(i+1) {
			t.Errorf("after live attempt %d: got %d attempts, want %d", i+1, got, i+1)
		}
	}
	checkEvent(t, &d, "ev_1", "nodeCreated", "example.com",
		want{"A", true, true, []int{503, 200}, []string{"retry", "delivered"}, projections.Delivered, ""})
	checkSummary(t, &d, projections.EndpointSummary{ID: "A", Tailnet: "example.com", Queued: 1, Delivered: 1, Attempts: 2, FailedAttempts: 1})

	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v, want context.Canceled", err)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Run did not return within %v of its context ending", waitLimit)
	}
}

// TestWaitEndsWithItsContext: Wait for a position never reached returns
// the context's error.
func TestWaitEndsWithItsContext(t *testing.T) {
	var d projections.Deliveries
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := d.Wait(ctx, 1); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}
