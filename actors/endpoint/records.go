package endpoint

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

// SchemaVersion is the "v" of every record this package writes. Readers
// accept any version and ignore fields they do not know; a change that
// would alter the meaning of an existing field gets a new record type.
const SchemaVersion = 1

// Record types of an endpoint stream (also the eventlog.Event.Type).
const (
	TypeQueued    = "queued"
	TypeAttempt   = "attempt"
	TypeAbandoned = "abandoned"
)

// Per-event results of an attempt.
const (
	ResultDelivered = "delivered"
	ResultRetry     = "retry"
	ResultAbandoned = "abandoned"
)

// Reasons an event is abandoned.
const (
	// ReasonWindowExhausted: the attempt in the last slot of the window failed.
	ReasonWindowExhausted = "window exhausted: the last attempt in the retry window failed"
	// ReasonWindowClosed: the window closed before the next attempt could
	// start (the process was down, or the log unavailable, past t0+Window).
	ReasonWindowClosed = "window closed: no attempt could start before the retry window ended"
)

// QueuedRecord says an event was queued for the endpoint.
type QueuedRecord struct {
	Type           string    `json:"type"`
	V              int       `json:"v"`
	Event          string    `json:"event"`
	TailnetVersion uint64    `json:"tailnetVersion"`
	QueuedAt       time.Time `json:"queuedAt"`
	// Payload is the event's exact wire bytes (base64 in JSON, so that no
	// re-encoding can change a byte of what is signed and sent).
	Payload []byte `json:"payload"`
}

// AttemptRecord is one POST and what came of it, for every event it carried.
type AttemptRecord struct {
	Type     string    `json:"type"`
	V        int       `json:"v"`
	ID       string    `json:"attempt"`
	Events   []string  `json:"events"` // in body order
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// StatusCode is the response status, 0 if none was received.
	StatusCode int `json:"status,omitempty"`
	// ErrorClass is the publisher's short error class ("" on success).
	ErrorClass string `json:"errorClass,omitempty"`
	// Error is a short error text: never a secret, the URL's path or the body.
	Error         string         `json:"error,omitempty"`
	ResponseBytes int64          `json:"responseBytes"`
	BodyBytes     int            `json:"bodyBytes"`
	Outcomes      []EventOutcome `json:"outcomes"` // every event of Events in exactly one
}

// OK reports whether the attempt delivered its events.
func (r *AttemptRecord) OK() bool {
	return r.Error == "" && r.ErrorClass == "" && r.StatusCode >= 200 && r.StatusCode <= 299
}

// EventOutcome is what an attempt meant for some of its events: those that
// share a result (and next due time, or reason). Events that fail together
// retry together, so a batch usually has one.
type EventOutcome struct {
	Result string `json:"result"` // ResultDelivered, ResultRetry or ResultAbandoned
	// NextDue is the slot of the next attempt (ResultRetry only).
	NextDue time.Time `json:"nextDue,omitzero"`
	Reason  string    `json:"reason,omitempty"` // ResultAbandoned only
	Events  []string  `json:"events"`
}

// OutcomeOf returns the outcome of one event of the attempt.
func (r *AttemptRecord) OutcomeOf(event string) (EventOutcome, bool) {
	for _, o := range r.Outcomes {
		if slices.Contains(o.Events, event) {
			return o, true
		}
	}
	return EventOutcome{}, false
}

// AbandonedRecord says events were given up without another attempt.
type AbandonedRecord struct {
	Type   string    `json:"type"`
	V      int       `json:"v"`
	Events []string  `json:"events"`
	At     time.Time `json:"at"`
	Reason string    `json:"reason"`
}

func encodeRecord(typ string, v any) (eventlog.Event, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return eventlog.Event{}, fmt.Errorf("encode %s record: %w", typ, err)
	}
	return eventlog.Event{Type: typ, Data: data}, nil
}

// DecodeRecord decodes a record of an endpoint stream into a
// *QueuedRecord, *AttemptRecord or *AbandonedRecord. A record of a type
// this version does not know decodes to nil without an error.
func DecodeRecord(rec eventlog.Record) (any, error) {
	var v any
	switch rec.Type {
	case TypeQueued:
		r := new(QueuedRecord)
		if decodeQueuedFast(rec.Data, r) {
			return r, nil
		}
		*r = QueuedRecord{}
		v = r
	case TypeAttempt:
		v = new(AttemptRecord)
	case TypeAbandoned:
		v = new(AbandonedRecord)
	default:
		return nil, nil
	}
	if err := json.Unmarshal(rec.Data, v); err != nil {
		return nil, fmt.Errorf("decode %s record %d of %s: %w", rec.Type, rec.Version, rec.Stream, err)
	}
	return v, nil
}

// decodeQueuedFast decodes a queued record laid out exactly as
// encoding/json writes a QueuedRecord (fields in order, no escapes in the
// event id), which is what a rebuild reads by the million. Anything else
// (unknown fields, another order, escapes) reports false, and the caller
// decodes with encoding/json.
func decodeQueuedFast(data []byte, r *QueuedRecord) bool {
	p := data
	lit := func(s string) bool {
		if !bytes.HasPrefix(p, []byte(s)) {
			return false
		}
		p = p[len(s):]
		return true
	}
	str := func() ([]byte, bool) { // after the opening quote
		i := bytes.IndexByte(p, '"')
		if i < 0 || bytes.IndexByte(p[:i], '\\') >= 0 {
			return nil, false
		}
		s := p[:i]
		p = p[i+1:]
		return s, true
	}
	num := func() (uint64, bool) {
		i := 0
		for i < len(p) && p[i] >= '0' && p[i] <= '9' {
			i++
		}
		n, err := strconv.ParseUint(string(p[:i]), 10, 64)
		p = p[i:]
		return n, err == nil
	}
	if !lit(`{"type":"queued","v":`) {
		return false
	}
	v, ok := num()
	if !ok || v > 1<<31 || !lit(`,"event":"`) {
		return false
	}
	ev, ok := str()
	if !ok || !lit(`,"tailnetVersion":`) {
		return false
	}
	tv, ok := num()
	if !ok || !lit(`,"queuedAt":"`) {
		return false
	}
	ts, ok := str()
	if !ok || !lit(`,"payload":`) {
		return false
	}
	at, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return false
	}
	var payload []byte
	if !lit("null") {
		if !lit(`"`) {
			return false
		}
		b64, ok := str()
		if !ok {
			return false
		}
		payload = make([]byte, base64.StdEncoding.DecodedLen(len(b64)))
		n, err := base64.StdEncoding.Decode(payload, b64)
		if err != nil {
			return false
		}
		payload = payload[:n]
	}
	if !lit("}") || len(p) != 0 {
		return false
	}
	*r = QueuedRecord{Type: TypeQueued, V: int(v), Event: string(ev), TailnetVersion: tv, QueuedAt: at, Payload: payload}
	return true
}
