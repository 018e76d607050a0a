// Package embedded is Herald's default eventlog.Log: a single-node,
// crash-safe log stored in a Pebble database in one directory.
//
// # Key layout
//
// Every key starts with one byte that names its kind:
//
//	'm' "format"                           -> format version (1 byte, 1)
//	'r' position (8 bytes, big-endian)     -> record value
//	's' uvarint(len(stream)) stream version (8 bytes, big-endian)
//	                                       -> position (8 bytes, big-endian)
//
// Records sort in global order; a stream's index entries sort by version
// and, because the name is length-prefixed, never interleave with those of
// a stream whose name it is a prefix of. Stream names are arbitrary bytes.
// A record value is
//
//	format (1 byte, 1) | crc32c (4, big-endian) | uvarint len(stream) |
//	stream | uvarint version | uvarint len(type) | type | data
//
// where the CRC covers the record's position followed by everything after
// the CRC. Positions are dense from 1; one Append's records take
// consecutive positions.
//
// # Writes
//
// One writer goroutine collects concurrent appends into a group, checks
// each against the stream heads it caches (in arrival order, so appends to
// one stream in one group see each other), writes the group as one Pebble
// batch and commits it with one WAL fsync; a completer then advances the
// durable position and answers every waiter. Readers never see past the
// durable position, so nothing is visible before it is fsync'd. A request
// whose expected version fails gets a *eventlog.WrongVersionError and does
// not affect the others in its group.
//
// Pebble treats a failed WAL write or sync as fatal. So before each group
// the writer checks the data file system (one statfs per group): below
// Options.MinFreeBytes free, or
// read-only, the group fails with eventlog.ErrUnavailable naming the
// directory and the free space, and Pebble is never asked to write. Once
// space is back appends succeed again. If Pebble still reports a WAL
// error (EIO), the log refuses all later appends with ErrUnavailable until
// it is reopened; reads go on.
//
// # Recovery
//
// Open first reads the newest WAL with Pebble's reader (see
// docs/eventlog.md for the rules): a corrupt WAL refuses to open with an
// error naming the file and the offset; a damaged tail opens with a
// warning naming them. Then, unless Options.SkipVerify, it scans every
// record and index entry, checking checksums and that positions and
// versions are dense and agree, and refuses to open a damaged log.
package embedded
