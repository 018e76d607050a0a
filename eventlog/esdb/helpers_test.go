package esdb_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/internal/esdbserver"
)

const (
	// testTimeout bounds each test's waits.
	testTimeout = 20 * time.Second
	// fastDiscovery makes a client give up rediscovery quickly (two tries,
	// 10 ms apart), so that tests reach the replace-the-client path fast.
	fastDiscovery = "&maxDiscoverAttempts=2&discoveryInterval=10"
)

// fastOptions retry quickly and give up after a few seconds.
func fastOptions(logger *slog.Logger) esdb.Options {
	return esdb.Options{
		Logger:         logger,
		Backoff:        esdb.Backoff{Initial: 5 * time.Millisecond, Max: 50 * time.Millisecond, Budget: 10 * time.Second},
		AttemptTimeout: 5 * time.Second,
	}
}

func ctxFor(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	return ctx
}

// openOn opens a log on srv and closes it when the test ends.
func openOn(t *testing.T, srv *esdbserver.Server, opts esdb.Options) *esdb.Log {
	t.Helper()
	l, err := esdb.Open(ctxFor(t), srv.ConnString()+fastDiscovery, opts)
	if err != nil {
		t.Fatalf("Open(%s): got error %v, want nil", srv.ConnString(), err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// rawClient is a plain EventStoreDB client on srv, for writing what the
// backend refuses to (system events) and for looking behind it.
func rawClient(t *testing.T, connString string) *esdbclient.Client {
	t.Helper()
	cfg, err := esdbclient.ParseConnectionString(connString)
	if err != nil {
		t.Fatalf("ParseConnectionString(%q): %v", connString, err)
	}
	cfg.Logger = esdbclient.NoopLogging()
	c, err := esdbclient.NewClient(cfg)
	if err != nil {
		t.Fatalf("NewClient: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func mustAppend(t *testing.T, l eventlog.Log, stream string, expected eventlog.ExpectedVersion, events ...eventlog.Event) eventlog.AppendResult {
	t.Helper()
	res, err := l.Append(ctxFor(t), stream, expected, events...)
	if err != nil {
		t.Fatalf("Append(%q, %v): got error %v, want nil", stream, expected, err)
	}
	return res
}

func mustReadStream(t *testing.T, l eventlog.Log, stream string) []eventlog.Record {
	t.Helper()
	recs, err := l.ReadStream(ctxFor(t), stream, 0, 0)
	if err != nil {
		t.Fatalf("ReadStream(%q): got error %v, want nil", stream, err)
	}
	return recs
}

func mustReadAll(t *testing.T, l eventlog.Log, after eventlog.Position) []eventlog.Record {
	t.Helper()
	recs, err := l.ReadAll(ctxFor(t), after, 0)
	if err != nil {
		t.Fatalf("ReadAll(%d): got error %v, want nil", after, err)
	}
	return recs
}

func next(t *testing.T, sub eventlog.Subscription, n int) []eventlog.Record {
	t.Helper()
	ctx := ctxFor(t)
	var out []eventlog.Record
	for len(out) < n {
		r, err := sub.Next(ctx)
		if err != nil {
			t.Fatalf("Next after %d of %d records: got error %v, want a record", len(out), n, err)
		}
		out = append(out, r)
	}
	return out
}

func ev(typ, data string) eventlog.Event {
	return eventlog.Event{Type: typ, Data: []byte(data)}
}

// recorder is a slog handler that keeps every message, so that tests can
// wait for the backend to say it is retrying or reconnecting.
type recorder struct {
	mu      sync.Mutex
	msgs    []string
	changed chan struct{} // closed and replaced on every record
}

func newRecorder() *recorder { return &recorder{changed: make(chan struct{})} }

func (r *recorder) logger() *slog.Logger { return slog.New(r) }

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *recorder) WithAttrs([]slog.Attr) slog.Handler       { return r }
func (r *recorder) WithGroup(string) slog.Handler            { return r }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	var b strings.Builder
	b.WriteString(rec.Message)
	rec.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	r.msgs = append(r.msgs, b.String())
	close(r.changed)
	r.changed = make(chan struct{})
	return nil
}

// count is how many messages so far start with prefix.
func (r *recorder) count(prefix string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// wait blocks until at least n messages start with prefix.
func (r *recorder) wait(t *testing.T, prefix string, n int) {
	t.Helper()
	ctx := ctxFor(t)
	for {
		r.mu.Lock()
		changed := r.changed
		r.mu.Unlock()
		if r.count(prefix) >= n {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("waiting for %d log messages %q: got %d, want %d", n, prefix, r.count(prefix), n)
		case <-changed:
		}
	}
}
