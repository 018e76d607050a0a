package cli

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/internal/esdbserver"
	"github.com/herald-webhooks/herald/internal/shared"
)

var listenAddrRE = regexp.MustCompile(`msg="herald listening" addr=(\S+)`)

// TestServeOnEventStoreDB runs herald serve in-process with its log in an
// EventStoreDB (the in-process server that speaks its protocol), creates
// an endpoint and ingests a change through the API, and stops cleanly.
func TestServeOnEventStoreDB(t *testing.T) {
	conn, _ := esdbserver.Start(t)
	data := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	var stderr shared.SyncBuffer
	done := make(chan int, 1)
	go func() {
		done <- Run(ctx, []string{"serve", "--data", data, "--listen", "127.0.0.1:0", "--eventlog", conn}, io.Discard, &stderr)
	}()
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		if m := listenAddrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("serve exited %d before listening:\n%s", code, stderr.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not listen within 30s:\n%s", stderr.String())
		}
		time.Sleep(5 * time.Millisecond) // polling a condition, bounded by the deadline
	}
	keyRaw, err := os.ReadFile(filepath.Join(data, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyRaw))
	post := func(path, body string) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+addr+path, strings.NewReader(body))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, body := post("/api/v2/tailnet/example.com/webhooks", `{"endpointUrl":"https://hooks.example.com/","subscriptions":["nodeCreated"]}`); status != 200 || !strings.Contains(body, `"secret":"tskey-webhook-`) {
		t.Fatalf("create endpoint: %d %s", status, body)
	}
	if status, body := post("/api/v2/tailnet/example.com/changes", `{"kind":"nodeAdded","node":{"id":"n1","name":"laptop"}}`); status != 200 || !strings.Contains(body, `"type":"nodeCreated"`) {
		t.Fatalf("ingest: %d %s", status, body)
	}
	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("serve exited %d after cancel:\n%s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop within 30s of cancel")
	}
	if strings.Contains(stderr.String(), key) {
		t.Error("the admin key appears in the log")
	}
}
