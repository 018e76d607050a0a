package server_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/server"
)

func newAt(dir string) (*server.Server, error) {
	return server.New(context.Background(), server.Config{
		DataDir: dir, Clock: clock.NewFake(t0), Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
}

// seeded returns a data directory that a Herald with one endpoint wrote.
func seeded(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	srv, err := newAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := srv.CreateEndpoint(context.Background(), "example.com", "a", "https://hooks.example.com/", "", nil); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return dir
}

// TestStartRefusesADataDirThatDoesNotAddUp: each way the data directory
// can go wrong is refused at start with an error naming the file, never a
// panic, and nothing is written.
func TestStartRefusesADataDirThatDoesNotAddUp(t *testing.T) {
	tests := []struct {
		name  string
		spoil func(t *testing.T, dir string)
		want  string
	}{
		{"secrets.key readable by others", func(t *testing.T, dir string) {
			os.Chmod(filepath.Join(dir, server.SecretsKeyFile), 0o644)
		}, server.SecretsKeyFile},
		{"secrets.key garbage", func(t *testing.T, dir string) {
			os.WriteFile(filepath.Join(dir, server.SecretsKeyFile), []byte("garbage\n"), 0o600)
		}, server.SecretsKeyFile},
		{"secrets.key missing", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, server.SecretsKeyFile))
		}, "is missing, and the log's endpoint secrets are sealed with data key"},
		{"secrets.key replaced by another key", func(t *testing.T, dir string) {
			os.Remove(filepath.Join(dir, server.SecretsKeyFile))
			other := t.TempDir()
			srv, err := newAt(other)
			if err != nil {
				t.Fatal(err)
			}
			srv.Close()
			raw, _ := os.ReadFile(filepath.Join(other, server.SecretsKeyFile))
			os.WriteFile(filepath.Join(dir, server.SecretsKeyFile), raw, 0o600)
		}, "but the log's endpoint secrets are sealed with data key"},
		{"log deleted", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, server.LogDir))
		}, "the log was deleted or replaced"},
		{"log is a file", func(t *testing.T, dir string) {
			os.RemoveAll(filepath.Join(dir, server.LogDir))
			os.WriteFile(filepath.Join(dir, server.LogDir), []byte("x"), 0o600)
		}, server.LogDir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := seeded(t)
			tt.spoil(t, dir)
			srv, err := newAt(dir)
			if err == nil {
				srv.Close()
				t.Fatalf("start succeeded, want an error containing %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an error containing %q", err, tt.want)
			}
		})
	}
}

func TestDataDirThatIsAFile(t *testing.T) {
	file := filepath.Join(t.TempDir(), "data")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := newAt(file); err == nil || !strings.Contains(err.Error(), file) {
		t.Fatalf("got %v, want an error naming %s", err, file)
	}
}

func TestSecondServerOnTheSameDataDirIsRefused(t *testing.T) {
	dir := t.TempDir()
	first, err := newAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	if second, err := newAt(dir); err == nil {
		second.Close()
		t.Fatal("a second server on the same data directory started")
	}
}

// TestMissingAdminKeyFileGetsANewKey: the old key (only its hash is kept)
// stays valid, and a new one is written for the operator.
func TestMissingAdminKeyFileGetsANewKey(t *testing.T) {
	dir := t.TempDir()
	first, err := newAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	oldKey := first.AdminKey()
	first.Close()
	os.Remove(filepath.Join(dir, server.AdminKeyFile))
	second, err := newAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	raw, err := os.ReadFile(filepath.Join(dir, server.AdminKeyFile))
	if err != nil {
		t.Fatalf("no new admin key file: %v", err)
	}
	newKey := strings.TrimSpace(string(raw))
	if newKey == oldKey || newKey != second.AdminKey() {
		t.Fatalf("admin key file holds %q; want a new key", newKey)
	}
	for _, k := range []string{oldKey, newKey} {
		if p, ok := second.Authenticate(k); !ok || p.Tailnet != "" {
			t.Errorf("admin key %q: authenticated %v as %+v, want an admin", k[:16], ok, p)
		}
	}
}

// TestRefusedCallsLeaveNoTailnet: a tailnet comes into being only with
// its first record; refused calls on a new name register nothing.
func TestRefusedCallsLeaveNoTailnet(t *testing.T) {
	dir := t.TempDir()
	srv, err := newAt(dir)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, _, err := srv.CreateEndpoint(ctx, "refused.example", "a", "http://hooks.example.com/", "", nil); err == nil {
		t.Fatal("http endpoint accepted")
	}
	if _, err := srv.Ingest(ctx, "refused.example", []tailnet.Change{{Kind: "bogus"}}); err == nil {
		t.Fatal("unknown kind accepted")
	}
	if _, err := srv.Ingest(ctx, "Kept.Example", []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: new(string)}}); err != nil {
		t.Fatal(err)
	}
	srv.Close()

	recs, err := readAll(t, dir, "herald-directory")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, r := range recs {
		if strings.Contains(r, "tailnetRegistered") {
			names = append(names, r)
		}
	}
	if len(names) != 1 || !strings.Contains(names[0], `"name":"kept.example"`) {
		t.Fatalf("directory records %v, want only kept.example (canonical, lower case)", names)
	}
}

// readAll reopens a closed data directory's log and returns one stream's
// record payloads.
func readAll(t *testing.T, dir, stream string) ([]string, error) {
	t.Helper()
	srv, err := newAt(dir)
	if err != nil {
		return nil, err
	}
	defer srv.Close()
	recs, err := srv.Log().ReadStream(context.Background(), stream, 0, 0)
	var out []string
	for _, r := range recs {
		out = append(out, string(r.Data))
	}
	return out, err
}

func TestTailnetNamesAreCaseInsensitive(t *testing.T) {
	srv, err := newAt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ctx := context.Background()
	ep, _, err := srv.CreateEndpoint(ctx, "Example.COM", "a", "https://hooks.example.com/", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	list, err := srv.ListEndpoints(ctx, "example.com")
	if err != nil || len(list) != 1 || list[0].ID != ep.ID {
		t.Fatalf("list example.com: %v, %v; want the endpoint made as Example.COM", list, err)
	}
	if tn, _ := srv.EndpointTailnet(ep.ID); tn != "example.com" {
		t.Errorf("endpoint's tailnet %q, want example.com", tn)
	}
	if _, err := srv.ListEndpoints(ctx, "a..b"); err == nil {
		t.Error("listing a tailnet with an invalid name succeeded")
	}
}

func TestEndpointURLIsStoredCanonical(t *testing.T) {
	srv, err := newAt(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	ep, _, err := srv.CreateEndpoint(context.Background(), "example.com", "a", "HTTPS://Hooks.Example.com/in", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if ep.URL != "https://hooks.example.com/in" {
		t.Errorf("stored URL %q, want https://hooks.example.com/in", ep.URL)
	}
}
