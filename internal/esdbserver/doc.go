// Package esdbserver is an in-process server that speaks EventStoreDB's gRPC
// protocol, built from the generated stubs that ship inside
// EventStore-Client-Go, so that tests exercise the real client library over
// a real loopback gRPC connection without an EventStoreDB installation.
//
// It keeps its log in memory and implements what the Go client calls:
// ServerFeatures/GetSupportedMethods, Streams/Append (expected revisions,
// wrong-expected-version answers, idempotent retries by event id),
// Streams/Read (stream and $all reads in both directions, catch-up-then-live
// subscriptions to a stream or to $all with server-side filters, checkpoints
// and caught-up markers), Streams/Delete (soft delete) and Gossip/Read (so
// that multi-host and esdb+discover:// connection strings work).
//
// Semantics follow EventStoreDB 24.10: stream revisions start at 0; $all
// positions are sparse byte offsets with commit == prepare for every event;
// a $all read forwards from a position includes the event at that position,
// a subscription from a position starts after it; a position inside a
// record is refused, as EventStoreDB refuses it. A fresh server holds a few
// system events (in $-streams, with $-types), as a fresh EventStoreDB does.
//
// Tests break the connection on purpose with DropConnections, Stop and
// Restart (same port, same data), and FailNextAppend, which can refuse the
// next append, stall it, or commit it and then lose its response.
// SetMaxAppendSize imitates EventStoreDB's append size limit.
package esdbserver
