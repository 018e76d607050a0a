package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/herald-webhooks/herald/eventlog"
)

// Defaults and limits.
const (
	// DefaultMaxRecordBytes is the largest record (stream name, type and
	// data together) Append accepts unless Options.MaxRecordBytes says
	// otherwise.
	DefaultMaxRecordBytes = 16 << 20
	// MaxAppendBytes is the largest total of one Append's records.
	MaxAppendBytes = 64 << 20
	// DefaultMinFreeBytes is the free space the data file system must keep:
	// below it, appends fail with ErrUnavailable before Pebble could run
	// out of space. It covers a WAL's preallocation and a memtable flush.
	DefaultMinFreeBytes = 64 << 20
	// DefaultMemTableBytes is the Pebble memtable size.
	DefaultMemTableBytes = 16 << 20

	// maxGroupRequests and maxGroupBytes bound one group commit.
	maxGroupRequests = 4096
	maxGroupBytes    = 32 << 20
	// requestQueue is how many appends may wait for the writer.
	requestQueue = 4096
	// inflightGroups is the buffer between the writer and the completer.
	// Unbuffered, at most two groups wait for their fsync at once (one
	// with the completer, one the writer applied and is handing over), and
	// the requests that arrive meanwhile make the next group large. Deeper
	// pipelines made smaller groups and measured slower (docs/performance.md).
	inflightGroups = 0
	// readBatch is how many records a subscription reads at a time.
	readBatch = 512
	// ctxCheckEvery is how many records a read handles between checks of
	// its context.
	ctxCheckEvery = 1024
)

// Options tune a Log. The zero value is a sane default.
type Options struct {
	// Logger receives warnings (damaged WAL tails, low disk space) and
	// Pebble's messages (at debug level). Nil: slog.Default().
	Logger *slog.Logger
	// MaxRecordBytes is the largest record Append accepts (stream name,
	// type and data together); 0 means DefaultMaxRecordBytes.
	MaxRecordBytes int
	// MinFreeBytes is the free space the data file system must keep for
	// appends to proceed; 0 means DefaultMinFreeBytes, negative disables
	// the check.
	MinFreeBytes int64
	// MemTableBytes is Pebble's memtable size; 0 means DefaultMemTableBytes.
	MemTableBytes int
	// SkipVerify skips the full scan at Open that checks every record's
	// checksum and that positions and stream versions are dense. Open is
	// then O(1) instead of O(records); stream heads load lazily.
	SkipVerify bool
	// FS is the file system Pebble uses; nil means the OS's. Tests wrap it
	// to inject faults.
	FS vfs.FS

	// diskProbe replaces the free-space probe in tests.
	diskProbe func(dir string) (diskState, error)
}

// Log is the embedded eventlog.Log on Pebble. It is safe for concurrent use.
type Log struct {
	dir    string
	opts   Options
	logger *slog.Logger
	db     *pebble.DB

	// Append hands requests to the writer through reqs. sendMu guards the
	// channel against Close: senders hold it shared, Close exclusively.
	sendMu  sync.RWMutex
	sending bool // false once Close started
	reqs    chan *appendRequest

	writerDone chan struct{}
	// durable is the highest position whose group is fsync'd; readers
	// never see past it.
	durable atomic.Uint64
	// broken is set when Pebble reported a WAL write or sync error, after
	// which the DB cannot take writes until the process reopens it.
	broken atomic.Pointer[error]

	// mu guards changed and closed.
	mu      sync.Mutex
	changed chan struct{} // closed and replaced whenever durable advances
	closed  bool

	// dbMu keeps the DB open while a read uses it.
	dbMu     sync.RWMutex
	dbClosed bool

	closeOnce sync.Once

	// Owned by the writer goroutine.
	heads   map[string]int64 // stream -> last version (-1: none)
	lastPos eventlog.Position
	space   spaceState
}

var _ eventlog.Log = (*Log)(nil)

