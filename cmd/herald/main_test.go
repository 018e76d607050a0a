package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/signer"
)

const waitLimit = 60 * time.Second

// heraldBin is the binary under test, built once by TestMain.
var heraldBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "herald-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	heraldBin = filepath.Join(dir, "herald")
	build := exec.Command("go", "build", "-o", heraldBin, ".")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build herald:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// process is a running `herald serve`.
type process struct {
	cmd  *exec.Cmd
	addr string
	logs *syncBuffer
	done chan error
}

type syncBuffer struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	changed chan struct{} // closed and replaced on every write
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.changed != nil {
		close(b.changed)
	}
	b.changed = make(chan struct{})
	return b.buf.Write(p)
}

// waitFor waits until the buffer holds s.
func (b *syncBuffer) waitFor(t *testing.T, s string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		b.mu.Lock()
		found := strings.Contains(b.buf.String(), s)
		if b.changed == nil {
			b.changed = make(chan struct{})
		}
		changed := b.changed
		b.mu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("the log never said %q within %v:\n%s", s, waitLimit, b.String())
		}
	}
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

var listeningRE = regexp.MustCompile(`msg="herald listening" addr=(\S+)`)

// startServe starts herald serve and waits until it listens.
func startServe(t *testing.T, args ...string) *process {
	t.Helper()
	cmd := exec.Command(heraldBin, append([]string{"serve", "--listen", "127.0.0.1:0"}, args...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, logs: &syncBuffer{}, done: make(chan error, 1)}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.logs.Write([]byte(line + "\n"))
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				addr <- m[1]
			}
		}
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-p.done
		p.done <- nil
	})
	select {
	case p.addr = <-addr:
		return p
	case err := <-p.done:
		t.Fatalf("herald serve exited before listening: %v\n%s", err, p.logs.String())
	case <-time.After(waitLimit):
		t.Fatalf("herald serve did not listen within %v\n%s", waitLimit, p.logs.String())
	}
	return nil
}

// call makes an API call with key and decodes the JSON answer into out.
func call(key, method, url string, body any, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		return 0, err
	}
	req.SetBasicAuth(key, "")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && resp.StatusCode < 300 {
		if err := json.Unmarshal(raw, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode %s: %w", raw, err)
		}
	}
	return resp.StatusCode, nil
}

// eventSink is an HTTPS receiver that verifies signatures and records
// every event id it gets.
type eventSink struct {
	*httptest.Server
	mu      sync.Mutex
	secret  string
	failing bool // answer 503 and record nothing
	ids     map[string]int
	bad     int
	changed chan struct{}
}

func newEventSink(t *testing.T) *eventSink {
	s := &eventSink{ids: map[string]int{}, changed: make(chan struct{})}
	s.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		s.mu.Lock()
		defer s.mu.Unlock()
		if signer.Verify(r.Header.Get(signer.HeaderName), body, []string{s.secret}, time.Now(), 5*time.Minute) != nil {
			s.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if s.failing {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var evs []struct {
			ID string `json:"id"`
		}
		if err := json.Unmarshal(body, &evs); err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		for _, ev := range evs {
			s.ids[ev.ID]++
		}
		close(s.changed)
		s.changed = make(chan struct{})
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *eventSink) certFile(t *testing.T) string {
	path := filepath.Join(t.TempDir(), "receiver.pem")
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: s.Certificate().Raw})
	if err := os.WriteFile(path, pemBytes, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// waitFor waits until every id has arrived.
func (s *eventSink) waitFor(t *testing.T, ids []string) {
	t.Helper()
	deadline := time.After(waitLimit)
	for {
		s.mu.Lock()
		missing := 0
		for _, id := range ids {
			if s.ids[id] == 0 {
				missing++
			}
		}
		changed := s.changed
		s.mu.Unlock()
		if missing == 0 {
			return
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("%d of %d acknowledged events never arrived within %v", missing, len(ids), waitLimit)
		}
	}
}

type webhook struct {
	EndpointID string `json:"endpointId"`
	Secret     string `json:"secret"`
}

type ingestAnswer struct {
	Notifications []struct {
		ID string `json:"id"`
	} `json:"notifications"`
}

// TestKilledDuringBurstLosesNothing kills a real herald serve with SIGKILL
// while changes pour in, restarts it on the same data directory, and
// checks that every change it acknowledged before the kill is delivered.
func TestKilledDuringBurstLosesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	sink := newEventSink(t)
	data := t.TempDir()
	args := []string{"--data", data, "--allow-private-egress", "--egress-ca", sink.certFile(t),
		"--batch-linger", "20ms", "--retry-interval", "200ms", "--retry-window", "1m"}
	first := startServe(t, args...)
	keyRaw, err := os.ReadFile(filepath.Join(data, "admin.key"))
	if err != nil {
		t.Fatalf("admin key file: %v", err)
	}
	key := strings.TrimSpace(string(keyRaw))
	if strings.Contains(first.logs.String(), key) {
		t.Fatal("the admin key appears in the log")
	}
	base := "http://" + first.addr
	var hook webhook
	if status, err := call(key, "POST", base+"/api/v2/tailnet/example.com/webhooks", map[string]any{
		"endpointUrl": sink.URL + "/hook", "providerType": "", "subscriptions": []string{"categoryTailnetManagement"},
	}, &hook); err != nil || status != 200 {
		t.Fatalf("create endpoint: status %d, err %v", status, err)
	}
	// The receiver is down while the first process runs, so every event
	// is still pending (in the log only) when the process dies.
	sink.mu.Lock()
	sink.secret, sink.failing = hook.Secret, true
	sink.mu.Unlock()

	// Writers ingest changes until the process dies; the kill comes once
	// enough have been acknowledged, while requests are still in flight.
	const writers, killAfter = 8, 150
	var (
		mu    sync.Mutex
		acked []string
		wg    sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				var ans ingestAnswer
				status, err := call(key, "POST", base+"/api/v2/tailnet/example.com/changes", map[string]any{
					"kind": "nodeAdded", "actor": "mira@example.com",
					"node": map[string]any{"id": fmt.Sprintf("n%d-%d", w, i), "name": fmt.Sprintf("node-%d-%d.example.ts.net", w, i)},
				}, &ans)
				if err != nil {
					return // the process is gone
				}
				if status != 200 {
					t.Errorf("ingest: status %d", status)
					return
				}
				mu.Lock()
				for _, n := range ans.Notifications {
					acked = append(acked, n.ID)
				}
				if len(acked) >= killAfter {
					once.Do(func() { close(enough) })
				}
				mu.Unlock()
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(waitLimit):
		t.Fatalf("fewer than %d changes acknowledged within %v", killAfter, waitLimit)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	first.done <- nil
	wg.Wait()
	mu.Lock()
	ids := append([]string(nil), acked...)
	mu.Unlock()

	sink.mu.Lock()
	if len(sink.ids) != 0 {
		t.Errorf("%d events delivered while the receiver was failing", len(sink.ids))
	}
	sink.failing = false
	sink.mu.Unlock()

	second := startServe(t, args...)
	sink.waitFor(t, ids)
	if sink.bad != 0 {
		t.Errorf("%d deliveries failed signature verification", sink.bad)
	}

	// A clean stop on SIGTERM exits 0.
	if err := second.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-second.done:
		second.done <- nil
		if err != nil {
			t.Errorf("herald serve after SIGTERM: %v\n%s", err, second.logs.String())
		}
	case <-time.After(waitLimit):
		t.Fatal("herald serve did not stop within the limit after SIGTERM")
	}
	t.Logf("%d changes acknowledged before SIGKILL, all delivered after restart", len(ids))
}
