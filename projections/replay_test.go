package projections_test

import (
	"context"
	"crypto/x509"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/projections"
	"github.com/herald-webhooks/herald/server"
)

// TestReplayMatchesWhatHappened runs the real actors: two endpoints get
// the same two events in one batch; one fails twice and then accepts, the
// other fails every attempt of a two-hour window; a third event has no
// subscriber. A projection that followed live (started after the first
// attempts, so it caught up first) and one replayed from the closed log
// both tell exactly that story, and agree with the endpoint actors' own
// status.
func TestReplayMatchesWhatHappened(t *testing.T) {
	fc := clock.NewFake(t0)
	flaky := newScriptedReceiver(t, 503, 503, 200)
	broken := newScriptedReceiver(t, 500)
	dir := t.TempDir()
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{
		DataDir:            dir,
		Clock:              fc,
		AllowPrivateEgress: true,
		EgressRootCAs:      []*x509.Certificate{flaky.Certificate(), broken.Certificate()},
		Retry:              endpoint.RetryPolicy{Interval: time.Hour, Window: 2 * time.Hour},
		Logger:             discard,
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { srv.Close() })

	const tn = "example.com"
	a, _, err := srv.CreateEndpoint(ctx, tn, "mira@example.com", flaky.URL+"/hook", "", []string{events.NodeCreated})
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := srv.CreateEndpoint(ctx, tn, "mira@example.com", broken.URL+"/hook", "", []string{events.NodeCreated})
	if err != nil {
		t.Fatal(err)
	}
	raised, err := srv.Ingest(ctx, tn, []tailnet.Change{
		{Kind: tailnet.KindNodeAdded, Actor: "mira@example.com", Node: &tailnet.Node{ID: "n1", Name: "build-01.example.ts.net"}},
		{Kind: tailnet.KindNodeAdded, Actor: "mira@example.com", Node: &tailnet.Node{ID: "n2", Name: "build-02.example.ts.net"}},
		{Kind: tailnet.KindUserAdded, Actor: "mira@example.com", User: &tailnet.User{Login: "ola@example.com"}},
	})
	if err != nil {
		t.Fatalf("ingest: %v", err)
	}
	if len(raised) != 3 || raised[2].Type != events.UserCreated || len(raised[2].Endpoints) != 0 {
		t.Fatalf("ingest raised %+v, want nodeCreated, nodeCreated and a userCreated for nobody", raised)
	}
	e1, e2, e3 := raised[0].ID, raised[1].ID, raised[2].ID

	// Both endpoints linger for more events, then post both at once.
	waitTimers(t, fc, 2, "both endpoints queued the events")
	first := fc.Now().Add(endpoint.DefaultBatchLinger)
	fc.Advance(endpoint.DefaultBatchLinger)
	waitTimers(t, fc, 2, "both first attempts failed and were logged")

	// A projection that starts now catches up, then follows.
	var live projections.Deliveries
	runCtx, stopRun := context.WithCancel(ctx)
	runDone := make(chan error, 1)
	go func() { runDone <- live.Run(runCtx, srv.Log(), eventlog.Start) }()
	defer func() {
		stopRun()
		<-runDone
	}()

	fc.Advance(time.Hour)
	waitTimers(t, fc, 2, "both second attempts failed and were logged")
	fc.Advance(time.Hour)
	waitRecords(t, srv.Log(), 6, "all six attempts logged", func(r eventlog.Record) bool { return r.Type == endpoint.TypeAttempt })

	status := map[string]*endpoint.Status{}
	for _, id := range []string{a.ID, b.ID} {
		st, err := srv.DeliveryStatus(ctx, tn, id)
		if err != nil {
			t.Fatalf("status of %s: %v", id, err)
		}
		status[id] = st.(*endpoint.Status)
	}
	waitCtx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	if err := live.Wait(waitCtx, lastPosition(t, srv.Log())); err != nil {
		t.Fatalf("live projection did not reach the end of the log: %v", err)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}

	var replayed projections.Deliveries
	if err := replayed.CatchUp(ctx, openLog(t, filepath.Join(dir, server.LogDir))); err != nil {
		t.Fatalf("replay: %v", err)
	}

	for name, d := range map[string]*projections.Deliveries{"live": &live, "replayed": &replayed} {
		t.Run(name, func(t *testing.T) {
			slots := []time.Time{first, first.Add(time.Hour), first.Add(2 * time.Hour)}
			for _, ev := range []string{e1, e2} {
				checkEvent(t, d, ev, events.NodeCreated, tn,
					want{a.ID, true, true, []int{503, 503, 200}, []string{"retry", "retry", "delivered"}, projections.Delivered, ""},
					want{b.ID, true, true, []int{500, 500, 500}, []string{"retry", "retry", "abandoned"}, projections.Abandoned, endpoint.ReasonWindowExhausted})
				for _, del := range d.Event(ev).Endpoints {
					for k, at := range del.Attempts {
						if !at.Started.Equal(slots[k]) || at.Events != 2 {
							t.Errorf("%s at %s, attempt %d: started %v carrying %d events, want %v carrying 2", ev, del.Endpoint, k, at.Started, at.Events, slots[k])
						}
					}
				}
			}
			checkEvent(t, d, e3, events.UserCreated, tn)

			var order []string
			for h := range d.Events {
				order = append(order, h.ID)
			}
			if !slices.Equal(order, []string{e1, e2, e3}) {
				t.Errorf("events in order %v, want raise order %v", order, []string{e1, e2, e3})
			}

			for _, id := range []string{a.ID, b.ID} {
				got, st := d.Endpoint(id), status[id]
				if got.Pending != st.Pending || got.Delivered != st.Delivered || got.Abandoned != st.Abandoned || got.Attempts != st.Attempts {
					t.Errorf("endpoint %s: projection pending %d delivered %d abandoned %d attempts %d; actor status %d %d %d %d",
						id, got.Pending, got.Delivered, got.Abandoned, got.Attempts, st.Pending, st.Delivered, st.Abandoned, st.Attempts)
				}
				if la := got.LastAttempt; la == nil || st.LastAttempt == nil || la.ID != st.LastAttempt.ID ||
					la.Status != st.LastAttempt.StatusCode || la.ErrorClass != st.LastAttempt.ErrorClass || !la.Started.Equal(st.LastAttempt.Started) {
					t.Errorf("endpoint %s: projection's last attempt %+v, actor's %+v", id, got.LastAttempt, st.LastAttempt)
				}
			}
			wantA := projections.EndpointSummary{ID: a.ID, Tailnet: tn, Queued: 2, Delivered: 2, Attempts: 3, FailedAttempts: 2}
			wantB := projections.EndpointSummary{ID: b.ID, Tailnet: tn, Queued: 2, Abandoned: 2, Attempts: 3, FailedAttempts: 3}
			checkSummary(t, d, wantA)
			checkSummary(t, d, wantB)
		})
	}

	// What the receivers saw is what the projection says was attempted.
	for _, r := range []*scriptedReceiver{flaky, broken} {
		posts := r.received()
		if len(posts) != 3 {
			t.Errorf("receiver got %d POSTs, want 3", len(posts))
		}
		for i, ids := range posts {
			if !slices.Equal(ids, []string{e1, e2}) {
				t.Errorf("POST %d carried %v, want [%s %s]", i, ids, e1, e2)
			}
		}
	}

	var liveAll, replayedAll []projections.EventHistory
	for h := range live.Events {
		liveAll = append(liveAll, h)
	}
	for h := range replayed.Events {
		replayedAll = append(replayedAll, h)
	}
	if !reflect.DeepEqual(liveAll, replayedAll) {
		t.Errorf("live and replayed projections differ:\nlive     %+v\nreplayed %+v", liveAll, replayedAll)
	}
}
