package server_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/egress"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/server"
)

// TestBurstIsBatchedAndFannedOut: 50 changes ingested in a burst reach a
// subscribed endpoint in at most 2 POSTs with the default linger, and an
// endpoint subscribed to something else gets nothing.
func TestBurstIsBatchedAndFannedOut(t *testing.T) {
	fc := clock.NewFake(t0)
	subscribed, other := newReceiver(t, fc), newReceiver(t, fc)
	srv := startServer(t, fc, t.TempDir(), nil, subscribed.Server, other.Server)
	ctx := context.Background()

	a, secretA, err := srv.CreateEndpoint(ctx, "example.com", "mira@example.com", subscribed.URL+"/hook", "", []string{events.SubscribeTailnetManagement})
	if err != nil {
		t.Fatal(err)
	}
	subscribed.setSecret(secretA)
	b, secretB, err := srv.CreateEndpoint(ctx, "example.com", "mira@example.com", other.URL+"/hook", "", []string{events.UserCreated})
	if err != nil {
		t.Fatal(err)
	}
	other.setSecret(secretB)

	const burst = 50
	var wg sync.WaitGroup
	ids := make(chan string, burst)
	for i := range burst {
		wg.Add(1)
		go func() {
			defer wg.Done()
			raised, err := srv.Ingest(ctx, "example.com", []tailnet.Change{{
				Kind: tailnet.KindNodeAdded, Actor: "mira@example.com",
				Node: &tailnet.Node{ID: fmt.Sprintf("n%02d", i), Name: fmt.Sprintf("node-%02d.example.ts.net", i)},
			}})
			if err != nil {
				t.Errorf("ingest %d: %v", i, err)
				return
			}
			if len(raised) != 1 || !slices.Equal(raised[0].Endpoints, []string{a.ID}) {
				t.Errorf("ingest %d raised %+v, want one nodeCreated for %s only", i, raised, a.ID)
				return
			}
			ids <- raised[0].ID
		}()
	}
	wg.Wait()
	close(ids)

	waitStatus(t, srv, "example.com", a.ID, "50 events queued", func(s *endpoint.Status) bool { return s.Pending == burst })
	fc.Advance(endpoint.DefaultBatchLinger)
	got := subscribed.waitEvents(t, burst)

	if len(got) > 2 {
		t.Errorf("got %d POSTs for a burst of %d, want at most 2", len(got), burst)
	}
	seen := map[string]bool{}
	for _, d := range got {
		if !d.valid {
			t.Errorf("a delivery did not verify with the endpoint's secret")
		}
		for _, ev := range d.events {
			seen[ev["id"].(string)] = true
		}
	}
	for id := range ids {
		if !seen[id] {
			t.Errorf("event %s was acknowledged but not delivered", id)
		}
	}
	waitStatus(t, srv, "example.com", a.ID, "everything delivered", func(s *endpoint.Status) bool { return s.Pending == 0 && s.Delivered == burst })
	if n := len(other.deliveries()); n != 0 {
		t.Errorf("endpoint subscribed to userCreated got %d POSTs, want 0", n)
	}
	if st := waitStatus(t, srv, "example.com", b.ID, "status", func(*endpoint.Status) bool { return true }); st.Pending != 0 || st.Attempts != 0 {
		t.Errorf("unsubscribed endpoint: pending %d attempts %d, want 0 and 0", st.Pending, st.Attempts)
	}
}

// TestLoopbackRefusedAtDialTime: under the default egress policy, an
// endpoint whose public-looking name resolves to loopback is refused when
// Herald dials, and the refusal is logged as a failed attempt and retried
// on schedule.
func TestLoopbackRefusedAtDialTime(t *testing.T) {
	fc := clock.NewFake(t0)
	// A listener where the dial would land, to prove nothing connects.
	accepted := make(chan struct{}, 1)
	if ln, err := net.Listen("tcp", "127.0.0.1:443"); err == nil {
		t.Cleanup(func() { ln.Close() })
		go func() {
			if c, err := ln.Accept(); err == nil {
				accepted <- struct{}{}
				c.Close()
			}
		}()
	}
	srv := startServer(t, fc, t.TempDir(), func(c *server.Config) {
		c.AllowPrivateEgress = false
		c.EgressResolver = staticResolver{netip.MustParseAddr("127.0.0.1")}
	})
	ctx := context.Background()
	ep, _, err := srv.CreateEndpoint(ctx, "example.com", "mira@example.com", "https://hooks.example.com/webhook", "", nil)
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if err := srv.TestEndpoint(ctx, "example.com", ep.ID); err != nil {
		t.Fatalf("test: %v", err)
	}
	waitStatus(t, srv, "example.com", ep.ID, "test event queued", func(s *endpoint.Status) bool { return s.Pending == 1 })
	fc.Advance(endpoint.DefaultBatchLinger)
	st := waitStatus(t, srv, "example.com", ep.ID, "first attempt logged", func(s *endpoint.Status) bool { return s.Attempts == 1 && !s.InFlight })

	recs, err := srv.Log().ReadStream(ctx, endpoint.StreamName(ep.ID), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var attempt *endpoint.AttemptRecord
	for _, rec := range recs {
		if rec.Type == endpoint.TypeAttempt {
			v, err := endpoint.DecodeRecord(rec)
			if err != nil {
				t.Fatal(err)
			}
			attempt = v.(*endpoint.AttemptRecord)
		}
	}
	if attempt == nil {
		t.Fatalf("no attempt record in the endpoint stream (%d records)", len(recs))
	}
	if attempt.ErrorClass != egress.ClassDenied || attempt.StatusCode != 0 {
		t.Errorf("attempt logged with class %q status %d, want %q and no status", attempt.ErrorClass, attempt.StatusCode, egress.ClassDenied)
	}
	if len(attempt.Outcomes) != 1 || attempt.Outcomes[0].Result != endpoint.ResultRetry || !attempt.Outcomes[0].NextDue.Equal(attempt.Started.Add(time.Hour)) {
		t.Errorf("attempt outcomes %+v, want one retry due an hour after the attempt", attempt.Outcomes)
	}
	if st.Pending != 1 {
		t.Errorf("pending %d after a refused attempt, want 1 (it is retried)", st.Pending)
	}
	select {
	case <-accepted:
		t.Error("the loopback listener accepted a connection")
	default:
	}
}
