package embedded

import (
	"bytes"
	"context"
	"errors"
	"github.com/herald-webhooks/herald/internal/shared"
	"io"
	"log/slog"
	"testing"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/logtest"
)

// quietLogger discards log output.
func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// capture keeps what was logged, for tests that assert a warning.
type capture struct{ shared.SyncBuffer }

func (c *capture) logger() *slog.Logger {
	return slog.New(slog.NewTextHandler(c, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func openTest(t testing.TB, dir string, opts Options) *Log {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = quietLogger()
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = -1 // tests do not depend on the machine's free space
	}
	l, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", dir, err)
	}
	return l
}

func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		return openTest(t, t.TempDir(), Options{})
	})
}

func TestConformanceSkipVerify(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		return openTest(t, t.TempDir(), Options{SkipVerify: true})
	})
}

func TestReopenKeepsEverything(t *testing.T) {
	for _, skip := range []bool{false, true} {
		t.Run(map[bool]string{false: "Verify", true: "SkipVerify"}[skip], func(t *testing.T) {
			dir := t.TempDir()
			ctx := context.Background()
			l := openTest(t, dir, Options{SkipVerify: skip})
			names := []string{"a", "ab", "a\x00", "a\x00b", "\xff", "tailnet-ü"}
			for i := range 30 {
				if _, err := l.Append(ctx, names[i%len(names)], eventlog.Any, eventlog.Event{Type: "t", Data: []byte{byte(i)}}); err != nil {
					t.Fatal(err)
				}
			}
			want, _ := l.ReadAll(ctx, eventlog.Start, 0)
			if err := l.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
			l = openTest(t, dir, Options{SkipVerify: skip})
			defer l.Close()
			got, err := l.ReadAll(ctx, eventlog.Start, 0)
			if err != nil || len(got) != len(want) {
				t.Fatalf("after reopen: got %d records, %v, want %d", len(got), err, len(want))
			}
			for i := range want {
				if got[i].Position != want[i].Position || got[i].Stream != want[i].Stream || got[i].Version != want[i].Version || !bytes.Equal(got[i].Data, want[i].Data) {
					t.Fatalf("record %d: got %+v, want %+v", i, got[i], want[i])
				}
			}
			// Heads survive: the next append continues each stream.
			for i, n := range names {
				res, err := l.Append(ctx, n, eventlog.Exact(uint64(30/len(names)-1)), eventlog.Event{Type: "t"})
				if err != nil || res.Version != uint64(30/len(names)) || res.Position != eventlog.Position(31+i) {
					t.Fatalf("append to %q after reopen: got %+v, %v, want version %d at %d", n, res, err, 30/len(names), 31+i)
				}
			}
		})
	}
}

func TestRecordSizeLimit(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{MaxRecordBytes: 1 << 20})
	defer l.Close()
	ctx := context.Background()
	ok := make([]byte, 1<<20-len("s")-len("t"))
	if _, err := l.Append(ctx, "s", eventlog.Any, eventlog.Event{Type: "t", Data: ok}); err != nil {
		t.Fatalf("record at the limit: got %v, want nil", err)
	}
	_, err := l.Append(ctx, "s", eventlog.Any, eventlog.Event{Type: "t", Data: append(ok, 0)})
	if !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("record over the limit: got %v, want ErrInvalid", err)
	}
	if want := "record limit"; err == nil || !bytes.Contains([]byte(err.Error()), []byte(want)) {
		t.Fatalf("got message %q, want it to mention %q", err, want)
	}
	if recs, _ := l.ReadStream(ctx, "s", 0, 0); len(recs) != 1 {
		t.Fatalf("got %d records, want 1", len(recs))
	}
}

func TestDefaultRecordLimitAccepts16MiB(t *testing.T) {
	l := openTest(t, t.TempDir(), Options{})
	defer l.Close()
	ctx := context.Background()
	big := bytes.Repeat([]byte("herald"), DefaultMaxRecordBytes/6-2)
	if _, err := l.Append(ctx, "big", eventlog.NoStream, eventlog.Event{Type: "t", Data: big}); err != nil {
		t.Fatalf("%d-byte record: got %v, want nil", len(big), err)
	}
	recs, err := l.ReadStream(ctx, "big", 0, 0)
	if err != nil || len(recs) != 1 || !bytes.Equal(recs[0].Data, big) {
		t.Fatalf("read back: got %d records, %v, want the same %d bytes", len(recs), err, len(big))
	}
	if _, err := l.Append(ctx, "big", eventlog.Any, eventlog.Event{Type: "t", Data: make([]byte, DefaultMaxRecordBytes)}); !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("record over %d bytes: got %v, want ErrInvalid", DefaultMaxRecordBytes, err)
	}
}
