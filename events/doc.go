// Package events is Herald's event catalogue and wire format: the
// notification types a tailnet raises, the subscription values and
// categories that select them, the payload of each type, and the bytes of a
// delivery (a JSON array of events, or a chat provider's message).
//
// Wire format of one event (what receivers see; unknown fields must be
// ignored by receivers, so the extra "id" is compatible with Tailscale's):
//
//	{"timestamp":"2026-12-03T18:04:05.123456789Z","version":1,"type":"nodeCreated",
//	 "tailnet":"example.com","message":"Node build-07 created","data":{...},"id":"ev_..."}
//
// An event's bytes are produced once, when the notification is raised, and
// stored in the log; every attempt sends exactly those bytes, so what is
// signed is what is sent.
package events