// Open opens or creates the log in dir.
func Open(dir string, opts Options) (*Log, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxRecordBytes <= 0 {
		opts.MaxRecordBytes = DefaultMaxRecordBytes
	}
	if opts.MinFreeBytes == 0 {
		opts.MinFreeBytes = DefaultMinFreeBytes
	}
	if opts.MemTableBytes <= 0 {
		opts.MemTableBytes = DefaultMemTableBytes
	}
	fs := opts.FS
	if fs == nil {
		fs = vfs.Default
	}
	if opts.diskProbe == nil {
		if opts.FS == nil {
			opts.diskProbe = statDisk
		} else {
			opts.diskProbe = func(dir string) (diskState, error) {
				u, err := fs.GetDiskUsage(dir)
				return diskState{avail: u.AvailBytes}, err
			}
		}
	}
	logger := opts.Logger.With("eventlog", dir)
	l := &Log{
		dir:        dir,
		opts:       opts,
		logger:     logger,
		reqs:       make(chan *appendRequest, requestQueue),
		sending:    true,
		writerDone: make(chan struct{}),
		changed:    make(chan struct{}),
		heads:      map[string]int64{},
	}
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return nil, openError(dir, err)
	}
	if err := checkWALTail(fs, dir, logger); err != nil {
		return nil, err
	}
	db, err := pebble.Open(dir, l.pebbleOptions(fs))
	if err != nil {
		return nil, openError(dir, err)
	}
	l.db = db
	if err := l.load(); err != nil {
		db.Close()
		return nil, err
	}
	l.durable.Store(uint64(l.lastPos))
	go l.runWriter()
	return l, nil
}

// openError wraps a failure to open dir, marking the ones that may pass.
func openError(dir string, err error) error {
	if transient(err) {
		return fmt.Errorf("%w: open event log %s: %w", eventlog.ErrUnavailable, dir, err)
	}
	return fmt.Errorf("open event log %s: %w", dir, err)
}

// transient reports errors that are about the storage's state (full,
// read-only, failing) rather than about the data.
func transient(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EROFS) ||
		errors.Is(err, syscall.EIO) || errors.Is(err, syscall.EDQUOT)
}

func (l *Log) pebbleOptions(fs vfs.FS) *pebble.Options {
	o := &pebble.Options{
		FS:     fs,
		Logger: pebbleLogger{l.logger},
		// WAL sync chunks let WAL replay tell corruption from a torn tail.
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       uint64(l.opts.MemTableBytes),
		// Allow a few memtables to queue for flushing before writes stall.
		MemTableStopWritesThreshold: 4,
		L0CompactionThreshold:       4,
		L0StopWritesThreshold:       24,
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				l.logger.Warn("pebble background error", "err", err)
			},
			WriteStallBegin: func(info pebble.WriteStallBeginInfo) {
				l.logger.Warn("pebble write stall", "reason", info.Reason)
			},
			// Pebble's default is fatal; a read then fails with the error
			// instead, and Open's verification refuses the damaged log.
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				l.logger.Error("on-disk corruption", "path", info.Path, "details", info.Details)
			},
			DiskSlow: func(info pebble.DiskSlowInfo) {
				l.logger.Warn("slow disk", "path", info.Path, "op", info.OpType.String(), "duration", info.Duration)
			},
		},
	}
	// Records are appended in key order and read by range scans: bloom
	// filters would not help, and the values (JSON) compress.
	o.EnsureDefaults()
	return o
}

// load finds the last position and, unless SkipVerify, checks every
// record and index entry and fills the stream-head cache.
func (l *Log) load() error {
	v, closer, err := l.db.Get(metaFormatKey)
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		last, err := l.lastRecordPos()
		if err != nil {
			return err
		}
		if last != 0 {
			return fmt.Errorf("open event log %s: records found but no format marker: not an event log", l.dir)
		}
		if err := l.db.Set(metaFormatKey, []byte{formatVersion}, pebble.Sync); err != nil {
			return openError(l.dir, err)
		}
	case err != nil:
		return openError(l.dir, err)
	default:
		ok := len(v) == 1 && v[0] == formatVersion
		got := fmt.Sprintf("%x", v)
		closer.Close()
		if !ok {
			return fmt.Errorf("open event log %s: unknown format %s, want %d", l.dir, got, formatVersion)
		}
	}
	if l.opts.SkipVerify {
		last, err := l.lastRecordPos()
		l.lastPos = last
		return err
	}
	return l.verify()
}

