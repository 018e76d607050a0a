// Package esdb is the EventStoreDB backend of eventlog.Log, for Herald
// deployments that outgrow one machine. It runs on the official client,
// github.com/EventStore/EventStore-Client-Go/v4, and accepts any connection
// string that client accepts (esdb://host:2113?tls=false, several hosts,
// esdb+discover://).
//
// Mapping (docs/eventlog.md has the full table):
//
//   - Stream names map 1:1 (behind Options.Namespace when one is set).
//     Names and event types starting with "$" belong to EventStoreDB and
//     are refused by Append; system streams and system events are skipped
//     by ReadAll and Subscribe.
//   - Versions are stream revisions (0-based). Any, NoStream and Exact(v)
//     map to esdb.Any{}, esdb.NoStream{} and esdb.Revision(v).
//   - A Position is the event's $all commit position. For every event an
//     EventStoreDB append writes, commit and prepare positions are equal
//     (they differ only inside the long-deprecated explicit transactions),
//     so one number names the event, and reads and subscriptions resume
//     from Position{Commit: p, Prepare: p}. Positions are byte offsets:
//     strictly increasing, but sparse.
//   - Every appended event gets a random UUID and the content type
//     application/octet-stream: payloads are opaque bytes and read back
//     byte for byte.
//
// Failures: a lost connection is retried with exponential backoff
// (github.com/cenkalti/backoff/v4), each retry logged. When the client
// closes itself for good after failed rediscovery, a new client replaces
// it. An append whose outcome is unknown is resolved by reading the stream
// back and looking for the event ids it sent; it is sent again (with the
// same ids, which EventStoreDB also deduplicates) only when they are not
// there. Subscriptions resubscribe from the last position they delivered,
// so Next never shows a gap or a duplicate across reconnects. Errors that
// outlast the retry budget wrap eventlog.ErrUnavailable.
package esdb
