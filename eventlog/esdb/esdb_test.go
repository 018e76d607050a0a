package esdb_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"testing"

	esdbclient "github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/eventlog/logtest"
	"github.com/herald-webhooks/herald/internal/esdbserver"
)

// TestConformance runs the eventlog conformance suite against the backend
// on an in-process EventStoreDB, a fresh one for every log.
func TestConformance(t *testing.T) {
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		_, srv := esdbserver.Start(t)
		return openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	})
}

// realServerEnv names the EventStoreDB that TestConformanceRealServer uses.
const realServerEnv = "HERALD_ESDB_URL"

// TestConformanceRealServer runs the suite against a real EventStoreDB,
// each log in a namespace of its own (the server keeps its data).
func TestConformanceRealServer(t *testing.T) {
	url := os.Getenv(realServerEnv)
	if url == "" {
		t.Skipf("set %s to run against a real EventStoreDB, e.g. "+
			"docker run --rm -p 2113:2113 eventstore/eventstore:24.10 --insecure --max-append-size=4194304 "+
			"and %s=esdb://localhost:2113?tls=false (see docs/eventlog.md)", realServerEnv, realServerEnv)
	}
	logtest.Run(t, func(t *testing.T) eventlog.Log {
		l, err := esdb.Open(ctxFor(t), url, esdb.Options{
			Logger:    slog.New(slog.DiscardHandler),
			Namespace: "herald-test-" + randomHex(t) + "-",
		})
		if err != nil {
			t.Fatalf("Open(%s): got error %v, want nil", realServerEnv, err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	})
}

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("random: %v", err)
	}
	return hex.EncodeToString(b)
}

func TestConnectionStrings(t *testing.T) {
	_, srv := esdbserver.Start(t)
	// A port nothing listens on: a dead cluster member.
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadAddr := dead.Addr().String()
	dead.Close()
	cases := []struct {
		name string
		conn string
	}{
		{"SingleHost", "esdb://" + srv.Addr() + "?tls=false"},
		{"SeveralHostsOneDead", "esdb://" + deadAddr + "," + srv.Addr() + "?tls=false&maxDiscoverAttempts=5&discoveryInterval=10"},
		{"Discover", "esdb+discover://" + srv.Addr() + "?tls=false"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			l, err := esdb.Open(ctxFor(t), c.conn, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatalf("Open(%q): got error %v, want nil", c.conn, err)
			}
			defer l.Close()
			stream := "conn-" + c.name
			res := mustAppend(t, l, stream, eventlog.NoStream, ev("t", c.name))
			recs := mustReadStream(t, l, stream)
			if len(recs) != 1 || recs[0].Position != res.Position || string(recs[0].Data) != c.name {
				t.Fatalf("read back: got %v, want one record %q at %d", recs, c.name, res.Position)
			}
		})
	}
}

func TestOpenRejectsBadConnectionString(t *testing.T) {
	const secret = "hunter2-secret"
	cases := []struct {
		name string
		conn string
	}{
		{"Scheme", "http://admin:" + secret + "@localhost:2113"},
		{"Unparsable", "esdb://admin:" + secret + "@local host:2113\x7f"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := esdb.Open(ctxFor(t), c.conn, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
			if !errors.Is(err, eventlog.ErrInvalid) {
				t.Fatalf("Open(%q): got error %v, want ErrInvalid", c.name, err)
			}
			if strings.Contains(err.Error(), secret) {
				t.Fatalf("Open error %q: got the password in the message, want it left out", err)
			}
		})
	}
}

