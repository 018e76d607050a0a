package esdb_test

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog/esdb"
)

const (
	// clashPackage is the program that links both gossip.proto files.
	clashPackage = "./eventlog/esdb/internal/clashdemo"
	// clashStarted is what it prints once past package init.
	clashStarted = "clash: started"
	// conflictEnv is the protobuf runtime's switch for the same policy.
	conflictEnv = "GOLANG_PROTOBUF_REGISTRATION_CONFLICT"
	// buildTimeout bounds building the program from a cold cache.
	buildTimeout = 5 * time.Minute
)

// TestGossipProtoClash shows that a binary linking protoactor-go/cluster
// and the EventStoreDB client panics at init, and that
// esdb.ProtoConflictLDFlags (or the environment variable) lets it run.
// Herald's binary does not link cluster; its Makefile builds with the
// flag anyway.
func TestGossipProtoClash(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a program with the go tool; skipped with -short")
	}
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool: %v", err)
	}
	root := moduleRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	dir := t.TempDir()
	build := func(t *testing.T, name string, args ...string) string {
		t.Helper()
		bin := filepath.Join(dir, name)
		cmd := exec.CommandContext(ctx, goTool, append(append([]string{"build", "-tags", "clashdemo", "-o", bin}, args...), clashPackage)...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go build %v: %v\n%s", args, err, out)
		}
		return bin
	}
	plain := build(t, "plain")
	warn := build(t, "warn", "-ldflags", esdb.ProtoConflictLDFlags)

	cases := []struct {
		name      string
		bin       string
		env       []string
		wantPanic bool
	}{
		{"PlainBuildPanics", plain, nil, true},
		{"LDFlagsRun", warn, nil, false},
		{"EnvironmentRuns", plain, []string{conflictEnv + "=warn"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.CommandContext(ctx, c.bin)
			cmd.Env = append(environWithout(conflictEnv), c.env...)
			out, err := cmd.CombinedOutput()
			text := string(out)
			conflict := strings.Contains(text, `file "gossip.proto" is already registered`) &&
				strings.Contains(text, "protoactor-go/cluster")
			if !conflict {
				t.Fatalf("output: got %q, want the gossip.proto registration conflict named", text)
			}
			var exit *exec.ExitError
			if c.wantPanic {
				if !errors.As(err, &exit) || !strings.Contains(text, "panic: proto:") || strings.Contains(text, clashStarted) {
					t.Fatalf("plain build: got error %v and output %q, want a panic at init", err, text)
				}
				return
			}
			if err != nil || !strings.Contains(text, clashStarted) {
				t.Fatalf("got error %v and output %q, want a warning and %q", err, text, clashStarted)
			}
		})
	}
}

// moduleRoot walks up from the working directory to go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("go.mod not found above the working directory")
		}
		dir = parent
	}
}

func environWithout(name string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, name+"=") {
			env = append(env, kv)
		}
	}
	return env
}
