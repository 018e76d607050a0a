package api_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/api"
	"github.com/herald-webhooks/herald/internal/shared"
	"github.com/herald-webhooks/herald/server"
	"github.com/herald-webhooks/herald/signer"
)

// testVersion is what the harness reports as Herald's version.
const testVersion = "v0.0.0-test"

// harness is a real Herald (server.Server over a fresh data directory)
// behind the API handler, served over real HTTP on loopback.
type harness struct {
	srv   *server.Server
	ts    *httptest.Server
	admin string             // the admin key
	logs  *shared.SyncBuffer // everything the API handler logged (Debug and up)
}

type harnessOptions struct {
	// strict keeps the production egress policy (no private addresses,
	// ports 443 and 80 only); otherwise development mode.
	strict bool
	// receiver, when set, is trusted for deliveries (its certificate).
	receiver *httptest.Server
	// wrap, when set, wraps the real server (for failure injection).
	wrap func(api.Backend) api.Backend
}

func newHarness(t *testing.T, o harnessOptions) *harness {
	t.Helper()
	cfg := server.Config{
		DataDir:            t.TempDir(),
		AllowPrivateEgress: !o.strict,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if o.receiver != nil {
		cfg.EgressRootCAs = append(cfg.EgressRootCAs, o.receiver.Certificate())
	}
	srv, err := server.New(context.Background(), cfg)
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server.Close: %v", err)
		}
	})
	logs := &shared.SyncBuffer{}
	var b api.Backend = srv
	if o.wrap != nil {
		b = o.wrap(srv)
	}
	h := api.NewHandler(b, api.Options{
		Logger:  slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Version: testVersion,
	})
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	if srv.AdminKey() == "" {
		t.Fatal("server.AdminKey() is empty on first start")
	}
	return &harness{srv: srv, ts: ts, admin: srv.AdminKey(), logs: logs}
}

