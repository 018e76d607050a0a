// Package endpoint is the endpoint actor: one Proto.Actor actor per webhook
// endpoint, owning the stream endpoint-<id> in the event log. It queues the
// notifications the tailnet actor sends it, batches the due ones into one
// signed POST at a time, retries failures on the exact schedule
// t0 + k·Interval until t0 + Window, and logs every attempt with its
// outcome. On start it rebuilds its pending set and its one timer from the
// stream, never resetting t0, and catches up from the tailnet stream.
//
// The decisions (what is due when, how batches are cut, what the records
// hold, how a rebuild treats missed slots) are written down in
// docs/delivery.md. The logic lives in [Queue], a plain struct with a public
// synchronous step ([Queue.Step]); the actor wraps it with the log, the
// clock and the publisher.
//
// Records of the stream (JSON, with "type" and schema version "v"; readers
// ignore unknown fields):
//
//	queued     event, tailnetVersion, queuedAt, payload (the exact wire bytes, base64)
//	attempt    attempt, events, started, finished, status, errorClass, error,
//	           responseBytes, bodyBytes, outcomes[{result, nextDue, reason, events}]
//	abandoned  events, at, reason (the window closed before another attempt could start)
package endpoint
