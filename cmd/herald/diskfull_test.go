package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestDiskFullAnswers503AndRecovers fills the real file system under a
// running herald serve: a change answers 503 naming the problem, the
// process keeps running, and once space is back writes continue.
func TestDiskFullAnswers503AndRecovers(t *testing.T) {
	if testing.Short() {
		t.Skip("runs real processes")
	}
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root")
	}
	mnt := t.TempDir()
	if err := unix.Mount("tmpfs", mnt, "tmpfs", 0, "size=160m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, unix.MNT_DETACH) })
	data := filepath.Join(mnt, "data")
	p := startServe(t, "--data", data)
	keyRaw, err := os.ReadFile(filepath.Join(data, "admin.key"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.TrimSpace(string(keyRaw))
	ingest := func(i int) (int, string) {
		req, _ := http.NewRequest("POST", "http://"+p.addr+"/api/v2/tailnet/example.com/changes",
			strings.NewReader(fmt.Sprintf(`{"kind":"nodeAdded","node":{"id":"n%d","name":"node-%d"}}`, i, i)))
		req.SetBasicAuth(key, "")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("ingest %d: %v (is the process still running?)", i, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if status, body := ingest(1); status != 200 {
		t.Fatalf("ingest with space: %d %s", status, body)
	}

	filler := filepath.Join(mnt, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	chunk := make([]byte, 1<<20)
	for {
		if _, err := f.Write(chunk); err != nil {
			if !errors.Is(err, syscall.ENOSPC) {
				t.Fatalf("filling the file system: %v", err)
			}
			break
		}
	}
	f.Close()

	status, body := ingest(2)
	if status != http.StatusServiceUnavailable {
		t.Fatalf("ingest on a full disk: got %d %s, want 503", status, body)
	}
	t.Logf("full disk: %d %s", status, body)
	p.logs.waitFor(t, "free on its file system")

	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if status, body := ingest(3); status != 200 {
		t.Fatalf("ingest after space came back: got %d %s, want 200", status, body)
	}
	select {
	case err := <-p.done:
		p.done <- err
		t.Fatalf("herald serve exited: %v", err)
	default:
	}
}
