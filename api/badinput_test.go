package api_test

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/herald-webhooks/herald/api"
)

// createBody is a create-webhook body for url, subscribed to nodeCreated.
func createBody(url string) string {
	return fmt.Sprintf(`{"endpointUrl":%q,"providerType":"","subscriptions":["nodeCreated"]}`, url)
}

// chunked hides a reader's length so that it is sent without
// Content-Length.
type chunked struct{ r io.Reader }

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p) }

// TestBadInput checks that every kind of bad request answers the right
// status with a JSON message naming the problem, and that none of them
// changed anything.
func TestBadInput(t *testing.T) {
	h := newHarness(t, harnessOptions{strict: true})
	key := h.createKey(t, "example.com")
	otherKey := h.createKey(t, "other.example.com")
	other := h.createWebhook(t, otherKey, "other.example.com", "https://hooks.other.example.com/in", "nodeCreated")

	const create = "/api/v2/tailnet/example.com/webhooks"
	const ingest = "/api/v2/tailnet/example.com/changes"
	otherPath := "/api/v2/webhooks/" + other.EndpointID
	big := strings.Repeat("x", int(api.DefaultMaxBodyBytes))
	bigBody := `{"endpointUrl":"https://hooks.example.com/` + big + `","subscriptions":[]}`
	tooMany := `{"changes":[` + strings.TrimSuffix(strings.Repeat(`{"kind":"policySaved","policy":"{}"},`, api.MaxChangesPerCall+1), ",") + `]}`

	tests := []struct {
		name       string
		rq         request
		wantStatus int
		wantMsg    string // the message contains this
		notInBody  string // the body must not contain this
	}{
		// Endpoint URLs (the backend's egress.ValidateEndpointURL).
		{name: "http scheme", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("http://hooks.example.com/in"))},
			wantStatus: 400, wantMsg: "endpointUrl: url scheme must be https"},
		{name: "port 8443", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://hooks.example.com:8443/in"))},
			wantStatus: 400, wantMsg: "endpointUrl: url port 8443 is not allowed"},
		{name: "user info", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://alice:hunter2@hooks.example.com/in"))},
			wantStatus: 400, wantMsg: "endpointUrl: url must not contain user info", notInBody: "hunter2"},
		{name: "fragment", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://hooks.example.com/in#frag"))},
			wantStatus: 400, wantMsg: "endpointUrl: url must not contain a fragment"},
		{name: "empty url", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"","subscriptions":[]}`)},
			wantStatus: 400, wantMsg: "endpointUrl: required"},
		{name: "missing url", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"subscriptions":[]}`)},
			wantStatus: 400, wantMsg: "endpointUrl: required"},
		{name: "loopback dotted", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://127.0.0.1/in"))},
			wantStatus: 400, wantMsg: "loopback address 127.0.0.1"},
		{name: "loopback hex shorthand", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://0x7f.1/in"))},
			wantStatus: 400, wantMsg: "loopback address 127.0.0.1"},
		{name: "loopback decimal", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://2130706433/in"))},
			wantStatus: 400, wantMsg: "loopback address 127.0.0.1"},
		{name: "loopback octal", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://0177.0.0.1/in"))},
			wantStatus: 400, wantMsg: "loopback address 127.0.0.1"},
		{name: "loopback IPv4-mapped", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://[::ffff:127.0.0.1]/in"))},
			wantStatus: 400, wantMsg: "loopback address 127.0.0.1"},
		{name: "loopback IPv6", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://[::1]/in"))},
			wantStatus: 400, wantMsg: "loopback address ::1"},
		{name: "metadata in NAT64", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://[64:ff9b::a9fe:a9fe]/in"))},
			wantStatus: 400, wantMsg: "embedded in NAT64"},
		{name: "metadata service", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://169.254.169.254/latest"))},
			wantStatus: 400, wantMsg: "link-local address 169.254.169.254"},
		{name: "CGNAT", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://100.101.102.103/in"))},
			wantStatus: 400, wantMsg: "CGNAT address 100.101.102.103"},
		{name: "private", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://10.1.2.3/in"))},
			wantStatus: 400, wantMsg: "private address 10.1.2.3"},
		{name: "unspecified", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://0.0.0.0/in"))},
			wantStatus: 400, wantMsg: "unspecified address 0.0.0.0"},
		{name: "Tailscale ULA", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://[fd7a:115c:a1e0::1]/in"))},
			wantStatus: 400, wantMsg: "Tailscale address"},
		{name: "localhost name", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://localhost/in"))},
			wantStatus: 400, wantMsg: "loopback name"},

		// Subscriptions and provider types.
		{name: "unknown subscription", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","subscriptions":["nodeCreated","nodeExploded"]}`)},
			wantStatus: 400, wantMsg: `subscriptions: unknown subscription "nodeExploded"`},
		{name: "unknown provider", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","providerType":"pager","subscriptions":[]}`)},
			wantStatus: 400, wantMsg: `providerType: unknown provider type "pager"`},
		{name: "missing subscriptions", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in"}`)},
			wantStatus: 400, wantMsg: "subscriptions: required"},
		{name: "null subscriptions", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","subscriptions":null}`)},
			wantStatus: 400, wantMsg: "subscriptions: required"},
		{name: "subscriptions not a list", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","subscriptions":"nodeCreated"}`)},
			wantStatus: 400, wantMsg: "subscriptions: want a JSON array of strings, got string"},
		{name: "subscription not a string", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","subscriptions":[1]}`)},
			wantStatus: 400, wantMsg: "subscriptions: want a JSON string, got number"},
		{name: "patch unknown subscription", rq: request{method: "PATCH", path: otherPath, key: h.admin, body: strings.NewReader(`{"subscriptions":["nodeExploded"]}`)},
			wantStatus: 400, wantMsg: `subscriptions: unknown subscription "nodeExploded"`},
		{name: "patch missing subscriptions", rq: request{method: "PATCH", path: otherPath, key: h.admin, body: strings.NewReader(`{}`)},
			wantStatus: 400, wantMsg: "subscriptions: required"},
		{name: "patch unknown field", rq: request{method: "PATCH", path: otherPath, key: h.admin, body: strings.NewReader(`{"subscriptions":[],"endpointUrl":"https://evil.example.com/"}`)},
			wantStatus: 400, wantMsg: `body: unknown field "endpointUrl"`},
		{name: "patch empty body", rq: request{method: "PATCH", path: otherPath, key: h.admin},
			wantStatus: 400, wantMsg: "body: empty"},

		// Bodies.
		{name: "not JSON", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`endpointUrl=https://hooks.example.com/in`)},
			wantStatus: 400, wantMsg: "body: invalid JSON"},
		{name: "truncated JSON", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in"`)},
			wantStatus: 400, wantMsg: "body: invalid JSON: unexpected end of input"},
		{name: "unknown field", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/in","subscriptions":[],"colour":"blue"}`)},
			wantStatus: 400, wantMsg: `body: unknown field "colour"`},
		{name: "trailing data", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://hooks.example.com/in") + ` {}`)},
			wantStatus: 400, wantMsg: "body: invalid JSON: more data after the first JSON value"},
		{name: "array body", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`[]`)},
			wantStatus: 400, wantMsg: "body: want a JSON object, got array"},
		{name: "empty body", rq: request{method: "POST", path: create, key: key},
			wantStatus: 400, wantMsg: "body: empty"},
		{name: "blank body", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(" \n\t")},
			wantStatus: 400, wantMsg: "body: empty"},
		{name: "body over limit", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(bigBody)},
			wantStatus: 413, wantMsg: "body: larger than 1048576 bytes", notInBody: "xxxx"},
		{name: "body over limit without length", rq: request{method: "POST", path: create, key: key, body: chunked{strings.NewReader(bigBody)}},
			wantStatus: 413, wantMsg: "body: larger than 1048576 bytes"},
		{name: "text/plain", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(createBody("https://hooks.example.com/in")), contentType: "text/plain"},
			wantStatus: 415, wantMsg: `Content-Type: got "text/plain", want application/json`},
		{name: "multipart", rq: request{method: "POST", path: create, key: key, body: strings.NewReader("--x--"), contentType: "multipart/form-data; boundary=x"},
			wantStatus: 415, wantMsg: "want application/json"},

		// Keys.
		{name: "missing key", rq: request{method: "GET", path: create},
			wantStatus: 401, wantMsg: "API key required"},
		{name: "key as password only", rq: request{method: "GET", path: create, password: key},
			wantStatus: 401, wantMsg: "API key required"},
		{name: "wrong key", rq: request{method: "GET", path: create, key: "herald-api-000000000000-nope"},
			wantStatus: 401, wantMsg: "invalid API key"},
		{name: "wrong bearer key", rq: request{method: "GET", path: create, key: "nope", bearer: true},
			wantStatus: 401, wantMsg: "invalid API key"},
		{name: "missing key on create", rq: request{method: "POST", path: create, body: strings.NewReader(createBody("https://hooks.example.com/in"))},
			wantStatus: 401, wantMsg: "API key required"},
		{name: "missing key on version", rq: request{method: "GET", path: "/api/v2/herald/version"},
			wantStatus: 401, wantMsg: "API key required"},
		{name: "missing endpoint", rq: request{method: "GET", path: "/api/v2/webhooks/nope", key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: get", rq: request{method: "GET", path: otherPath, key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: patch", rq: request{method: "PATCH", path: otherPath, key: key, body: strings.NewReader(`{"subscriptions":[]}`)},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: delete", rq: request{method: "DELETE", path: otherPath, key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: rotate", rq: request{method: "POST", path: otherPath + "/rotate", key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: test", rq: request{method: "POST", path: otherPath + "/test", key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet's endpoint: status", rq: request{method: "GET", path: otherPath + "/status", key: key},
			wantStatus: 404, wantMsg: "webhook endpoint not found"},
		{name: "other tailnet: list", rq: request{method: "GET", path: "/api/v2/tailnet/other.example.com/webhooks", key: key},
			wantStatus: 404, wantMsg: "tailnet not found"},
		{name: "other tailnet: create", rq: request{method: "POST", path: "/api/v2/tailnet/other.example.com/webhooks", key: key, body: strings.NewReader(createBody("https://hooks.example.com/in"))},
			wantStatus: 404, wantMsg: "tailnet not found"},
		{name: "other tailnet: ingest", rq: request{method: "POST", path: "/api/v2/tailnet/other.example.com/changes", key: key, body: strings.NewReader(`{"kind":"policySaved","policy":"{}"}`)},
			wantStatus: 404, wantMsg: "tailnet not found"},
		{name: "dot-dot in a path is not redirected", rq: request{method: "GET", path: "/api/v2/webhooks/..", key: h.admin},
			wantStatus: 404, wantMsg: "no such API call"},
		{name: "invalid UTF-8 in a body", rq: request{method: "POST", path: create, key: key, body: strings.NewReader("{\"endpointUrl\":\"https://hooks.example.com/\xff\",\"subscriptions\":[]}")},
			wantStatus: 400, wantMsg: "body: not valid UTF-8"},
		{name: "list with an invalid tailnet name", rq: request{method: "GET", path: "/api/v2/tailnet/a..b/webhooks", key: h.admin},
			wantStatus: 400, wantMsg: "empty label"},
		{name: "list with a very long tailnet name", rq: request{method: "GET", path: "/api/v2/tailnet/" + strings.Repeat("t", 10000) + "/webhooks", key: h.admin},
			wantStatus: 400, wantMsg: "longer than 253", notInBody: strings.Repeat("t", 300)},
		{name: "long unknown subscription is not echoed whole", rq: request{method: "POST", path: create, key: key, body: strings.NewReader(`{"endpointUrl":"https://hooks.example.com/","subscriptions":["` + strings.Repeat("s", 5000) + `"]}`)},
			wantStatus: 400, wantMsg: "unknown subscription", notInBody: strings.Repeat("s", 200)},
		{name: "admin key with dash: list", rq: request{method: "GET", path: "/api/v2/tailnet/-/webhooks", key: h.admin},
			wantStatus: 400, wantMsg: "name a tailnet"},
		{name: "admin key with dash: create", rq: request{method: "POST", path: "/api/v2/tailnet/-/webhooks", key: h.admin, body: strings.NewReader(createBody("https://hooks.example.com/in"))},
			wantStatus: 400, wantMsg: "name a tailnet"},
		{name: "admin key with dash: ingest", rq: request{method: "POST", path: "/api/v2/tailnet/-/changes", key: h.admin, body: strings.NewReader(`{"kind":"policySaved","policy":"{}"}`)},
			wantStatus: 400, wantMsg: "name a tailnet"},
		{name: "bad tailnet name", rq: request{method: "POST", path: "/api/v2/tailnet/bad%20name/webhooks", key: h.admin, body: strings.NewReader(createBody("https://hooks.example.com/in"))},
			wantStatus: 400, wantMsg: `tailnet name "bad name"`},
		{name: "tailnet key makes keys", rq: request{method: "POST", path: "/api/v2/herald/keys", key: key, body: strings.NewReader(`{"tailnet":"example.com"}`)},
			wantStatus: 403, wantMsg: "admin key is required"},
		{name: "key without tailnet", rq: request{method: "POST", path: "/api/v2/herald/keys", key: h.admin, body: strings.NewReader(`{"description":"x"}`)},
			wantStatus: 400, wantMsg: "tailnet: required"},
		{name: "key for dash", rq: request{method: "POST", path: "/api/v2/herald/keys", key: h.admin, body: strings.NewReader(`{"tailnet":"-"}`)},
			wantStatus: 400, wantMsg: "tailnet: name a tailnet"},
		{name: "key description too long", rq: request{method: "POST", path: "/api/v2/herald/keys", key: h.admin, body: strings.NewReader(`{"tailnet":"example.com","description":"` + strings.Repeat("d", api.MaxKeyDescriptionLen+1) + `"}`)},
			wantStatus: 400, wantMsg: "description: longer than 256 bytes"},

		// Ingest.
		{name: "ingest unknown kind", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"kind":"nodeExploded","node":{"id":"n1","name":"a"}}`)},
			wantStatus: 400, wantMsg: `unknown kind "nodeExploded"`},
		{name: "ingest no kind", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"node":{"id":"n1","name":"a"}}`)},
			wantStatus: 400, wantMsg: "kind is required"},
		{name: "ingest no node id", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"kind":"nodeAdded","node":{"name":"a"}}`)},
			wantStatus: 400, wantMsg: "node.id is required"},
		{name: "ingest unknown field", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"kind":"nodeAdded","node":{"id":"n1","name":"a"},"severity":"high"}`)},
			wantStatus: 400, wantMsg: `body: unknown field "severity"`},
		{name: "ingest unknown node field", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"kind":"nodeAdded","node":{"id":"n1","name":"a","os":"linux"}}`)},
			wantStatus: 400, wantMsg: `body: unknown field "os"`},
		{name: "ingest not JSON", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`kind=nodeAdded`)},
			wantStatus: 400, wantMsg: "body: invalid JSON"},
		{name: "ingest empty batch", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[]}`)},
			wantStatus: 400, wantMsg: "changes: at least one change is required"},
		{name: "ingest batch over limit", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(tooMany)},
			wantStatus: 400, wantMsg: fmt.Sprintf("changes: %d changes, more than the limit of %d per call", api.MaxChangesPerCall+1, api.MaxChangesPerCall)},
		{name: "ingest batch bad field", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[{"kind":"policySaved","policy":"{}"},{"kind":"policySaved","colour":1}]}`)},
			wantStatus: 400, wantMsg: `changes[1]: unknown field "colour"`},
		{name: "ingest batch bad type", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[{"kind":"nodeAdded","node":{"id":7}}]}`)},
			wantStatus: 400, wantMsg: "changes[0].node.id: want a JSON string, got number"},
		{name: "ingest changes not a list", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":{"kind":"nodeAdded"}}`)},
			wantStatus: 400, wantMsg: "changes: want a JSON array of values, got object"},
		{name: "ingest null change", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[null]}`)},
			wantStatus: 400, wantMsg: "changes[0]: want a JSON object, got null"},
		{name: "ingest bad type", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"kind":"userAdded","user":{"login":"a@b","roles":"admin"}}`)},
			wantStatus: 400, wantMsg: "user.roles: want a JSON array of strings, got string"},
		{name: "ingest batch unknown kind", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[{"kind":"policySaved","policy":"{}"},{"kind":"nodeExploded"}]}`)},
			wantStatus: 400, wantMsg: `changes[1]: change: unknown kind "nodeExploded"`},
		{name: "ingest batch and kind", rq: request{method: "POST", path: ingest, key: key, body: strings.NewReader(`{"changes":[{"kind":"policySaved","policy":"{}"}],"kind":"policySaved"}`)},
			wantStatus: 400, wantMsg: `body: unknown field "kind"`},

		// Routing.
		{name: "wrong method", rq: request{method: "PUT", path: otherPath, key: h.admin, body: strings.NewReader(`{}`)},
			wantStatus: 405, wantMsg: "method not allowed"},
		{name: "unknown path", rq: request{method: "GET", path: "/api/v2/tailnet/example.com/devices", key: key},
			wantStatus: 404, wantMsg: "no such API call"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.do(t, tc.rq)
			if res.status != tc.wantStatus {
				t.Errorf("status: got %d (%s), want %d", res.status, res.body, tc.wantStatus)
			}
			if msg := res.message(t); !strings.Contains(msg, tc.wantMsg) {
				t.Errorf("message: got %q, want it to contain %q", msg, tc.wantMsg)
			}
			if tc.notInBody != "" && strings.Contains(string(res.body), tc.notInBody) {
				t.Errorf("body %q: contains %q, want it not to", res.body, tc.notInBody)
			}
			switch tc.wantStatus {
			case http.StatusUnauthorized:
				if got := res.header.Get("WWW-Authenticate"); !strings.Contains(got, "Basic") {
					t.Errorf("WWW-Authenticate: got %q, want a Basic challenge", got)
				}
			case http.StatusMethodNotAllowed:
				if got := res.header.Get("Allow"); !strings.Contains(got, "PATCH") {
					t.Errorf("Allow: got %q, want it to list PATCH", got)
				}
			}
		})
	}

	// Nothing was created, and the other tailnet's endpoint is unchanged.
	raw := h.call(t, "GET", create, key, "")
	if raw.status != http.StatusOK || !strings.Contains(string(raw.body), `"webhooks":[]`) {
		t.Errorf("list example.com: got %d %s, want 200 with \"webhooks\":[]", raw.status, raw.body)
	}
	got := h.listWebhooks(t, "other.example.com")
	if len(got) != 1 || got[0].EndpointID != other.EndpointID || got[0].EndpointURL != other.EndpointURL ||
		!slices.Equal(got[0].Subscriptions, []string{"nodeCreated"}) {
		t.Errorf("list other.example.com: got %+v, want only %s unchanged", got, other.EndpointID)
	}
}

// TestForeignEndpointIndistinguishable checks that a key for another
// tailnet gets exactly the answer a missing endpoint gets.
func TestForeignEndpointIndistinguishable(t *testing.T) {
	h := newHarness(t, harnessOptions{strict: true})
	key := h.createKey(t, "example.com")
	otherKey := h.createKey(t, "other.example.com")
	other := h.createWebhook(t, otherKey, "other.example.com", "https://hooks.other.example.com/in")

	for _, suffix := range []string{"", "/status"} {
		missing := h.call(t, "GET", "/api/v2/webhooks/doesnotexist"+suffix, key, "")
		foreign := h.call(t, "GET", "/api/v2/webhooks/"+other.EndpointID+suffix, key, "")
		if missing.status != http.StatusNotFound || foreign.status != missing.status {
			t.Errorf("GET%s: got status %d for another tailnet's endpoint and %d for a missing one, want 404 for both",
				suffix, foreign.status, missing.status)
		}
		if string(foreign.body) != string(missing.body) {
			t.Errorf("GET%s: got body %q for another tailnet's endpoint, want %q (a missing endpoint's)", suffix, foreign.body, missing.body)
		}
		for _, hdr := range []string{"Content-Type", "Content-Length"} {
			if foreign.header.Get(hdr) != missing.header.Get(hdr) {
				t.Errorf("GET%s: %s: got %q for another tailnet's endpoint, want %q", suffix, hdr, foreign.header.Get(hdr), missing.header.Get(hdr))
			}
		}
	}
	// The endpoint is still there for its owner.
	var w webhookJSON
	h.mustJSON(t, "GET", "/api/v2/webhooks/"+other.EndpointID, otherKey, "", http.StatusOK, &w)
	if w.EndpointID != other.EndpointID {
		t.Errorf("owner's get: got endpoint %q, want %q", w.EndpointID, other.EndpointID)
	}
}
