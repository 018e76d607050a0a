package esdb

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/google/uuid"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/herald-webhooks/herald/eventlog"
)

// Defaults for Options.
const (
	// DefaultBackoffInitial is the first wait before a retry.
	DefaultBackoffInitial = 50 * time.Millisecond
	// DefaultBackoffMax caps the wait between two retries.
	DefaultBackoffMax = 2 * time.Second
	// DefaultRetryBudget is how long an operation keeps retrying before it
	// fails with eventlog.ErrUnavailable.
	DefaultRetryBudget = 30 * time.Second
	// DefaultAttemptTimeout bounds one attempt of one operation.
	DefaultAttemptTimeout = 15 * time.Second
)

const (
	// readBatch is how many events one read request asks for.
	readBatch = 512
	// readBackWindow is how many of a stream's last events are searched
	// for the ids of an Any append whose outcome was lost.
	readBackWindow = 4096
	// systemPrefix starts the names of EventStoreDB's own streams and
	// event types.
	systemPrefix = "$"
)

// Options configure Open. The zero value is ready to use.
type Options struct {
	// Logger receives the backend's log lines (retries, reconnects) and,
	// at debug and info level, the client library's. Nil: slog.Default().
	Logger *slog.Logger
	// Backoff paces retries after lost connections.
	Backoff Backoff
	// AttemptTimeout bounds one attempt of one operation (default
	// DefaultAttemptTimeout); an attempt that runs out is retried.
	AttemptTimeout time.Duration
	// Namespace, when set, is put in front of every stream name: Append
	// and ReadStream add it, records come back without it, and ReadAll and
	// Subscribe see only the streams under it (a server-side prefix
	// filter). Several Herald installations, or test runs, can then share
	// one EventStoreDB. Empty: every stream except EventStoreDB's own
	// ("$"-prefixed) ones. It must not start with "$".
	Namespace string
}

