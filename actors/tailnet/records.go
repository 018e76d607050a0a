package tailnet

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/herald-webhooks/herald/eventlog"
)

// Record types of the tailnet stream.
const (
	recEndpointCreated       = "endpointCreated"
	recEndpointUpdated       = "endpointUpdated"
	recEndpointSecretRotated = "endpointSecretRotated"
	recEndpointDeleted       = "endpointDeleted"
	recChange                = "change"
	recNotification          = "notification"
)

// schemaVersion is the "v" of every record this code writes.
const schemaVersion = 1

// StreamName is the stream of a tailnet.
func StreamName(tailnetName string) string { return "tailnet-" + tailnetName }

type endpointCreated struct {
	Type          string    `json:"type"`
	V             int       `json:"v"`
	ID            string    `json:"id"`
	URL           string    `json:"url"`
	ProviderType  string    `json:"providerType"`
	Subscriptions []string  `json:"subscriptions"`
	SealedSecret  string    `json:"sealedSecret"`
	Creator       string    `json:"creator"`
	At            time.Time `json:"at"`
}

type endpointUpdated struct {
	Type          string    `json:"type"`
	V             int       `json:"v"`
	ID            string    `json:"id"`
	Subscriptions []string  `json:"subscriptions"`
	Actor         string    `json:"actor"`
	At            time.Time `json:"at"`
}

type endpointSecretRotated struct {
	Type         string    `json:"type"`
	V            int       `json:"v"`
	ID           string    `json:"id"`
	SealedSecret string    `json:"sealedSecret"`
	Actor        string    `json:"actor"`
	At           time.Time `json:"at"`
}

type endpointDeleted struct {
	Type  string    `json:"type"`
	V     int       `json:"v"`
	ID    string    `json:"id"`
	Actor string    `json:"actor"`
	At    time.Time `json:"at"`
}

type changeRecord struct {
	Type   string    `json:"type"`
	V      int       `json:"v"`
	Change Change    `json:"change"`
	At     time.Time `json:"at"`
}

// notificationRecord keeps the event's wire bytes as a JSON string of
// base64, never as embedded JSON: re-encoding would change the bytes
// (escaping, spacing) and the signature must cover exactly what is sent.
type notificationRecord struct {
	Type      string   `json:"type"`
	V         int      `json:"v"`
	EventID   string   `json:"eventId"`
	EventType string   `json:"eventType"`
	Targets   []string `json:"targets"`
	Payload   []byte   `json:"payload"`
}

func encode(typ string, v any) (eventlog.Event, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return eventlog.Event{}, fmt.Errorf("encode %s record: %w", typ, err)
	}
	return eventlog.Event{Type: typ, Data: data}, nil
}

func decode[T any](rec eventlog.Record) (T, error) {
	var v T
	if err := json.Unmarshal(rec.Data, &v); err != nil {
		return v, fmt.Errorf("decode %s record %s@%d: %w", rec.Type, rec.Stream, rec.Version, err)
	}
	return v, nil
}

// DecodeNotification decodes a notification record of a tailnet stream
// into the event it raised: its id, type and target endpoints (the payload
// is not returned). ok is false, with no error, for a record of any other
// type; read models use it to skip the rest of the stream.
func DecodeNotification(rec eventlog.Record) (n Raised, ok bool, err error) {
	if rec.Type != recNotification {
		return Raised{}, false, nil
	}
	r, err := decode[notificationRecord](rec)
	if err != nil {
		return Raised{}, false, err
	}
	if r.Targets == nil {
		r.Targets = []string{}
	}
	return Raised{ID: r.EventID, Type: r.EventType, Endpoints: r.Targets}, true, nil
}