func (l *Log) lastRecordPos() (eventlog.Position, error) {
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixRecord}, UpperBound: []byte{prefixRecord + 1}})
	if err != nil {
		return 0, err
	}
	defer it.Close()
	if !it.Last() {
		return 0, it.Error()
	}
	pos, ok := recordKeyPos(it.Key())
	if !ok {
		return 0, fmt.Errorf("event log %s: malformed record key %x", l.dir, it.Key())
	}
	return pos, nil
}

// ReadAll implements eventlog.Log.
func (l *Log) ReadAll(ctx context.Context, after eventlog.Position, limit int) ([]eventlog.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return nil, eventlog.ErrClosed
	}
	hi := eventlog.Position(l.durable.Load())
	if after >= hi {
		return nil, nil
	}
	it, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{
		LowerBound: recordKey(after + 1),
		UpperBound: recordKey(hi + 1),
	})
	if err != nil {
		return nil, l.readError(err)
	}
	defer it.Close()
	n := int(hi - after)
	if limit > 0 && limit < n {
		n = limit
	}
	out := make([]eventlog.Record, 0, min(n, readBatch))
	for ok := it.First(); ok && len(out) < n; ok = it.Next() {
		if len(out)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		pos, okKey := recordKeyPos(it.Key())
		v, err := it.ValueAndErr()
		if !okKey || err != nil {
			return nil, l.readError(fmt.Errorf("record key %x: %w", it.Key(), err))
		}
		r, err := decodeRecordValue(pos, v, false)
		if err != nil {
			return nil, l.readError(err)
		}
		out = append(out, r)
	}
	if err := it.Error(); err != nil {
		return nil, l.readError(err)
	}
	return out, nil
}

// ReadStream implements eventlog.Log.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventlog.Record, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.dbMu.RLock()
	defer l.dbMu.RUnlock()
	if l.dbClosed {
		return nil, eventlog.ErrClosed
	}
	if stream == "" {
		return nil, nil
	}
	hi := eventlog.Position(l.durable.Load())
	prefix := streamPrefix(stream)
	idx, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: indexKey(prefix, from), UpperBound: prefixEnd(prefix)})
	if err != nil {
		return nil, l.readError(err)
	}
	defer idx.Close()
	recs, err := l.db.NewIterWithContext(ctx, &pebble.IterOptions{LowerBound: []byte{prefixRecord}, UpperBound: recordKey(hi + 1)})
	if err != nil {
		return nil, l.readError(err)
	}
	defer recs.Close()
	var out []eventlog.Record
	for ok := idx.First(); ok && (limit <= 0 || len(out) < limit); ok = idx.Next() {
		if len(out)%ctxCheckEvery == ctxCheckEvery-1 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		_, version, err := decodeIndexKey(idx.Key())
		if err != nil {
			return nil, l.readError(err)
		}
		pos, ok := decodePosition(idx.Value())
		if !ok {
			return nil, l.readError(fmt.Errorf("index entry %q v%d: malformed position %x", stream, version, idx.Value()))
		}
		if pos > hi {
			break // committed but not yet durable: not visible
		}
		key := recordKey(pos)
		if !recs.SeekGE(key) || string(recs.Key()) != string(key) {
			return nil, l.readError(fmt.Errorf("index entry %q v%d points at missing position %d", stream, version, pos))
		}
		v, err := recs.ValueAndErr()
		if err != nil {
			return nil, l.readError(err)
		}
		r, err := decodeRecordValue(pos, v, false)
		if err != nil {
			return nil, l.readError(err)
		}
		if r.Stream != stream || r.Version != version {
			return nil, l.readError(fmt.Errorf("index entry %q v%d points at position %d holding %q v%d", stream, version, pos, r.Stream, r.Version))
		}
		out = append(out, r)
	}
	if err := firstErr(idx.Error(), recs.Error()); err != nil {
		return nil, l.readError(err)
	}
	return out, nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// readError wraps a read failure, marking the ones that may pass.
