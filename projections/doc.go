// Package projections holds Herald's read models: views folded from the
// event log in global order, rebuilt from nothing by replaying it, and kept
// up to date by a subscription. They never write to the log and never
// decide anything; the actors own the streams, the projections only read.
//
// [Deliveries] is the delivery-status and audit view. It reads two kinds
// of stream and skips every other stream and every record type it does not
// know:
//
//	tailnet-<name>   notification: event id, type and target endpoints
//	                 (decoded by tailnet.DecodeNotification)
//	endpoint-<id>    queued, attempt, abandoned (decoded by endpoint.DecodeRecord)
//
// For every event it keeps who it was raised for and, per endpoint, whether
// it was queued, every attempt with its result, and the final outcome; for
// every endpoint, counters that agree with the endpoint actor's own status.
// It keeps no payload bytes. The loop ([Deliveries.Run]) wraps a public
// synchronous step ([Deliveries.Apply]), so tests and one-shot tools (the
// `herald audit` command) can fold records themselves.
package projections
