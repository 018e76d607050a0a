package endpoint

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

func TestRecordRoundTrip(t *testing.T) {
	// Bytes a JSON re-encoding would change: HTML characters, spacing,
	// key order, escapes.
	raw := []byte("{\"b\": 1,  \"a\":\"<&>\\u00e9 \u2028\"}")
	tests := []struct {
		name string
		typ  string
		rec  any
	}{
		{"queued", TypeQueued, &QueuedRecord{Type: TypeQueued, V: SchemaVersion, Event: "ev1", TailnetVersion: 42, QueuedAt: t0, Payload: raw}},
		{"attempt", TypeAttempt, &AttemptRecord{
			Type: TypeAttempt, V: SchemaVersion, ID: "at_1", Events: []string{"ev1", "ev2"},
			Started: t0, Finished: t0.Add(time.Second), StatusCode: 503, ErrorClass: "status", Error: "answered 503",
			ResponseBytes: 12, BodyBytes: 345,
			Outcomes: []EventOutcome{{Result: ResultRetry, NextDue: t0.Add(time.Hour), Events: []string{"ev1"}}, {Result: ResultAbandoned, Reason: ReasonWindowExhausted, Events: []string{"ev2"}}},
		}},
		{"abandoned", TypeAbandoned, &AbandonedRecord{Type: TypeAbandoned, V: SchemaVersion, Events: []string{"ev3"}, At: t0, Reason: ReasonWindowClosed}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev, err := encodeRecord(tc.typ, tc.rec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeRecord(eventlog.Record{Stream: "endpoint-x", Type: ev.Type, Data: ev.Data})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.rec) {
				t.Fatalf("got %+v, want %+v", got, tc.rec)
			}
			if !bytes.Contains(ev.Data, []byte(`"type":"`+tc.typ+`"`)) || !bytes.Contains(ev.Data, []byte(`"v":1`)) {
				t.Fatalf("record %s lacks its type or schema version", ev.Data)
			}
		})
	}
	t.Run("payload bytes are kept exactly", func(t *testing.T) {
		ev, _ := encodeRecord(TypeQueued, &QueuedRecord{Type: TypeQueued, V: 1, Payload: raw})
		got, _ := DecodeRecord(eventlog.Record{Type: TypeQueued, Data: ev.Data})
		if p := got.(*QueuedRecord).Payload; !bytes.Equal(p, raw) {
			t.Fatalf("payload %q, want %q", p, raw)
		}
	})
}

func TestDecodeRecordForwardCompatible(t *testing.T) {
	tests := []struct {
		name string
		typ  string
		data string
		want any
	}{
		{"unknown fields are ignored", TypeAbandoned,
			`{"type":"abandoned","v":2,"events":["e"],"at":"2026-12-03T18:00:00Z","reason":"r","operator":"x","extra":{"a":[1]}}`,
			&AbandonedRecord{Type: TypeAbandoned, V: 2, Events: []string{"e"}, At: t0, Reason: "r"}},
		{"unknown types decode to nil", "paused", `{"type":"paused","v":1}`, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := DecodeRecord(eventlog.Record{Type: tc.typ, Data: []byte(tc.data)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %#v, want %#v", got, tc.want)
			}
		})
	}
	if _, err := DecodeRecord(eventlog.Record{Type: TypeQueued, Data: []byte(`{"type":`)}); err == nil {
		t.Fatal("a truncated record decoded without an error")
	}
}

func TestOutcomeOK(t *testing.T) {
	tests := []struct {
		status int
		want   bool
	}{{200, true}, {204, true}, {299, true}, {199, false}, {301, false}, {302, false}, {404, false}, {500, false}, {0, false}}
	for _, tc := range tests {
		if got := (Outcome{StatusCode: tc.status}).OK(); got != tc.want {
			t.Errorf("Outcome{StatusCode: %d}.OK() = %v, want %v", tc.status, got, tc.want)
		}
	}
	if (Outcome{StatusCode: 200, Err: errBoom}).OK() {
		t.Error("a 200 with an error counts as OK")
	}
}

var errBoom = bytes.ErrTooLarge

func TestScrub(t *testing.T) {
	s := Settings{URL: "https://hooks.example.com/services/T0/B0/s3cr3tT0ken?sig=abc", Secrets: []string{"tskey-webhook-AAAA"}}
	text := `post to hooks.example.com: Post "https://hooks.example.com/services/T0/B0/s3cr3tT0ken?sig=abc": key tskey-webhook-AAAA /services/T0/B0/s3cr3tT0ken sig=abc`
	got := scrub(text, s)
	for _, secret := range []string{"s3cr3tT0ken", "tskey-webhook-AAAA", "sig=abc"} {
		if bytes.Contains([]byte(got), []byte(secret)) {
			t.Fatalf("scrubbed text %q still holds %q", got, secret)
		}
	}
	if !bytes.Contains([]byte(got), []byte("hooks.example.com")) {
		t.Fatalf("scrubbed text %q lost the host", got)
	}
}

func TestDecodeQueuedFastMatchesJSON(t *testing.T) {
	tests := []struct {
		name     string
		data     string
		wantFast bool
	}{
		{"as written", mustJSON(t, &QueuedRecord{Type: TypeQueued, V: 1, Event: "ev_1", TailnetVersion: 7, QueuedAt: t0.Add(123456789), Payload: []byte(`{"id":"ev_1"}`)}), true},
		{"offset time", `{"type":"queued","v":1,"event":"e","tailnetVersion":1,"queuedAt":"2026-12-03T19:00:00.5+01:00","payload":"e30="}`, true},
		{"null payload", `{"type":"queued","v":1,"event":"e","tailnetVersion":1,"queuedAt":"2026-12-03T18:00:00Z","payload":null}`, true},
		{"empty payload", `{"type":"queued","v":1,"event":"e","tailnetVersion":1,"queuedAt":"2026-12-03T18:00:00Z","payload":""}`, true},
		{"escaped id", `{"type":"queued","v":1,"event":"e\u003c1","tailnetVersion":1,"queuedAt":"2026-12-03T18:00:00Z","payload":"e30="}`, false},
		{"unknown field", `{"type":"queued","v":2,"event":"e","tailnetVersion":1,"queuedAt":"2026-12-03T18:00:00Z","payload":"e30=","priority":3}`, false},
		{"other order", `{"v":1,"type":"queued","event":"e","tailnetVersion":1,"queuedAt":"2026-12-03T18:00:00Z","payload":"e30="}`, false},
		{"spaces", `{"type": "queued", "v": 1, "event": "e", "tailnetVersion": 1, "queuedAt": "2026-12-03T18:00:00Z", "payload": "e30="}`, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var slow QueuedRecord
			if err := json.Unmarshal([]byte(tc.data), &slow); err != nil {
				t.Fatal(err)
			}
			var fast QueuedRecord
			if ok := decodeQueuedFast([]byte(tc.data), &fast); ok != tc.wantFast {
				t.Fatalf("fast path taken: %v, want %v", ok, tc.wantFast)
			}
			got, err := DecodeRecord(eventlog.Record{Type: TypeQueued, Data: []byte(tc.data)})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, &slow) {
				t.Fatalf("DecodeRecord gave %+v, encoding/json %+v", got, &slow)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
