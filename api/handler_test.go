package api_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/api"
	"github.com/herald-webhooks/herald/eventlog"
)

func decodeInto(t *testing.T, body []byte, out any) {
	t.Helper()
	if err := json.Unmarshal(body, out); err != nil {
		t.Fatalf("decode %q: %v", body, err)
	}
}

// TestHealthzAndVersion checks the unauthenticated health check and the
// version call.
func TestHealthzAndVersion(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	res := h.call(t, "GET", "/healthz", "", "")
	if res.status != http.StatusOK || string(res.body) != "ok" {
		t.Errorf("GET /healthz: got %d %q, want 200 \"ok\"", res.status, res.body)
	}
	var v struct{ Version string }
	h.mustJSON(t, "GET", "/api/v2/herald/version", h.admin, "", http.StatusOK, &v)
	if v.Version != testVersion {
		t.Errorf("version: got %q, want %q", v.Version, testVersion)
	}
}

// TestAuthSchemes checks every accepted way of presenting a key.
func TestAuthSchemes(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	key := h.createKey(t, "example.com")
	const path = "/api/v2/tailnet/example.com/webhooks"
	tests := []struct {
		name  string
		setup func(r *http.Request)
	}{
		{"basic, empty password", func(r *http.Request) { r.SetBasicAuth(key, "") }},
		{"basic, password ignored", func(r *http.Request) { r.SetBasicAuth(key, "anything") }},
		{"bearer", func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+key) }},
		{"bearer, lower case scheme", func(r *http.Request) { r.Header.Set("Authorization", "bearer "+key) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			req, err := http.NewRequest("GET", h.ts.URL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			tc.setup(req)
			res, err := h.ts.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			res.Body.Close()
			if res.StatusCode != http.StatusOK {
				t.Errorf("got status %d, want 200", res.StatusCode)
			}
		})
	}
}

// TestDeliveryStatus checks that an endpoint's status is served as JSON.
func TestDeliveryStatus(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	key := h.createKey(t, "example.com")
	ep := h.createWebhook(t, key, "example.com", "https://hooks.example.com/in", "nodeCreated")
	res := h.call(t, "GET", "/api/v2/webhooks/"+ep.EndpointID+"/status", key, "")
	if res.status != http.StatusOK {
		t.Fatalf("status: got %d %s, want 200", res.status, res.body)
	}
	var st map[string]any
	decodeInto(t, res.body, &st)
	if len(st) == 0 {
		t.Errorf("status: got %s, want a JSON object with the delivery state", res.body)
	}
}

// TestRequestLog checks that every request is logged at Debug with its
// method, path and status, and that keys, secrets and bodies never are.
func TestRequestLog(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	key := h.createKey(t, "example.com")
	const hookURL = "https://hooks.example.com/private-path-token"
	ep := h.createWebhook(t, key, "example.com", hookURL, "nodeCreated")
	var rotated webhookJSON
	h.mustJSON(t, "POST", "/api/v2/webhooks/"+ep.EndpointID+"/rotate", key, "", http.StatusOK, &rotated)
	h.call(t, "GET", "/api/v2/webhooks/"+ep.EndpointID, "wrong-key-value", "")

	logs := h.logs.String()
	for _, want := range []string{
		"method=POST path=/api/v2/tailnet/example.com/webhooks status=200",
		"method=POST path=/api/v2/webhooks/" + ep.EndpointID + "/rotate status=200",
		"method=GET path=/api/v2/webhooks/" + ep.EndpointID + " status=401",
		"duration=",
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("log: missing %q in:\n%s", want, logs)
		}
	}
	for what, secret := range map[string]string{
		"admin key": h.admin, "tailnet key": key, "wrong key": "wrong-key-value",
		"secret": *ep.Secret, "rotated secret": *rotated.Secret, "body": "private-path-token",
	} {
		if strings.Contains(logs, secret) {
			t.Errorf("log: contains the %s", what)
		}
	}
}

// failing wraps the real server and makes chosen calls fail, to check how
// the handler answers backend failures.
type failing struct {
	api.Backend
	list func() error // ListEndpoints
}

func (f failing) ListEndpoints(ctx context.Context, tailnetName string) ([]tailnet.Endpoint, error) {
	if f.list != nil {
		return nil, f.list()
	}
	return f.Backend.ListEndpoints(ctx, tailnetName)
}

// TestBackendFailures checks the answers to failures that are not the
// caller's: 503 with Retry-After while the log is unavailable, 500 with a
// message that leaks nothing for other errors and for panics.
func TestBackendFailures(t *testing.T) {
	const internalDetail = "open /var/lib/herald/secrets.key: permission denied"
	tests := []struct {
		name           string
		f              failing
		wantStatus     int
		wantMsg        string
		wantRetryAfter string
		wantLog        string
	}{
		{
			name:       "log unavailable",
			f:          failing{list: func() error { return fmt.Errorf("append tailnet-example.com: %w", eventlog.ErrUnavailable) }},
			wantStatus: http.StatusServiceUnavailable, wantMsg: "try again later", wantRetryAfter: fmt.Sprint(api.RetryAfterSeconds),
			wantLog: "eventlog: unavailable",
		},
		{
			name:       "log closed",
			f:          failing{list: func() error { return fmt.Errorf("read tailnet-example.com: %w", eventlog.ErrClosed) }},
			wantStatus: http.StatusServiceUnavailable, wantMsg: "try again later", wantRetryAfter: fmt.Sprint(api.RetryAfterSeconds),
			wantLog: "eventlog: closed",
		},
		{
			name:       "other error",
			f:          failing{list: func() error { return errors.New(internalDetail) }},
			wantStatus: http.StatusInternalServerError, wantMsg: "internal error",
			wantLog: internalDetail,
		},
		{
			name:       "panic",
			f:          failing{list: func() error { panic(internalDetail) }},
			wantStatus: http.StatusInternalServerError, wantMsg: "internal error",
			wantLog: "panic",
		},
		{
			name:       "invalid",
			f:          failing{list: func() error { return fmt.Errorf("list: %w", &tailnet.InvalidError{Msg: "tailnet: bad"}) }},
			wantStatus: http.StatusBadRequest, wantMsg: "tailnet: bad",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{wrap: func(b api.Backend) api.Backend { tc.f.Backend = b; return tc.f }})
			res := h.call(t, "GET", "/api/v2/tailnet/example.com/webhooks", h.admin, "")
			if res.status != tc.wantStatus {
				t.Errorf("status: got %d, want %d", res.status, tc.wantStatus)
			}
			if msg := res.message(t); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", msg, tc.wantMsg)
			}
			if strings.Contains(string(res.body), "permission denied") {
				t.Errorf("body %q: leaks the internal error", res.body)
			}
			if got := res.header.Get("Retry-After"); got != tc.wantRetryAfter {
				t.Errorf("Retry-After: got %q, want %q", got, tc.wantRetryAfter)
			}
			if tc.wantLog != "" && !strings.Contains(h.logs.String(), tc.wantLog) {
				t.Errorf("log: missing %q in:\n%s", tc.wantLog, h.logs.String())
			}
			// The server still answers afterwards.
			if res := h.call(t, "GET", "/healthz", "", ""); res.status != http.StatusOK {
				t.Errorf("healthz after failure: got %d, want 200", res.status)
			}
		})
	}
}
