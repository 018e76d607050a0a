package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// WireVersion is the "version" of every event Herald sends.
const WireVersion = 1

// Data is the type-specific part of an event. Only the fields the type's
// catalogue entry lists are sent.
type Data struct {
	NodeID     string   `json:"nodeID,omitempty"`
	DeviceName string   `json:"deviceName,omitempty"`
	ManagedBy  string   `json:"managedBy,omitempty"`
	Actor      string   `json:"actor,omitempty"`
	URL        string   `json:"url,omitempty"`
	Expiration string   `json:"expiration,omitempty"`
	User       string   `json:"user,omitempty"`
	OldRoles   []string `json:"oldRoles,omitempty"`
	NewRoles   []string `json:"newRoles,omitempty"`
	OldPolicy  *string  `json:"oldPolicy,omitempty"`
	NewPolicy  *string  `json:"newPolicy,omitempty"`
	EndpointID string   `json:"endpointId,omitempty"`
}

// Event is one notification as receivers see it.
type Event struct {
	Timestamp time.Time       `json:"timestamp"`
	Version   int             `json:"version"`
	Type      string          `json:"type"`
	Tailnet   string          `json:"tailnet"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data,omitempty"`
	ID        string          `json:"id"`
}

// New builds the event of eventType raised at ts, and returns its wire
// bytes: the exact bytes every delivery attempt will send.
func New(id, tailnet, eventType string, ts time.Time, d Data) ([]byte, error) {
	ti, ok := byType[eventType]
	if !ok {
		return nil, fmt.Errorf("unknown event type %q", eventType)
	}
	ev := Event{
		Timestamp: ts.UTC(),
		Version:   WireVersion,
		Type:      eventType,
		Tailnet:   tailnet,
		Message:   ti.message(d),
		ID:        id,
	}
	if len(ti.DataKeys) > 0 {
		raw, err := marshalData(d, ti.DataKeys)
		if err != nil {
			return nil, err
		}
		ev.Data = raw
	}
	return marshal(ev)
}

// marshalData encodes d keeping exactly the keys listed, so that an empty
// value the type requires (say, an empty old policy) is still sent.
func marshalData(d Data, keys []string) (json.RawMessage, error) {
	full := map[string]any{
		"nodeID": d.NodeID, "deviceName": d.DeviceName, "managedBy": d.ManagedBy,
		"actor": d.Actor, "url": d.URL, "expiration": d.Expiration, "user": d.User,
		"oldRoles": nonNil(d.OldRoles), "newRoles": nonNil(d.NewRoles),
		"oldPolicy": deref(d.OldPolicy), "newPolicy": deref(d.NewPolicy),
		"endpointId": d.EndpointID,
	}
	kept := make(map[string]any, len(keys))
	for _, k := range keys {
		kept[k] = full[k]
	}
	return marshal(kept)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// marshal encodes v compactly without HTML escaping (policy text is full of
// '<' and '&' that receivers should see as written).
func marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimRight(buf.Bytes(), "\n"), nil
}

// Summary is what a chat provider message needs of one event.
type Summary struct {
	Type    string `json:"type"`
	Message string `json:"message"`
	Tailnet string `json:"tailnet"`
	URL     string `json:"-"`
}

// Summarize reads back the parts of an event's wire bytes that chat
// messages show.
func Summarize(payload []byte) (Summary, error) {
	var ev struct {
		Summary
		Data struct {
			URL string `json:"url"`
		} `json:"data"`
	}
	if err := json.Unmarshal(payload, &ev); err != nil {
		return Summary{}, fmt.Errorf("decode event: %w", err)
	}
	ev.Summary.URL = ev.Data.URL
	return ev.Summary, nil
}
