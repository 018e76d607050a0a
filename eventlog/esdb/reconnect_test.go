package esdb_test

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/esdb"
	"github.com/herald-webhooks/herald/internal/esdbserver"
)

// Log messages the tests wait for.
const (
	msgRetrying      = "esdb: retrying"
	msgFoundWritten  = "esdb: append found written"
	msgClientClosed  = "esdb: client closed for good"
	msgNewClient     = "esdb: new client"
	msgSubscrDropped = "esdb: subscription dropped"
)

func TestAppendRetriesUnavailable(t *testing.T) {
	_, srv := esdbserver.Start(t)
	rec := newRecorder()
	l := openOn(t, srv, fastOptions(rec.logger()))

	srv.FailNextAppend(esdbserver.FaultUnavailable)
	res := mustAppend(t, l, "s", eventlog.NoStream, ev("t", "once"))

	recs := mustReadStream(t, l, "s")
	if len(recs) != 1 || recs[0].Position != res.Position || res.Version != 0 {
		t.Fatalf("after a retried append: got %v (result %+v), want one record at version 0", recs, res)
	}
	if n := rec.count(msgRetrying); n != 1 {
		t.Fatalf("retries logged: got %d, want 1", n)
	}
}

// TestStalledAppendTimesOut holds an append on the server: the attempt
// times out, the read-back finds nothing, and the append is sent again.
func TestStalledAppendTimesOut(t *testing.T) {
	_, srv := esdbserver.Start(t)
	rec := newRecorder()
	opts := fastOptions(rec.logger())
	opts.AttemptTimeout = 200 * time.Millisecond
	l := openOn(t, srv, opts)

	srv.FailNextAppend(esdbserver.FaultStall)
	res := mustAppend(t, l, "s", eventlog.NoStream, ev("t", "once"))

	if recs := mustReadStream(t, l, "s"); len(recs) != 1 || recs[0].Position != res.Position {
		t.Fatalf("after a stalled append: got %v (result %+v), want one record", recs, res)
	}
	if n := rec.count(msgRetrying); n != 1 {
		t.Fatalf("retries logged: got %d, want 1", n)
	}
}

// TestLostAppendResponseIsNotRepeated commits an append and loses its
// answer: the backend must find it by reading back, not send it again.
func TestLostAppendResponseIsNotRepeated(t *testing.T) {
	cases := []struct {
		name     string
		existing int // records in the stream before
		expected eventlog.ExpectedVersion
	}{
		{"Any", 3, eventlog.Any},
		{"AnyNewStream", 0, eventlog.Any},
		{"NoStream", 0, eventlog.NoStream},
		{"Exact", 2, eventlog.Exact(1)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, srv := esdbserver.Start(t)
			rec := newRecorder()
			l := openOn(t, srv, fastOptions(rec.logger()))
			for i := range c.existing {
				mustAppend(t, l, "s", eventlog.Any, ev("before", fmt.Sprint(i)))
			}
			appendsBefore := srv.Appends()

			srv.FailNextAppend(esdbserver.FaultLoseResponse)
			res := mustAppend(t, l, "s", c.expected, ev("a", "lost-1"), ev("b", "lost-2"))

			if got := srv.Appends() - appendsBefore; got != 1 {
				t.Fatalf("append requests that reached the server: got %d, want 1 (never sent twice)", got)
			}
			recs := mustReadStream(t, l, "s")
			if len(recs) != c.existing+2 {
				t.Fatalf("records: got %d, want %d (one copy of the append)", len(recs), c.existing+2)
			}
			last := recs[len(recs)-1]
			if string(recs[c.existing].Data) != "lost-1" || string(last.Data) != "lost-2" {
				t.Fatalf("records: got %v, want the two appended events last", recs)
			}
			if res.Version != last.Version || res.Position != last.Position {
				t.Fatalf("AppendResult: got %+v, want version %d position %d", res, last.Version, last.Position)
			}
			if n := rec.count(msgFoundWritten); n != 1 {
				t.Fatalf("log %q: got %d, want 1", msgFoundWritten, n)
			}
		})
	}
}

