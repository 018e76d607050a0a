package eventlog

import (
	"context"
	"errors"
	"fmt"
)

// Position is a record's place in the global commit order. Positions are
// strictly increasing but need not be dense. Start is the position before
// the first record.
type Position uint64

// Start is the position before every record: reading after it reads all.
const Start Position = 0

// ExpectedVersion is the condition an append puts on its stream's current
// version: Any, NoStream, or the exact version of the stream's last record
// (Exact(v)).
type ExpectedVersion int64

const (
	// Any appends whatever the stream's state.
	Any ExpectedVersion = -2
	// NoStream appends only if the stream has no records yet.
	NoStream ExpectedVersion = -1
)

// Exact expects the stream's last record to have version v.
func Exact(v uint64) ExpectedVersion { return ExpectedVersion(v) }

func (e ExpectedVersion) String() string {
	switch {
	case e == Any:
		return "any"
	case e == NoStream:
		return "no stream"
	case e >= 0:
		return fmt.Sprintf("version %d", int64(e))
	default:
		return fmt.Sprintf("invalid expected version %d", int64(e))
	}
}

// Event is what a caller appends: a type name and an opaque payload
// (Herald's payloads are JSON with a "type" and a schema version).
type Event struct {
	Type string
	Data []byte
}

// Record is an event as stored: where it sits in its stream and in the
// global order.
type Record struct {
	Stream   string
	Version  uint64   // 0-based, dense within the stream
	Position Position // global commit order
	Type     string
	Data     []byte
}

// AppendResult says where the last appended record landed.
type AppendResult struct {
	Version  uint64   // version of the last record appended
	Position Position // global position of the last record appended
}

// Log is the append-only event log.
type Log interface {
	// Append atomically appends events to stream if the stream's current
	// version matches expected, and returns only once they are durable.
	// A mismatch returns a *WrongVersionError and writes nothing.
	// Appending no events is an error.
	Append(ctx context.Context, stream string, expected ExpectedVersion, events ...Event) (AppendResult, error)

	// ReadStream returns up to limit records of stream with version >= from,
	// in version order (limit <= 0: all). A stream with no records reads as
	// empty, not as an error.
	ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]Record, error)

	// ReadAll returns up to limit records with position > after, in
	// position order (limit <= 0: all).
	ReadAll(ctx context.Context, after Position, limit int) ([]Record, error)

	// Subscribe delivers every record with position > after, first those
	// already written (catch-up), then new ones as they are committed
	// (live), with no gap and no duplicate at the switch.
	Subscribe(ctx context.Context, after Position) (Subscription, error)

	// Close releases the log. Calls after Close return ErrClosed, and
	// open subscriptions end with ErrClosed.
	Close() error
}

// Subscription is a stream of records in position order.
type Subscription interface {
	// Next blocks until the next record is available, ctx is done, or the
	// subscription or log is closed (ErrClosed).
	Next(ctx context.Context) (Record, error)
	// Close ends the subscription; a blocked Next returns ErrClosed.
	Close() error
}

var (
	// ErrClosed is returned by calls on a closed log or subscription.
	ErrClosed = errors.New("eventlog: closed")
	// ErrUnavailable marks failures that may pass: disk full, read-only
	// storage, a lost connection. Callers answer "try again later" (HTTP
	// 503) and keep running. Backends wrap it: errors.Is(err, ErrUnavailable).
	ErrUnavailable = errors.New("eventlog: unavailable")
	// ErrInvalid marks bad arguments: an empty stream name, no events,
	// an invalid expected version.
	ErrInvalid = errors.New("eventlog: invalid argument")
)

// WrongVersionError is returned by Append when the stream's current
// version is not the expected one. Actual is -1 when the stream has no
// records.
type WrongVersionError struct {
	Stream   string
	Expected ExpectedVersion
	Actual   int64
}

func (e *WrongVersionError) Error() string {
	actual := "no stream"
	if e.Actual >= 0 {
		actual = fmt.Sprintf("version %d", e.Actual)
	}
	return fmt.Sprintf("eventlog: stream %q: expected %v, found %s", e.Stream, e.Expected, actual)
}

// CheckAppend validates Append's arguments the same way for every backend.
func CheckAppend(stream string, expected ExpectedVersion, events []Event) error {
	if stream == "" {
		return fmt.Errorf("%w: empty stream name", ErrInvalid)
	}
	if len(events) == 0 {
		return fmt.Errorf("%w: append to %q with no events", ErrInvalid, stream)
	}
	if expected < Any {
		return fmt.Errorf("%w: %v", ErrInvalid, expected)
	}
	for i, e := range events {
		if e.Type == "" {
			return fmt.Errorf("%w: event %d for %q has no type", ErrInvalid, i, stream)
		}
	}
	return nil
}

// VersionMatches reports whether a stream whose last version is current
// (-1: no records) satisfies expected.
func VersionMatches(expected ExpectedVersion, current int64) bool {
	switch {
	case expected == Any:
		return true
	case expected == NoStream:
		return current < 0
	default:
		return int64(expected) == current
	}
}

// ForEachInStream calls fn for every record of stream with version >=
// from, in version order, reading page records at a time so that a long
// stream is never held in memory whole. It stops at fn's first error.
func ForEachInStream(ctx context.Context, log Log, stream string, from uint64, page int, fn func(Record) error) error {
	for {
		recs, err := log.ReadStream(ctx, stream, from, page)
		if err != nil {
			return err
		}
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(recs) < page {
			return nil
		}
		from = recs[len(recs)-1].Version + 1
	}
}
