package embedded

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/herald-webhooks/herald/eventlog"
)

// closeDeadline bounds Close after an injected storage error.
const closeDeadline = 10 * time.Second

// TestWALWriteErrorMarksBroken injects EIO into the WAL's writes and syncs,
// which Pebble cannot recover from in-process: the append fails with
// ErrUnavailable, later appends fail with ErrUnavailable telling to reopen,
// reads go on, Close returns, and a reopen has every acknowledged record.
func TestWALWriteErrorMarksBroken(t *testing.T) {
	var failing atomic.Bool
	fs := errorfs.Wrap(vfs.Default, errorfs.InjectorFunc(func(op errorfs.Op) error {
		if !failing.Load() || !strings.HasSuffix(op.Path, ".log") {
			return nil
		}
		switch op.Kind {
		case errorfs.OpFileWrite, errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileFlush:
			return fmt.Errorf("injected: %w", syscall.EIO)
		}
		return nil
	}))
	dir := t.TempDir()
	l := openTest(t, dir, Options{FS: fs})
	ctx := context.Background()
	ev := eventlog.Event{Type: "t", Data: []byte("acknowledged")}
	res, err := l.Append(ctx, "s", eventlog.NoStream, ev)
	if err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if _, err := l.Append(ctx, "s", eventlog.Exact(0), eventlog.Event{Type: "t", Data: []byte("failed")}); !errors.Is(err, eventlog.ErrUnavailable) {
		t.Fatalf("Append during EIO: got %v, want ErrUnavailable", err)
	}
	failing.Store(false)
	_, err = l.Append(ctx, "s", eventlog.Any, ev)
	if !errors.Is(err, eventlog.ErrUnavailable) || !strings.Contains(err.Error(), "reopen") {
		t.Fatalf("Append after EIO: got %v, want ErrUnavailable asking for a reopen", err)
	}
	recs, err := l.ReadAll(ctx, eventlog.Start, 0)
	if err != nil || len(recs) != 1 || recs[0].Position != res.Position {
		t.Fatalf("ReadAll after EIO: got %v, %v, want the acknowledged record only", recs, err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-closed:
		t.Logf("Close after EIO: %v", err)
	case <-time.After(closeDeadline):
		t.Fatalf("Close after EIO: still blocked after %v", closeDeadline)
	}
	l = openTest(t, dir, Options{})
	defer l.Close()
	recs, err = l.ReadStream(ctx, "s", 0, 0)
	if err != nil || len(recs) < 1 || string(recs[0].Data) != "acknowledged" {
		t.Fatalf("after reopen: got %v, %v, want the acknowledged record first", recs, err)
	}
	// The failed append's outcome is unknown (its bytes may have reached
	// the WAL); the log is consistent either way, and takes appends.
	if _, err := l.Append(ctx, "s", eventlog.Exact(uint64(len(recs)-1)), ev); err != nil {
		t.Fatalf("Append after reopen: %v", err)
	}
}
