package cli

import (
	"bytes"
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestVersion(t *testing.T) {
	for _, arg := range []string{"--version", "version"} {
		code, out, _ := run(arg)
		if code != 0 || !strings.HasPrefix(out, "herald ") {
			t.Errorf("herald %s: exit %d, printed %q; want 0 and \"herald <version>\"", arg, code, out)
		}
	}
}

// TestBadInputNamesTheProblem: every bad flag or argument exits 2 with a
// message naming the flag, and starts nothing.
func TestBadInputNamesTheProblem(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no command", nil, "Usage"},
		{"unknown command", []string{"launch"}, `unknown command "launch"`},
		{"unknown flag", []string{"serve", "--colour"}, "flag provided but not defined: -colour"},
		{"stray argument", []string{"serve", "--data", dir, "extra"}, `unexpected argument "extra"`},
		{"listen without port", []string{"serve", "--data", dir, "--listen", "localhost"}, "--listen"},
		{"empty data", []string{"serve", "--data", ""}, "--data"},
		{"zero retry interval", []string{"serve", "--data", dir, "--retry-interval", "0s"}, "--retry-interval 0s"},
		{"negative window", []string{"serve", "--data", dir, "--retry-window", "-1h"}, "--retry-window"},
		{"window too long", []string{"serve", "--data", dir, "--retry-window", "2000h"}, "--retry-window"},
		{"not a duration", []string{"serve", "--data", dir, "--retry-interval", "hourly"}, "retry-interval"},
		{"zero batch events", []string{"serve", "--data", dir, "--batch-max-events", "0"}, "--batch-max-events 0"},
		{"too many batch events", []string{"serve", "--data", dir, "--batch-max-events", "100000"}, "--batch-max-events"},
		{"batch bytes not a size", []string{"serve", "--data", dir, "--batch-max-bytes", "lots"}, "not a size"},
		{"batch bytes too small", []string{"serve", "--data", dir, "--batch-max-bytes", "10"}, "--batch-max-bytes 10"},
		{"batch bytes too large", []string{"serve", "--data", dir, "--batch-max-bytes", "1GiB"}, "--batch-max-bytes"},
		{"negative linger", []string{"serve", "--data", dir, "--batch-linger", "-1ms"}, "--batch-linger"},
		{"attempt timeout too short", []string{"serve", "--data", dir, "--attempt-timeout", "1ms"}, "--attempt-timeout"},
		{"retry interval too long", []string{"serve", "--data", dir, "--retry-interval", "1000000h"}, "--retry-interval"},
		{"console url not a url", []string{"serve", "--data", dir, "--console-url", "not a url"}, "--console-url"},
		{"console url javascript", []string{"serve", "--data", dir, "--console-url", "javascript:alert(1)"}, "--console-url"},
		{"unknown eventlog", []string{"serve", "--data", dir, "--eventlog", "postgres://x"}, "--eventlog"},
		{"bad log level", []string{"serve", "--data", dir, "--log-level", "loud"}, "--log-level"},
		{"receive without secret", []string{"receive"}, "a secret is required"},
		{"receive bad status flag", []string{"receive", "--secret", "s", "--status", "abc"}, "status"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, _, stderr := run(tt.args...)
			if code != 2 {
				t.Errorf("exit %d, want 2 (stderr %q)", code, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q does not name the problem (want %q)", stderr, tt.want)
			}
		})
	}
}

// TestMissingEgressCAFile: a file that cannot be read is a clear error.
func TestMissingEgressCAFile(t *testing.T) {
	code, _, stderr := run("serve", "--data", t.TempDir(), "--egress-ca", "/nonexistent/ca.pem")
	if code != 1 || !strings.Contains(stderr, "--egress-ca") || !strings.Contains(stderr, "/nonexistent/ca.pem") {
		t.Errorf("exit %d stderr %q; want 1 and a message naming --egress-ca and the file", code, stderr)
	}
}

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want int64
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"1MiB", 1 << 20, true}, {"512KiB", 512 << 10, true},
		{"1MB", 1_000_000, true}, {"2 GiB", 2 << 30, true}, {"0", 0, true}, {"100B", 100, true},
		{"", 0, false}, {"-1", 0, false}, {"1.5MiB", 0, false}, {"MiB", 0, false}, {"9999999999GiB", 0, false},
	}
	for _, tt := range tests {
		got, err := parseByteSize(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseByteSize(%q) = %d, %v; want %d, ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

// TestTakenPortStopsBeforeAnythingStarts: the address is bound before the
// log is opened and the actors start delivering.
func TestTakenPortStopsBeforeAnythingStarts(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	data := filepath.Join(t.TempDir(), "data")
	code, _, stderr := run("serve", "--data", data, "--listen", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "--listen") {
		t.Fatalf("exit %d stderr %q; want 1 and a message naming --listen", code, stderr)
	}
	if _, err := os.Stat(data); !os.IsNotExist(err) {
		t.Errorf("the data directory was created (%v); want nothing started", err)
	}
}