// response is an answer, read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// message returns the "message" of a JSON error body, failing the test if
// the body is not one.
func (r response) message(t *testing.T) string {
	t.Helper()
	var e struct {
		Message *string `json:"message"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Message == nil {
		t.Fatalf("error body %q: not JSON with a message (err %v)", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("error Content-Type: got %q, want application/json", ct)
	}
	return *e.Message
}

// request describes one call. key is sent as the HTTP Basic user name, or
// as a Bearer token when bearer is set.
type request struct {
	method, path string
	key          string
	password     string // sent with key (or an empty user name) over HTTP Basic
	bearer       bool
	body         io.Reader
	contentType  string // default application/json when there is a body
}

func (h *harness) do(t *testing.T, rq request) response {
	t.Helper()
	req, err := http.NewRequest(rq.method, h.ts.URL+rq.path, rq.body)
	if err != nil {
		t.Fatalf("new request: %v", err)
	}
	switch {
	case rq.key != "" && rq.bearer:
		req.Header.Set("Authorization", "Bearer "+rq.key)
	case rq.key != "" || rq.password != "":
		req.SetBasicAuth(rq.key, rq.password)
	}
	if rq.contentType != "" {
		req.Header.Set("Content-Type", rq.contentType)
	} else if rq.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	client := *h.ts.Client()
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatalf("%s %s: read body: %v", rq.method, rq.path, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: body}
}

// call is do with a string body ("" for none).
func (h *harness) call(t *testing.T, method, path, key, body string) response {
	t.Helper()
	rq := request{method: method, path: path, key: key}
	if body != "" {
		rq.body = strings.NewReader(body)
	}
	return h.do(t, rq)
}

// mustJSON calls and decodes a 2xx JSON answer into out.
func (h *harness) mustJSON(t *testing.T, method, path, key, body string, wantStatus int, out any) {
	t.Helper()
	res := h.call(t, method, path, key, body)
	if res.status != wantStatus {
		t.Fatalf("%s %s: got status %d (%s), want %d", method, path, res.status, res.body, wantStatus)
	}
	if out != nil {
		if err := json.Unmarshal(res.body, out); err != nil {
			t.Fatalf("%s %s: decode %q: %v", method, path, res.body, err)
		}
	}
}

// createKey makes a tailnet-scoped key with the admin key.
func (h *harness) createKey(t *testing.T, tailnetName string) string {
	t.Helper()
	var out struct{ ID, Key, Tailnet string }
	h.mustJSON(t, "POST", "/api/v2/herald/keys", h.admin,
		`{"tailnet":"`+tailnetName+`","description":"test key for `+tailnetName+`"}`, http.StatusOK, &out)
	if out.Key == "" || out.ID == "" || out.Tailnet != tailnetName {
		t.Fatalf("create key: got %+v, want an id, a key and tailnet %q", out, tailnetName)
	}
	return out.Key
}

// webhookJSON is the Webhook JSON as the API answers it.
type webhookJSON struct {
	EndpointID       string    `json:"endpointId"`
	EndpointURL      string    `json:"endpointUrl"`
	ProviderType     string    `json:"providerType"`
	CreatorLoginName string    `json:"creatorLoginName"`
	Created          time.Time `json:"created"`
	LastModified     time.Time `json:"lastModified"`
	Subscriptions    []string  `json:"subscriptions"`
	Secret           *string   `json:"secret"`
}

// createWebhook registers an endpoint and returns it (with its secret).
func (h *harness) createWebhook(t *testing.T, key, tailnetName, url string, subs ...string) webhookJSON {
	t.Helper()
	body, err := json.Marshal(map[string]any{"endpointUrl": url, "subscriptions": append([]string{}, subs...)})
	if err != nil {
		t.Fatal(err)
	}
	var w webhookJSON
	h.mustJSON(t, "POST", "/api/v2/tailnet/"+tailnetName+"/webhooks", key, string(body), http.StatusOK, &w)
	if w.EndpointID == "" || w.Secret == nil || *w.Secret == "" {
		t.Fatalf("create webhook: got %+v, want an id and a secret", w)
	}
	return w
}

// listWebhooks returns the endpoints of a tailnet, as the admin sees them.
func (h *harness) listWebhooks(t *testing.T, tailnetName string) []webhookJSON {
	t.Helper()
	var out struct {
		Webhooks []webhookJSON `json:"webhooks"`
	}
	h.mustJSON(t, "GET", "/api/v2/tailnet/"+tailnetName+"/webhooks", h.admin, "", http.StatusOK, &out)
	return out.Webhooks
}

// receiver is an HTTPS webhook receiver on loopback that keeps every
// batch it gets.
type receiver struct {
	ts      *httptest.Server
	mu      sync.Mutex
	batches [][]map[string]any
	signed  []signedBody  // the raw body and signature header of each batch
	changed chan struct{} // closed and replaced on every batch
}

func newReceiver(t *testing.T) *receiver {
	t.Helper()
	r := &receiver{changed: make(chan struct{})}
	r.ts = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		var batch []map[string]any
		if err != nil || json.Unmarshal(body, &batch) != nil {
			http.Error(w, "bad batch", http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		r.batches = append(r.batches, batch)
		r.signed = append(r.signed, signedBody{body: body, header: req.Header.Get(signer.HeaderName)})
		close(r.changed)
		r.changed = make(chan struct{})
		r.mu.Unlock()
	}))
	t.Cleanup(r.ts.Close)
	return r
}

type signedBody struct {
	body   []byte
	header string
}

// signedBatchOf returns the raw body and signature header of the batch
// that carried the event with this id.
func (r *receiver) signedBatchOf(t *testing.T, eventID string) signedBody {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	for i, b := range r.batches {
		for _, ev := range b {
			if ev["id"] == eventID {
				return r.signed[i]
			}
		}
	}
	t.Fatalf("no batch carried event %s", eventID)
	return signedBody{}
}

// waitFor waits until an event of eventType has arrived, or fails the test
// after deadline.
func (r *receiver) waitFor(t *testing.T, eventType string, deadline time.Duration) map[string]any {
	t.Helper()
	timeout := time.NewTimer(deadline)
	defer timeout.Stop()
	for {
		r.mu.Lock()
		for _, b := range r.batches {
			for _, ev := range b {
				if ev["type"] == eventType {
					r.mu.Unlock()
					return ev
				}
			}
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("no %s event at the receiver within %v", eventType, deadline)
		}
	}
}