// Backoff is the exponential backoff between retries.
type Backoff struct {
	// Initial is the first wait (default DefaultBackoffInitial).
	Initial time.Duration
	// Max caps each wait (default DefaultBackoffMax).
	Max time.Duration
	// Budget is the total time an operation keeps retrying; past it the
	// operation fails with eventlog.ErrUnavailable (default
	// DefaultRetryBudget).
	Budget time.Duration
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Backoff.Initial <= 0 {
		o.Backoff.Initial = DefaultBackoffInitial
	}
	if o.Backoff.Max <= 0 {
		o.Backoff.Max = DefaultBackoffMax
	}
	if o.Backoff.Budget <= 0 {
		o.Backoff.Budget = DefaultRetryBudget
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	return o
}

// Log is an eventlog.Log on EventStoreDB. It is safe for concurrent use.
type Log struct {
	cfg  esdb.Configuration // template for each new client
	opts Options
	log  *slog.Logger

	ctx    context.Context // canceled by Close
	cancel context.CancelFunc
	pumps  sync.WaitGroup // subscription goroutines

	mu     sync.Mutex // guards the fields below
	closed bool
	cur    *conn // nil: make one on next use
	gen    uint64
	subs   map[*subscription]struct{}
}

var _ eventlog.Log = (*Log)(nil)

// Open connects to the EventStoreDB that connString names and checks that
// it answers, retrying within the backoff budget and ctx.
func Open(ctx context.Context, connString string, opts Options) (*Log, error) {
	cfg, err := esdb.ParseConnectionString(connString)
	if err != nil {
		// url.Error repeats the whole string, credentials included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("%w: esdb connection string: %v", eventlog.ErrInvalid, err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: esdb configuration: %v", eventlog.ErrInvalid, err)
	}
	opts = opts.withDefaults()
	if strings.HasPrefix(opts.Namespace, systemPrefix) {
		return nil, fmt.Errorf("%w: esdb namespace %q starts with %q", eventlog.ErrInvalid, opts.Namespace, systemPrefix)
	}
	logger := opts.Logger.With("backend", "esdb")
	cfg.Logger = clientLogger(logger)
	l := &Log{cfg: *cfg, opts: opts, log: logger, subs: map[*subscription]struct{}{}}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	err = l.retry(ctx, "connect", func(ctx context.Context) error {
		_, err := unary(l, ctx, func(_ context.Context, c *esdb.Client) (*esdb.ServerVersion, error) {
			return c.GetServerVersion()
		})
		return err
	})
	if err != nil {
		l.Close()
		return nil, err
	}
	return l, nil
}

// clientLogger forwards the client library's log lines to slog. They are
// noisy (every dropped subscription is an "error"), and the backend logs
// what matters itself, so they go out at debug and info level.
func clientLogger(l *slog.Logger) esdb.LoggingFunc {
	l = l.With("component", "esdb-client")
	return func(level esdb.LogLevel, format string, args ...interface{}) {
		lvl := slog.LevelDebug
		if level == esdb.LogWarn || level == esdb.LogError {
			lvl = slog.LevelInfo
		}
		if !l.Enabled(context.Background(), lvl) {
			return
		}
		l.Log(context.Background(), lvl, fmt.Sprintf(format, args...))
	}
}

// Append implements eventlog.Log.
func (l *Log) Append(ctx context.Context, stream string, expected eventlog.ExpectedVersion, events ...eventlog.Event) (eventlog.AppendResult, error) {
	if err := eventlog.CheckAppend(stream, expected, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	if strings.HasPrefix(stream, systemPrefix) {
		return eventlog.AppendResult{}, fmt.Errorf("%w: stream %q: names starting with %q belong to EventStoreDB", eventlog.ErrInvalid, stream, systemPrefix)
	}
	ids := make([]uuid.UUID, len(events))
	data := make([]esdb.EventData, len(events))
	for i, e := range events {
		if strings.HasPrefix(e.Type, systemPrefix) {
			return eventlog.AppendResult{}, fmt.Errorf("%w: event %d for %q: types starting with %q belong to EventStoreDB", eventlog.ErrInvalid, i, stream, systemPrefix)
		}
		ids[i] = uuid.New()
		// A copy: an abandoned attempt (see call) may still be sending it
		// after Append has returned and the caller reuses its buffer.
		data[i] = esdb.EventData{EventID: ids[i], EventType: e.Type, ContentType: esdb.ContentTypeBinary, Data: bytes.Clone(e.Data)}
	}
	if l.isClosed() {
		return eventlog.AppendResult{}, eventlog.ErrClosed
	}
	if err := ctx.Err(); err != nil {
		return eventlog.AppendResult{}, err
	}
	name := l.opts.Namespace + stream
	opts := esdb.AppendToStreamOptions{ExpectedRevision: expectedRevision(expected)}

	var (
		res       eventlog.AppendResult
		uncertain bool // an earlier attempt may have been written
	)
	err := l.retry(ctx, "append to "+strconv.Quote(stream), func(ctx context.Context) error {
		if uncertain {
			found, r, err := l.findAppended(ctx, name, expected, ids)
			if err != nil {
				return err
			}
			if found {
				l.log.Info("esdb: append found written after its answer was lost", "stream", stream, "version", r.Version)
				res = r
				return nil
			}
		}
		wr, err := unary(l, ctx, func(ctx context.Context, c *esdb.Client) (*esdb.WriteResult, error) {
			return c.AppendToStream(ctx, name, opts, data...)
		})
		if err == nil {
			res = eventlog.AppendResult{Version: wr.NextExpectedVersion, Position: eventlog.Position(wr.CommitPosition)}
			return nil
		}
		if isCode(err, esdb.ErrorCodeWrongExpectedVersion) {
			if uncertain {
				found, r, ferr := l.findAppended(ctx, name, expected, ids)
				if ferr != nil {
					return ferr
				}
				if found {
					res = r
					return nil
				}
			}
			return l.wrongVersion(ctx, name, stream, expected, err)
		}
		if transient(err) {
			uncertain = true
		}
		return err
	})
	var wrong *eventlog.WrongVersionError
	if err != nil && uncertain && !errors.As(err, &wrong) {
		// Only a later, successful attempt could have told.
		return eventlog.AppendResult{}, fmt.Errorf("%w (the append may have been written)", err)
	}
	if err != nil {
		return eventlog.AppendResult{}, err
	}
	return res, nil
}

func expectedRevision(e eventlog.ExpectedVersion) esdb.ExpectedRevision {
	switch e {
	case eventlog.Any:
		return esdb.Any{}
	case eventlog.NoStream:
		return esdb.NoStream{}
	default:
		return esdb.Revision(uint64(e))
	}
}

// wrongVersionCurrent finds the current revision in the client's
// wrong-expected-version message, which is the only place the client puts
// what the server answered.
var wrongVersionCurrent = regexp.MustCompile(`but got '([^']*)'`)

// wrongVersion builds the WrongVersionError for a wrong-expected-version
// answer: Actual from the server's answer, or, failing that, read.
func (l *Log) wrongVersion(ctx context.Context, name, stream string, expected eventlog.ExpectedVersion, cause error) error {
	wrong := &eventlog.WrongVersionError{Stream: stream, Expected: expected, Actual: -1}
	if m := wrongVersionCurrent.FindStringSubmatch(cause.Error()); m != nil {
		if m[1] == "no_stream" {
			return wrong
		}
		if v, err := strconv.ParseInt(m[1], 10, 64); err == nil {
			wrong.Actual = v
			return wrong
		}
	}
	evs, err := l.readStreamOnce(ctx, name, esdb.End{}, esdb.Backwards, 1)
	if err != nil {
		return err
	}
	if len(evs) == 1 {
		wrong.Actual = int64(evs[0].Event.EventNumber)
	}
	return wrong
}

// findAppended looks for an append's events (by id) where they would be if
// it had been written, and reports where its last event is.
func (l *Log) findAppended(ctx context.Context, name string, expected eventlog.ExpectedVersion, ids []uuid.UUID) (bool, eventlog.AppendResult, error) {
	if expected >= eventlog.NoStream {
		from := uint64(expected + 1) // NoStream (-1) + 1 = revision 0
		evs, err := l.readStreamOnce(ctx, name, esdb.Revision(from), esdb.Forwards, uint64(len(ids)))
		if err != nil || len(evs) != len(ids) {
			return false, eventlog.AppendResult{}, err
		}
		for i, ev := range evs {
			if ev.Event.EventID != ids[i] {
				return false, eventlog.AppendResult{}, nil
			}
		}
		return true, appendResultOf(evs[len(evs)-1]), nil
	}
	// Any: the events are the newest unless another writer followed.
	last := ids[len(ids)-1]
	var from esdb.StreamPosition = esdb.End{}
	for scanned := 0; scanned < readBackWindow; {
		evs, err := l.readStreamOnce(ctx, name, from, esdb.Backwards, readBatch)
		if err != nil {
			return false, eventlog.AppendResult{}, err
		}
		for _, ev := range evs {
			if ev.Event.EventID == last {
				return true, appendResultOf(ev), nil
			}
		}
		scanned += len(evs)
		if len(evs) < readBatch || evs[len(evs)-1].Event.EventNumber == 0 {
			break
		}
		from = esdb.Revision(evs[len(evs)-1].Event.EventNumber - 1)
	}
	return false, eventlog.AppendResult{}, nil
}

func appendResultOf(ev *esdb.ResolvedEvent) eventlog.AppendResult {
	return eventlog.AppendResult{Version: ev.Event.EventNumber, Position: positionOf(ev.Event)}
}

// positionOf is a recorded event's eventlog position: its commit position
// (equal to its prepare position outside explicit transactions; the larger
// of the two is taken in case a server reports only one).
func positionOf(ev *esdb.RecordedEvent) eventlog.Position {
	return eventlog.Position(max(ev.Position.Commit, ev.Position.Prepare))
}

// ReadStream implements eventlog.Log.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventlog.Record, error) {
	if l.isClosed() {
		return nil, eventlog.ErrClosed
	}
	if stream == "" {
		return nil, nil
	}
	name := l.opts.Namespace + stream
	var out []eventlog.Record
	next := from
	for limit <= 0 || len(out) < limit {
		want := readBatch
		if limit > 0 {
			want = min(want, limit-len(out))
		}
		var evs []*esdb.ResolvedEvent
		err := l.retry(ctx, "read stream "+strconv.Quote(stream), func(ctx context.Context) error {
			var err error
			evs, err = l.readStreamOnce(ctx, name, esdb.Revision(next), esdb.Forwards, uint64(want))
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			out = append(out, l.record(ev.Event))
			next = ev.Event.EventNumber + 1
		}
		if len(evs) < want {
			break
		}
	}
	return out, nil
}

// ReadAll implements eventlog.Log.
func (l *Log) ReadAll(ctx context.Context, after eventlog.Position, limit int) ([]eventlog.Record, error) {
	if l.isClosed() {
		return nil, eventlog.ErrClosed
	}
	var out []eventlog.Record
	last := after
	from := allPosition(after)
	for limit <= 0 || len(out) < limit {
		var evs []*esdb.ResolvedEvent
		err := l.retry(ctx, "read $all", func(ctx context.Context) error {
			var err error
			evs, err = l.readAllOnce(ctx, from, readBatch)
			if err != nil && last == after && invalidPosition(err) {
				// after falls inside a record: start from the beginning
				// and skip up to it.
				l.log.Warn("esdb: position is not an event's; reading $all from the start", "after", uint64(after))
				from = esdb.Start{}
				evs, err = l.readAllOnce(ctx, from, readBatch)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, ev := range evs {
			// $all reads include the event at their start position.
			p := positionOf(ev.Event)
			if p <= last {
				continue
			}
			last = p
			if l.visible(ev.Event) {
				out = append(out, l.record(ev.Event))
				if limit > 0 && len(out) == limit {
					break
				}
			}
		}
		if len(evs) < readBatch {
			break
		}
		from = allPosition(last)
	}
	return out, nil
}

// invalidPosition reports whether err is EventStoreDB refusing to read
// $all from a position that is not an event's.
func invalidPosition(err error) bool {
	st, ok := status.FromError(err)
	return ok && st.Code() == codes.InvalidArgument && strings.Contains(strings.ToLower(st.Message()), "invalid position")
}

// allPosition is where a $all read or subscription after p starts.
func allPosition(p eventlog.Position) esdb.AllPosition {
	if p == eventlog.Start {
		return esdb.Start{}
	}
	return esdb.Position{Commit: uint64(p), Prepare: uint64(p)}
}

// visible reports whether a $all event belongs to this log: not one of
// EventStoreDB's own, and under the namespace.
func (l *Log) visible(ev *esdb.RecordedEvent) bool {
	return ev != nil &&
		!strings.HasPrefix(ev.StreamID, systemPrefix) &&
		!strings.HasPrefix(ev.EventType, systemPrefix) &&
		strings.HasPrefix(ev.StreamID, l.opts.Namespace)
}

func (l *Log) record(ev *esdb.RecordedEvent) eventlog.Record {
	var data []byte
	if len(ev.Data) > 0 {
		data = ev.Data
	}
	return eventlog.Record{
		Stream:   strings.TrimPrefix(ev.StreamID, l.opts.Namespace),
		Version:  ev.EventNumber,
		Position: positionOf(ev),
		Type:     ev.EventType,
		Data:     data,
	}
}

// readStreamOnce is one stream read; a missing stream reads as empty.
func (l *Log) readStreamOnce(ctx context.Context, name string, from esdb.StreamPosition, dir esdb.Direction, count uint64) ([]*esdb.ResolvedEvent, error) {
	evs, err := unary(l, ctx, func(ctx context.Context, c *esdb.Client) ([]*esdb.ResolvedEvent, error) {
		rs, err := c.ReadStream(ctx, name, esdb.ReadStreamOptions{Direction: dir, From: from}, count)
		if err != nil {
			return nil, err
		}
		return drain(rs)
	})
	if isCode(err, esdb.ErrorCodeResourceNotFound) {
		return nil, nil
	}
	return evs, err
}

// readAllOnce is one forwards read of $all.
func (l *Log) readAllOnce(ctx context.Context, from esdb.AllPosition, count uint64) ([]*esdb.ResolvedEvent, error) {
	return unary(l, ctx, func(ctx context.Context, c *esdb.Client) ([]*esdb.ResolvedEvent, error) {
		rs, err := c.ReadAll(ctx, esdb.ReadAllOptions{Direction: esdb.Forwards, From: from}, count)
		if err != nil {
			return nil, err
		}
		return drain(rs)
	})
}

func drain(rs *esdb.ReadStream) ([]*esdb.ResolvedEvent, error) {
	defer rs.Close()
	var evs []*esdb.ResolvedEvent
	for {
		ev, err := rs.Recv()
		if errors.Is(err, io.EOF) {
			return evs, nil
		}
		if err != nil {
			return nil, err
		}
		if ev.Event != nil {
			evs = append(evs, ev)
		}
	}
}

// Close implements eventlog.Log: it ends open subscriptions with
// ErrClosed, cancels operations in flight and closes the client.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	subs := make([]*subscription, 0, len(l.subs))
	for s := range l.subs {
		subs = append(subs, s)
	}
	cur := l.cur
	l.mu.Unlock()

	l.cancel()
	for _, s := range subs {
		s.Close()
	}
	l.pumps.Wait()
	if cur != nil {
		l.retire(cur)
	}
	return nil
}

func (l *Log) isClosed() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.closed
}