// TestAppendRidesOutServerRestart stops the server under an append: the
// client closes itself for good, the backend makes a new one, and the
// append lands once the server is back.
func TestAppendRidesOutServerRestart(t *testing.T) {
	_, srv := esdbserver.Start(t)
	rec := newRecorder()
	l := openOn(t, srv, fastOptions(rec.logger()))
	mustAppend(t, l, "s", eventlog.NoStream, ev("t", "before"))

	srv.Stop()
	type result struct {
		res eventlog.AppendResult
		err error
	}
	done := make(chan result, 1)
	go func() {
		res, err := l.Append(ctxFor(t), "s", eventlog.Exact(0), ev("t", "during"))
		done <- result{res, err}
	}()
	rec.wait(t, msgClientClosed, 1)
	if err := srv.Restart(); err != nil {
		t.Fatalf("Restart: %v", err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("Append across a restart: got error %v, want nil", r.err)
	}
	recs := mustReadStream(t, l, "s")
	if len(recs) != 2 || string(recs[1].Data) != "during" || r.res.Version != 1 || r.res.Position != recs[1].Position {
		t.Fatalf("after the restart: got %v (result %+v), want [before during] with the result at version 1", recs, r.res)
	}
	if rec.count(msgNewClient) == 0 {
		t.Fatalf("log %q: got none, want a new client after the old one closed", msgNewClient)
	}
}

func TestUnavailablePastBudget(t *testing.T) {
	_, srv := esdbserver.Start(t)
	opts := fastOptions(slog.New(slog.DiscardHandler))
	opts.Backoff.Budget = 300 * time.Millisecond
	l := openOn(t, srv, opts)
	sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	if err := srv.WaitSubscriptions(ctxFor(t), 1); err != nil {
		t.Fatal(err)
	}
	conn := srv.ConnString()
	srv.Stop()

	cases := []struct {
		name string
		call func() error
	}{
		{"Open", func() error {
			l, err := esdb.Open(ctxFor(t), conn+fastDiscovery, opts)
			if err == nil {
				l.Close()
			}
			return err
		}},
		{"Append", func() error {
			_, err := l.Append(ctxFor(t), "s", eventlog.Any, ev("t", "x"))
			return err
		}},
		{"ReadAll", func() error {
			_, err := l.ReadAll(ctxFor(t), eventlog.Start, 0)
			return err
		}},
		{"SubscriptionNext", func() error {
			_, err := sub.Next(ctxFor(t))
			return err
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if err := c.call(); !errors.Is(err, eventlog.ErrUnavailable) {
				t.Fatalf("with the server down: got error %v, want ErrUnavailable", err)
			}
		})
	}
}

// TestSubscriptionResumes breaks a live subscription's connection and
// checks that Next carries on with no gap and no duplicate.
func TestSubscriptionResumes(t *testing.T) {
	cases := []struct {
		name    string
		disrupt func(t *testing.T, srv *esdbserver.Server)
	}{
		{"DroppedConnections", func(t *testing.T, srv *esdbserver.Server) {
			if n := srv.DropConnections(); n == 0 {
				t.Fatal("DropConnections: got 0 connections, want the client's")
			}
		}},
		{"ServerRestart", func(t *testing.T, srv *esdbserver.Server) {
			if err := srv.Restart(); err != nil {
				t.Fatalf("Restart: %v", err)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, srv := esdbserver.Start(t)
			rec := newRecorder()
			l := openOn(t, srv, fastOptions(rec.logger()))
			sub, err := l.Subscribe(ctxFor(t), eventlog.Start)
			if err != nil {
				t.Fatal(err)
			}
			defer sub.Close()
			const batch = 5
			for i := range batch {
				mustAppend(t, l, fmt.Sprintf("s%d", i%2), eventlog.Any, ev("t", fmt.Sprint(i)))
			}
			got := next(t, sub, batch)
			if err := srv.WaitSubscriptions(ctxFor(t), 1); err != nil {
				t.Fatal(err)
			}

			c.disrupt(t, srv)
			for i := batch; i < 2*batch; i++ {
				mustAppend(t, l, fmt.Sprintf("s%d", i%2), eventlog.Any, ev("t", fmt.Sprint(i)))
			}
			got = append(got, next(t, sub, batch)...)
			// A duplicate would arrive before this one.
			late := mustAppend(t, l, "late", eventlog.NoStream, ev("t", "late"))
			if r := next(t, sub, 1)[0]; r.Position != late.Position {
				t.Fatalf("record after the disruption's: got %+v, want the late one at %d", r, late.Position)
			}

			all := mustReadAll(t, l, eventlog.Start)
			if len(all) != 2*batch+1 {
				t.Fatalf("ReadAll: got %d records, want %d", len(all), 2*batch+1)
			}
			for i, r := range got {
				if r.Position != all[i].Position || string(r.Data) != fmt.Sprint(i) {
					t.Fatalf("subscription record %d: got %+v, want %+v", i, r, all[i])
				}
			}
			if rec.count(msgSubscrDropped) == 0 {
				t.Fatalf("log %q: got none, want the drop noticed", msgSubscrDropped)
			}
		})
	}
}
