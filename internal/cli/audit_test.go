package cli

import (
	"bufio"
	"context"
	"crypto/x509"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/internal/esdbserver"
	"github.com/herald-webhooks/herald/projections"
	"github.com/herald-webhooks/herald/server"
)

// auditWaitLimit bounds every wait for a condition in these tests.
const auditWaitLimit = 20 * time.Second

// auditedRun is what a Herald wrote before it was closed: the ids the
// tests look for.
type auditedRun struct {
	ok, failing, other string // endpoints: example.com ×2, other.org
	e1, e2             string // nodeCreated in example.com (→ ok, failing), in other.org (→ other)
}

// writeAuditedRun runs a Herald on log (nil: the embedded log in dir):
// example.com has an endpoint that accepts and one that answers 500,
// other.org one that accepts; one node is added in each tailnet and the
// first attempts are logged. The server is closed before it returns.
func writeAuditedRun(t *testing.T, dir string, log eventlog.Log) auditedRun {
	t.Helper()
	fc := clock.NewFake(time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC))
	status := func(code int) *httptest.Server {
		s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(code) }))
		t.Cleanup(s.Close)
		return s
	}
	okRecv, failRecv := status(http.StatusOK), status(http.StatusInternalServerError)
	ctx := context.Background()
	srv, err := server.New(ctx, server.Config{
		DataDir:            dir,
		Log:                log,
		Clock:              fc,
		AllowPrivateEgress: true,
		EgressRootCAs:      []*x509.Certificate{okRecv.Certificate(), failRecv.Certificate()},
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	defer srv.Close()
	create := func(tn, url string) string {
		ep, _, err := srv.CreateEndpoint(ctx, tn, "mira@example.com", url+"/hook", "", []string{events.NodeCreated})
		if err != nil {
			t.Fatalf("create endpoint in %s: %v", tn, err)
		}
		return ep.ID
	}
	var r auditedRun
	r.ok, r.failing, r.other = create("example.com", okRecv.URL), create("example.com", failRecv.URL), create("other.org", okRecv.URL)
	ingest := func(tn string) string {
		raised, err := srv.Ingest(ctx, tn, []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: "n1", Name: "build-01"}}})
		if err != nil || len(raised) != 1 {
			t.Fatalf("ingest in %s: raised %+v, %v", tn, raised, err)
		}
		return raised[0].ID
	}
	r.e1, r.e2 = ingest("example.com"), ingest("other.org")

	wctx, cancel := context.WithTimeout(ctx, auditWaitLimit)
	defer cancel()
	// The endpoint actors are the fake clock's only users: three lingering
	// endpoints arm three timers once their events are queued.
	if err := fc.WaitFor(wctx, func(c *clock.Fake) bool { return c.Pending() == 3 }); err != nil {
		t.Fatalf("got %d endpoint timers, want 3: %v", fc.Pending(), err)
	}
	fc.Advance(endpoint.DefaultBatchLinger)
	sub, err := srv.Log().Subscribe(wctx, eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for attempts := 0; attempts < 3; {
		rec, err := sub.Next(wctx)
		if err != nil {
			t.Fatalf("got %d attempt records, want 3: %v", attempts, err)
		}
		if rec.Type == endpoint.TypeAttempt {
			attempts++
		}
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	return r
}

// auditLines runs herald audit with args and decodes its output.
func auditLines(t *testing.T, args ...string) []projections.EventHistory {
	t.Helper()
	code, stdout, stderr := run(append([]string{"audit"}, args...)...)
	if code != 0 {
		t.Fatalf("herald audit %v: exit %d, stderr %q; want 0", args, code, stderr)
	}
	var out []projections.EventHistory
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var h projections.EventHistory
		if err := json.Unmarshal(sc.Bytes(), &h); err != nil {
			t.Fatalf("line %q is not an event history: %v", sc.Text(), err)
		}
		out = append(out, h)
	}
	return out
}

func ids(hs []projections.EventHistory) []string {
	var out []string
	for _, h := range hs {
		var eps []string
		for _, d := range h.Endpoints {
			eps = append(eps, d.Endpoint+"="+string(d.Outcome))
		}
		out = append(out, h.ID+"("+strings.Join(eps, ",")+")")
	}
	return out
}

