package server_test

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/server"
	"github.com/herald-webhooks/herald/signer"
)

// waitLimit bounds every wait for a condition.
const waitLimit = 20 * time.Second

var t0 = time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)

// receiver is a real HTTPS endpoint that verifies signatures against the
// fake clock and records every delivery.
type receiver struct {
	*httptest.Server
	clock *clock.Fake

	mu      sync.Mutex
	secrets []string
	status  int
	posts   []delivery
	changed chan struct{}
}

type delivery struct {
	at     time.Time
	events []map[string]any
	body   []byte
	header http.Header
	valid  bool
}

func newReceiver(t *testing.T, fc *clock.Fake) *receiver {
	r := &receiver{clock: fc, status: http.StatusOK, changed: make(chan struct{})}
	r.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{at: fc.Now(), body: body, header: req.Header.Clone()}
		_ = json.Unmarshal(body, &d.events)
		r.mu.Lock()
		d.valid = signer.Verify(req.Header.Get(signer.HeaderName), body, r.secrets, fc.Now(), time.Minute) == nil
		r.posts = append(r.posts, d)
		status := r.status
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.secrets = []string{s}
}

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.posts...)
}

// waitEvents waits until the receiver has seen at least n events.
func (r *receiver) waitEvents(t *testing.T, n int) []delivery {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		r.mu.Lock()
		got := 0
		for _, d := range r.posts {
			got += len(d.events)
		}
		changed := r.changed
		r.mu.Unlock()
		if got >= n {
			return r.deliveries()
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("receiver saw %d events within %v, want %d", got, waitLimit, n)
		}
	}
}

// startServer starts Herald on a fresh data directory with the fake clock.
func startServer(t *testing.T, fc *clock.Fake, dir string, edit func(*server.Config), trust ...*httptest.Server) *server.Server {
	t.Helper()
	var roots []*x509.Certificate
	for _, s := range trust {
		roots = append(roots, s.Certificate())
	}
	cfg := server.Config{
		DataDir:            dir,
		Clock:              fc,
		AllowPrivateEgress: true,
		EgressRootCAs:      roots,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if edit != nil {
		edit(&cfg)
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// status polls an endpoint's delivery status until cond holds.
func waitStatus(t *testing.T, srv *server.Server, tailnetName, id string, what string, cond func(*endpoint.Status) bool) *endpoint.Status {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for {
		st, err := srv.DeliveryStatus(context.Background(), tailnetName, id)
		if err == nil && cond(st.(*endpoint.Status)) {
			return st.(*endpoint.Status)
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint %s: %s did not happen within %v (last status %+v, err %v)", id, what, waitLimit, st, err)
		}
		time.Sleep(2 * time.Millisecond) // polling a condition, bounded by the deadline
	}
}

// staticResolver answers every name with the same addresses.
type staticResolver []netip.Addr

func (r staticResolver) LookupNetIP(context.Context, string, string) ([]netip.Addr, error) {
	return r, nil
}