func TestSystemEventsAreSkipped(t *testing.T) {
	conn, srv := esdbserver.Start(t)
	l := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	raw := rawClient(t, conn)
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	first := mustAppend(t, l, "tailnet-a", eventlog.NoStream, ev("created", "1"))
	// What EventStoreDB writes itself: system streams, system event types
	// (here in a user stream), metadata.
	for _, w := range []struct{ stream, typ string }{
		{"$users", "$user-created"},
		{"tailnet-a", "$metadata-ish"},
		{"$$tailnet-a", "$metadata"},
	} {
		if _, err := raw.AppendToStream(ctxFor(t), w.stream, esdbclient.AppendToStreamOptions{}, esdbclient.EventData{
			EventID: uuid.New(), EventType: w.typ, ContentType: esdbclient.ContentTypeJson, Data: []byte(`{}`),
		}); err != nil {
			t.Fatalf("raw append to %q: %v", w.stream, err)
		}
	}
	last := mustAppend(t, l, "tailnet-b", eventlog.NoStream, ev("created", "2"))

	all := mustReadAll(t, l, eventlog.Start)
	if len(all) != 2 || all[0].Position != first.Position || all[1].Position != last.Position {
		t.Fatalf("ReadAll: got %v, want the two non-system records", all)
	}
	got := next(t, sub, 2)
	if got[0].Position != first.Position || got[1].Position != last.Position {
		t.Fatalf("Subscribe: got %v, want the two non-system records", got)
	}

	cases := []struct {
		name   string
		stream string
		typ    string
	}{
		{"SystemStream", "$users", "t"},
		{"SystemType", "tailnet-a", "$user-created"},
		{"Metastream", "$$tailnet-a", "t"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := l.Append(ctxFor(t), c.stream, eventlog.Any, ev(c.typ, "x"))
			if !errors.Is(err, eventlog.ErrInvalid) {
				t.Fatalf("Append(%q, type %q): got %v, want ErrInvalid", c.stream, c.typ, err)
			}
		})
	}
}

func TestNamespacesAreSeparate(t *testing.T) {
	_, srv := esdbserver.Start(t)
	a := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler), Namespace: "a-"})
	b := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler), Namespace: "b-"})
	subB, err := b.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer subB.Close()

	mustAppend(t, a, "tailnet-x", eventlog.NoStream, ev("t", "a"))
	resB := mustAppend(t, b, "tailnet-x", eventlog.NoStream, ev("t", "b"))
	mustAppend(t, a, "tailnet-x", eventlog.Exact(0), ev("t", "a2"))

	if got := mustReadStream(t, b, "tailnet-x"); len(got) != 1 || string(got[0].Data) != "b" || got[0].Stream != "tailnet-x" {
		t.Fatalf("namespace b ReadStream: got %v, want its one record, named without the namespace", got)
	}
	if got := mustReadAll(t, a, eventlog.Start); len(got) != 2 || got[0].Stream != "tailnet-x" || string(got[1].Data) != "a2" {
		t.Fatalf("namespace a ReadAll: got %v, want its two records", got)
	}
	if got := next(t, subB, 1)[0]; got.Position != resB.Position || got.Stream != "tailnet-x" {
		t.Fatalf("namespace b Subscribe: got %+v, want its record at %d", got, resB.Position)
	}
	// The next record b's subscription sees is b's, not a's.
	resB2 := mustAppend(t, b, "tailnet-x", eventlog.Exact(0), ev("t", "b2"))
	if got := next(t, subB, 1)[0]; got.Position != resB2.Position {
		t.Fatalf("namespace b Subscribe: got %+v, want its record at %d", got, resB2.Position)
	}
}

// TestBytesReadBackExactly appends payloads that a JSON or text round trip
// would change, and reads them back through every read path.
func TestBytesReadBackExactly(t *testing.T) {
	_, srv := esdbserver.Start(t)
	l := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	payloads := []struct {
		name string
		data []byte
	}{
		{"JSONWithOddSpacing", []byte("{ \"b\":1,\n\t\"a\" : [1 ,2], \"s\":\"\\u00e9\\/\" }  ")},
		{"NotUTF8", []byte{0xff, 0xfe, 0x00, 0x80, '{'}},
		{"Empty", nil},
		{"Zeros", make([]byte, 1000)},
	}
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	for _, p := range payloads {
		mustAppend(t, l, "bytes", eventlog.Any, eventlog.Event{Type: p.name, Data: p.data})
	}
	streamRecs := mustReadStream(t, l, "bytes")
	allRecs := mustReadAll(t, l, eventlog.Start)
	subRecs := next(t, sub, len(payloads))
	for i, p := range payloads {
		for path, recs := range map[string][]eventlog.Record{"ReadStream": streamRecs, "ReadAll": allRecs, "Subscribe": subRecs} {
			if len(recs) != len(payloads) || recs[i].Type != p.name || !bytes.Equal(recs[i].Data, p.data) {
				t.Fatalf("%s %s: got %+v, want data %q", path, p.name, recs[i], p.data)
			}
		}
	}
}

