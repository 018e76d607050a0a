// Package eventlog is Herald's append-only log: named streams of records,
// each append checked against the stream's expected version, and one global
// order in which every record appears exactly once, in commit order.
//
// The Log interface is implemented by the embedded backend (eventlog/embedded,
// the default, on Pebble) and by the EventStoreDB backend (eventlog/esdb).
// Both pass the same conformance suite (eventlog/logtest).
//
// Guarantees every backend gives:
//
//   - Append is atomic: all of its events are written, or none.
//   - Append returns only after the records are durable (fsync'd or
//     acknowledged by the cluster). A record that Append acknowledged is
//     never lost, and a record whose Append failed is never half-visible.
//   - Versions within a stream start at 0 and have no gaps.
//   - Positions are global, strictly increasing in commit order, and
//     greater than zero. Start (0) is the position before the first record.
//   - ReadAll and Subscribe deliver every record after the given position,
//     in position order, each exactly once; a subscription switches from
//     catch-up to live without a gap or a duplicate.
package eventlog
