package endpoint

import (
	"encoding/json"
	"fmt"
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
	Outcomes      []EventOutcome `json:"outcomes"`
}

// OK reports whether the attempt delivered its events.
func (r *AttemptRecord) OK() bool {
	return r.Error == "" && r.ErrorClass == "" && r.StatusCode >= 200 && r.StatusCode <= 299
}

// EventOutcome is what an attempt meant for one event.
type EventOutcome struct {
	Event  string `json:"event"`
	Result string `json:"result"` // ResultDelivered, ResultRetry or ResultAbandoned
	// NextDue is the slot of the next attempt (ResultRetry only).
	NextDue time.Time `json:"nextDue,omitzero"`
	Reason  string    `json:"reason,omitempty"` // ResultAbandoned only
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
		v = new(QueuedRecord)
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
