package server_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/embedded"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/server"
)

// flakyLog is the real embedded log with appends that fail on demand, as
// a full disk makes them fail (the one fake the tests allow: storage
// faults cannot be had on demand otherwise).
type flakyLog struct {
	eventlog.Log
	failing atomic.Bool
}

func (l *flakyLog) Append(ctx context.Context, stream string, expected eventlog.ExpectedVersion, evs ...eventlog.Event) (eventlog.AppendResult, error) {
	if l.failing.Load() {
		return eventlog.AppendResult{}, fmt.Errorf("%w: injected: no space left on device", eventlog.ErrUnavailable)
	}
	return l.Log.Append(ctx, stream, expected, evs...)
}

// TestDeliveriesContinueAfterStorageTrouble: a change refused while the
// log cannot be written answers an unavailable error; once the log works
// again, changes are accepted and delivered to the endpoints as before.
func TestDeliveriesContinueAfterStorageTrouble(t *testing.T) {
	fc := clock.NewFake(t0)
	rcv := newReceiver(t, fc)
	dir := t.TempDir()
	inner, err := embedded.Open(filepath.Join(dir, "log"), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inner.Close() })
	log := &flakyLog{Log: inner}
	srv := startServer(t, fc, dir, func(c *server.Config) { c.Log = log }, rcv.Server)
	ctx := context.Background()
	ep, secret, err := srv.CreateEndpoint(ctx, "example.com", "a", rcv.URL+"/hook", "", []string{events.NodeCreated})
	if err != nil {
		t.Fatal(err)
	}
	rcv.setSecret(secret)
	nodeAdded := func(id string) tailnet.Change {
		return tailnet.Change{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: id, Name: id + ".example.ts.net"}}
	}

	log.failing.Store(true)
	if _, err := srv.Ingest(ctx, "example.com", []tailnet.Change{nodeAdded("n1")}); !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("ingest while the log fails: got %v, want ErrUnavailable", err)
	}
	log.failing.Store(false)
	raised, err := srv.Ingest(ctx, "example.com", []tailnet.Change{nodeAdded("n2")})
	if err != nil {
		t.Fatalf("ingest after the log recovered: %v", err)
	}
	waitStatus(t, srv, "example.com", ep.ID, "the event queued", func(s *endpoint.Status) bool { return s.Pending == 1 })
	fc.Advance(endpoint.DefaultBatchLinger)
	got := rcv.waitEvents(t, 1)
	if id := got[0].events[0]["id"]; id != raised[0].ID || !got[0].valid {
		t.Fatalf("delivered %v (signature valid %v), want %s", id, got[0].valid, raised[0].ID)
	}
}