func (l *Log) readError(err error) error {
	if transient(err) {
		return fmt.Errorf("%w: read event log %s: %w", eventlog.ErrUnavailable, l.dir, err)
	}
	return fmt.Errorf("read event log %s: %w", l.dir, err)
}

// Subscribe implements eventlog.Log.
func (l *Log) Subscribe(ctx context.Context, after eventlog.Position) (eventlog.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	return &subscription{log: l, after: after, done: make(chan struct{})}, nil
}

// changedSignal returns the channel closed at the next durable advance, or
// ErrClosed.
func (l *Log) changedSignal() (<-chan struct{}, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	return l.changed, nil
}

// notify wakes every waiting subscriber.
func (l *Log) notify() {
	l.mu.Lock()
	if !l.closed {
		close(l.changed)
		l.changed = make(chan struct{})
	}
	l.mu.Unlock()
}

// Close implements eventlog.Log. It waits for appends already handed to
// the writer, ends subscriptions and closes Pebble. Later calls return nil.
func (l *Log) Close() error {
	var err error
	l.closeOnce.Do(func() {
		l.sendMu.Lock()
		l.sending = false
		close(l.reqs)
		l.sendMu.Unlock()
		<-l.writerDone

		l.mu.Lock()
		l.closed = true
		close(l.changed)
		l.mu.Unlock()

		l.dbMu.Lock()
		l.dbClosed = true
		if cerr := l.db.Close(); cerr != nil {
			err = fmt.Errorf("close event log %s: %w", l.dir, cerr)
		}
		l.dbMu.Unlock()
	})
	return err
}

type subscription struct {
	log       *Log
	after     eventlog.Position // last position delivered or buffered
	buf       []eventlog.Record
	done      chan struct{}
	closeOnce sync.Once
}

// Next implements eventlog.Subscription.
func (s *subscription) Next(ctx context.Context) (eventlog.Record, error) {
	for {
		select {
		case <-s.done:
			return eventlog.Record{}, eventlog.ErrClosed
		default:
		}
		changed, err := s.log.changedSignal()
		if err != nil {
			return eventlog.Record{}, err
		}
		if len(s.buf) > 0 {
			r := s.buf[0]
			s.buf[0] = eventlog.Record{}
			s.buf = s.buf[1:]
			return r, nil
		}
		if err := ctx.Err(); err != nil {
			return eventlog.Record{}, err
		}
		if eventlog.Position(s.log.durable.Load()) > s.after {
			recs, err := s.log.ReadAll(ctx, s.after, readBatch)
			if err != nil {
				return eventlog.Record{}, err
			}
			if len(recs) > 0 {
				s.buf = recs
				s.after = recs[len(recs)-1].Position
			}
			continue
		}
		select {
		case <-changed:
		case <-s.done:
			return eventlog.Record{}, eventlog.ErrClosed
		case <-ctx.Done():
			return eventlog.Record{}, ctx.Err()
		}
	}
}

// Close implements eventlog.Subscription.
func (s *subscription) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}

// pebbleLogger sends Pebble's messages to slog. Fatalf panics with a
// pebbleFatal: Pebble calls it when a commit failed in a way it cannot
// continue from, and returning would let it report success.
type pebbleLogger struct{ l *slog.Logger }

type pebbleFatal struct{ msg string }

func (f pebbleFatal) Error() string { return "pebble fatal: " + f.msg }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...), "source", "pebble")
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	p.l.Error(msg, "source", "pebble", "fatal", true)
	panic(pebbleFatal{msg})
}