// TestWrongVersionActual checks that Actual comes from the server's answer.
func TestWrongVersionActual(t *testing.T) {
	_, srv := esdbserver.Start(t)
	l := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "0"), ev("t", "1"), ev("t", "2"))
	cases := []struct {
		name     string
		stream   string
		expected eventlog.ExpectedVersion
		actual   int64
	}{
		{"NoStreamOnExisting", "s", eventlog.NoStream, 2},
		{"ExactTooLow", "s", eventlog.Exact(1), 2},
		{"ExactTooHigh", "s", eventlog.Exact(9), 2},
		{"ExactOnMissing", "missing", eventlog.Exact(0), -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := l.Append(ctxFor(t), c.stream, c.expected, ev("t", "x"))
			var wrong *eventlog.WrongVersionError
			if !errors.As(err, &wrong) {
				t.Fatalf("got error %v, want *eventlog.WrongVersionError", err)
			}
			if wrong.Actual != c.actual || wrong.Stream != c.stream || wrong.Expected != c.expected {
				t.Fatalf("got %+v, want stream %q expected %v actual %d", *wrong, c.stream, c.expected, c.actual)
			}
		})
	}
}

func TestCloseEndsSubscriptionsAndCalls(t *testing.T) {
	_, srv := esdbserver.Start(t)
	l := openOn(t, srv, esdb.Options{Logger: slog.New(slog.DiscardHandler)})
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.WaitSubscriptions(ctxFor(t), 1); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := sub.Next(context.Background())
		done <- err
	}()
	if err := l.Close(); err != nil {
		t.Fatalf("Close: got %v, want nil", err)
	}
	if err := <-done; !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Next blocked across Close: got %v, want ErrClosed", err)
	}
	if _, err := l.Append(ctxFor(t), "s", eventlog.Any, ev("t", "x")); !errors.Is(err, eventlog.ErrClosed) {
		t.Fatalf("Append after Close: got %v, want ErrClosed", err)
	}
	// The server sees the subscription go away.
	if err := srv.WaitSubscriptions(ctxFor(t), 0); err != nil {
		t.Fatalf("server subscriptions after Close: %v", err)
	}
}

func TestRefusedAppendIsInvalid(t *testing.T) {
	_, srv := esdbserver.Start(t)
	rec := newRecorder()
	l := openOn(t, srv, fastOptions(rec.logger()))
	srv.SetMaxAppendSize(100)
	_, err := l.Append(ctxFor(t), "s", eventlog.Any, eventlog.Event{Type: "t", Data: make([]byte, 101)})
	if !errors.Is(err, eventlog.ErrInvalid) {
		t.Fatalf("append over the server's maximum size: got %v, want ErrInvalid", err)
	}
	if n := rec.count(msgRetrying); n != 0 {
		t.Fatalf("retries: got %d, want 0 (the server's answer is final)", n)
	}
	if got := mustReadStream(t, l, "s"); len(got) != 0 {
		t.Fatalf("after a refused append: got %d records, want 0", len(got))
	}
}

// TestPositionBetweenRecords reads and subscribes from a position inside
// a record, which EventStoreDB refuses to start at: the backend starts
// from the beginning instead and skips up to the position.
func TestPositionBetweenRecords(t *testing.T) {
	_, srv := esdbserver.Start(t)
	rec := newRecorder()
	l := openOn(t, srv, fastOptions(rec.logger()))
	for i := range 4 {
		mustAppend(t, l, "s", eventlog.Any, ev("t", fmt.Sprint(i)))
	}
	all := mustReadAll(t, l, eventlog.Start)
	between := all[1].Position + 1

	got := mustReadAll(t, l, between)
	if len(got) != 2 || got[0].Position != all[2].Position {
		t.Fatalf("ReadAll between records: got %v, want the last two records", got)
	}
	sub, err := l.Subscribe(ctxFor(t), between)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if r := next(t, sub, 2); r[0].Position != all[2].Position || r[1].Position != all[3].Position {
		t.Fatalf("Subscribe between records: got %v, want the last two records", r)
	}
	if n := rec.count("esdb: position is not an event's"); n != 2 {
		t.Fatalf("fallbacks logged: got %d, want 2 (ReadAll and Subscribe)", n)
	}
}