// TestAuditPrintsEachEventsHistory: herald audit on a data directory a
// Herald wrote and closed prints one line per event, in raise order, with
// every endpoint's attempts and outcome; the flags narrow it.
func TestAuditPrintsEachEventsHistory(t *testing.T) {
	dir := t.TempDir()
	r := writeAuditedRun(t, dir, nil)
	e1 := r.e1 + "(" + r.ok + "=delivered," + r.failing + "=pending)"
	e2 := r.e2 + "(" + r.other + "=delivered)"
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"everything", nil, []string{e1, e2}},
		{"one tailnet", []string{"--tailnet", "other.org"}, []string{e2}},
		{"one endpoint", []string{"--endpoint", r.failing}, []string{r.e1 + "(" + r.failing + "=pending)"}},
		{"one event", []string{"--event", r.e2}, []string{e2}},
		{"an event outside the tailnet asked for", []string{"--event", r.e2, "--tailnet", "example.com"}, nil},
		{"an endpoint with no events", []string{"--endpoint", "nothingHere"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ids(auditLines(t, append([]string{"--data", dir}, tt.args...)...))
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}

	all := auditLines(t, "--data", dir)
	if len(all) != 2 {
		t.Fatalf("got %d lines, want 2", len(all))
	}
	h := all[0]
	if h.Type != events.NodeCreated || h.Tailnet != "example.com" || h.Raised == 0 {
		t.Errorf("first event: type %q tailnet %q raised %d, want nodeCreated in example.com at a position", h.Type, h.Tailnet, h.Raised)
	}
	for _, d := range h.Endpoints {
		wantStatus, wantResult := http.StatusOK, endpoint.ResultDelivered
		if d.Endpoint == r.failing {
			wantStatus, wantResult = http.StatusInternalServerError, endpoint.ResultRetry
		}
		if !d.Queued || len(d.Attempts) != 1 || d.Attempts[0].Status != wantStatus || d.Attempts[0].Result != wantResult || d.Attempts[0].ID == "" {
			t.Errorf("endpoint %s: queued %v attempts %+v, want queued and one attempt with status %d, result %s", d.Endpoint, d.Queued, d.Attempts, wantStatus, wantResult)
		}
	}
}

// TestAuditReadsEventStoreDB: --eventlog takes an EventStoreDB connection
// string, as herald serve does.
func TestAuditReadsEventStoreDB(t *testing.T) {
	conn, _ := esdbserver.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), auditWaitLimit)
	defer cancel()
	l, err := esdb.Open(ctx, conn, esdb.Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("open esdb: %v", err)
	}
	r := writeAuditedRun(t, t.TempDir(), l)
	l.Close()
	got := ids(auditLines(t, "--eventlog", conn, "--tailnet", "other.org"))
	if want := r.e2 + "(" + r.other + "=delivered)"; len(got) != 1 || got[0] != want {
		t.Errorf("got %v, want [%s]", got, want)
	}
}

// TestAuditFailsClearly: what cannot be audited exits 1 with a message
// that says why.
func TestAuditFailsClearly(t *testing.T) {
	written := t.TempDir()
	writeAuditedRun(t, written, nil)

	running := t.TempDir()
	srv, err := server.New(context.Background(), server.Config{DataDir: running, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatalf("server.New: %v", err)
	}
	defer srv.Close()

	notHerald := t.TempDir()
	if err := os.WriteFile(filepath.Join(notHerald, "notes.txt"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{"herald serve holds the log", []string{"--data", running}, []string{"locked", "herald serve", "stopped"}},
		{"no log in the directory", []string{"--data", notHerald}, []string{"no event log", filepath.Join(notHerald, server.LogDir)}},
		{"no such event", []string{"--data", written, "--event", "ev_notThere"}, []string{"--event ev_notThere", "no such event"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := run(append([]string{"audit"}, tt.args...)...)
			if code != 1 {
				t.Errorf("exit %d, want 1 (stderr %q)", code, stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q does not say %q", stderr, w)
				}
			}
			if stdout != "" {
				t.Errorf("stdout %q, want nothing", stdout)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(notHerald, server.LogDir)); !os.IsNotExist(err) {
		t.Errorf("auditing a directory without a log created %s (stat: %v)", server.LogDir, err)
	}
}

// TestAuditBadFlagsNameTheFlag: bad input exits 2 naming the flag, and
// opens nothing.
func TestAuditBadFlagsNameTheFlag(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"unknown flag", []string{"--colour"}, "flag provided but not defined: -colour"},
		{"stray argument", []string{"--data", dir, "extra"}, `unexpected argument "extra"`},
		{"empty data", []string{"--data", ""}, "--data"},
		{"unknown eventlog", []string{"--data", dir, "--eventlog", "postgres://x"}, "--eventlog"},
		{"event id with a space", []string{"--data", dir, "--event", "ev 1"}, `--event "ev 1"`},
		{"event id too long", []string{"--data", dir, "--event", strings.Repeat("e", maxAuditIDLength+1)}, "--event"},
		{"endpoint id with a slash", []string{"--data", dir, "--endpoint", "../x"}, `--endpoint "../x"`},
		{"tailnet that is not a name", []string{"--data", dir, "--tailnet", "a b"}, "--tailnet"},
		{"the key's own tailnet", []string{"--data", dir, "--tailnet", "-"}, "--tailnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(append([]string{"audit"}, tt.args...)...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not name the problem (want %q)", stderr, tt.want)
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("bad flags left %d entries in the data directory, want none", len(entries))
	}
}
