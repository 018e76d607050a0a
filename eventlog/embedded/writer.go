package embedded

import (
	"context"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/herald-webhooks/herald/eventlog"
)

// appendRequest is one Append waiting for the writer.
type appendRequest struct {
	stream   string
	expected eventlog.ExpectedVersion
	events   []eventlog.Event
	bytes    int
	done     chan appendOutcome // buffered: the writer never blocks on it

	outcome appendOutcome // filled by the writer, sent by the completer
}

type appendOutcome struct {
	res eventlog.AppendResult
	err error
}

// group is one batch of requests committed with one fsync.
type group struct {
	reqs    []*appendRequest
	batch   *pebble.Batch // nil if no request wrote anything
	lastPos eventlog.Position
	err     error // set when the group failed before commit
}

// Append implements eventlog.Log. It returns once the records are fsync'd
// (group commit: concurrent appends share one fsync).
//
// If ctx ends while the append waits for its commit, Append returns the
// context's error and the append may or may not have been committed; a
// retry with an exact expected version tells which.
func (l *Log) Append(ctx context.Context, stream string, expected eventlog.ExpectedVersion, events ...eventlog.Event) (eventlog.AppendResult, error) {
	if err := eventlog.CheckAppend(stream, expected, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	total := 0
	for i, e := range events {
		size := len(stream) + len(e.Type) + len(e.Data)
		if size > l.opts.MaxRecordBytes {
			return eventlog.AppendResult{}, fmt.Errorf("%w: event %d for %q is %d bytes, over the %d-byte record limit", eventlog.ErrInvalid, i, stream, size, l.opts.MaxRecordBytes)
		}
		total += encodedRecordLen(stream, e) + len(stream) + 2*9 + 8 + 20
	}
	if total > MaxAppendBytes {
		return eventlog.AppendResult{}, fmt.Errorf("%w: append to %q is %d bytes, over the %d-byte limit", eventlog.ErrInvalid, stream, total, MaxAppendBytes)
	}
	if err := ctx.Err(); err != nil {
		return eventlog.AppendResult{}, err
	}
	if p := l.broken.Load(); p != nil {
		return eventlog.AppendResult{}, *p
	}
	req := &appendRequest{stream: stream, expected: expected, events: events, bytes: total, done: make(chan appendOutcome, 1)}

	l.sendMu.RLock()
	if !l.sending {
		l.sendMu.RUnlock()
		return eventlog.AppendResult{}, eventlog.ErrClosed
	}
	select {
	case l.reqs <- req:
		l.sendMu.RUnlock()
	case <-ctx.Done():
		l.sendMu.RUnlock()
		return eventlog.AppendResult{}, ctx.Err()
	}
	select {
	case out := <-req.done:
		return out.res, out.err
	case <-ctx.Done():
		return eventlog.AppendResult{}, fmt.Errorf("append to %q: outcome unknown: %w", stream, ctx.Err())
	}
}

// runWriter is the single writer: it collects waiting appends into a
// group, checks their expected versions in arrival order against the
// stream heads (including the effects of earlier requests in the same
// group), writes the group as one Pebble batch and hands it to the
// completer, which waits for the fsync and answers the waiters. While one
// group syncs, the next is prepared.
func (l *Log) runWriter() {
	defer close(l.writerDone)
	inflight := make(chan *group, inflightGroups)
	completerDone := make(chan struct{})
	go l.runCompleter(inflight, completerDone)
	defer func() {
		close(inflight)
		<-completerDone
	}()
	var reqs []*appendRequest
	for first := range l.reqs {
		reqs = append(reqs[:0], first)
		bytes := first.bytes
	collect:
		for len(reqs) < maxGroupRequests && bytes < maxGroupBytes {
			select {
			case r, ok := <-l.reqs:
				if !ok {
					break collect
				}
				reqs = append(reqs, r)
				bytes += r.bytes
			default:
				break collect
			}
		}
		g := &group{reqs: append([]*appendRequest(nil), reqs...)}
		l.prepare(g, bytes)
		inflight <- g
	}
}

// prepare checks the group's requests and applies its batch to Pebble
// without waiting for the sync.
func (l *Log) prepare(g *group, bytes int) {
	if p := l.broken.Load(); p != nil {
		g.err = *p
		return
	}
	if err := l.checkSpace(int64(bytes)); err != nil {
		g.err = err
		return
	}
	b := l.db.NewBatchWithSize(bytes)
	pos := l.lastPos
	touched := map[string]int64{} // heads before this group, to undo on failure
	var val []byte
	for _, r := range g.reqs {
		cur, err := l.head(r.stream)
		if err != nil {
			r.outcome.err = err
			continue
		}
		if !eventlog.VersionMatches(r.expected, cur) {
			r.outcome.err = &eventlog.WrongVersionError{Stream: r.stream, Expected: r.expected, Actual: cur}
			continue
		}
		if _, ok := touched[r.stream]; !ok {
			touched[r.stream] = cur
		}
		prefix := streamPrefix(r.stream)
		for _, e := range r.events {
			pos++
			cur++
			val = appendRecordValue(val[:0], pos, r.stream, uint64(cur), e)
			op := b.SetDeferred(9, len(val))
			appendRecordKey(op.Key[:0], pos)
			copy(op.Value, val)
			op.Finish()
			op = b.SetDeferred(len(prefix)+8, 8)
			copy(op.Key, prefix)
			putUint64(op.Key[len(prefix):], uint64(cur))
			putUint64(op.Value, uint64(pos))
			op.Finish()
		}
		l.heads[r.stream] = cur
		r.outcome.res = eventlog.AppendResult{Version: uint64(cur), Position: pos}
	}
	if pos == l.lastPos {
		b.Close()
		return
	}
	if err := l.apply(b); err != nil {
		for s, v := range touched {
			l.heads[s] = v
		}
		b.Close()
		g.err = err
		return
	}
	l.lastPos = pos
	g.batch = b
	g.lastPos = pos
}

// apply hands the batch to Pebble's commit pipeline. A Pebble fatal error
// (its logger's Fatalf) or panic marks the log broken.
func (l *Log) apply(b *pebble.Batch) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = l.markBroken(fmt.Errorf("commit: %v", r))
		}
	}()
	if err := l.db.ApplyNoSyncWait(b, pebble.Sync); err != nil {
		return l.markBroken(fmt.Errorf("commit: %w", err))
	}
	return nil
}

// markBroken records that Pebble can no longer take writes and returns
// the error every later Append gets.
func (l *Log) markBroken(cause error) error {
	err := fmt.Errorf("%w: event log %s cannot write after a storage error, reopen it (restart): %w", eventlog.ErrUnavailable, l.dir, cause)
	if l.broken.CompareAndSwap(nil, &err) {
		l.logger.Error("event log cannot write: storage error", "err", cause)
	}
	return *l.broken.Load()
}

// head returns the stream's last version (-1: none), loading it from the
// index on first use.
func (l *Log) head(stream string) (int64, error) {
	if v, ok := l.heads[stream]; ok {
		return v, nil
	}
	prefix := streamPrefix(stream)
	it, err := l.db.NewIter(&pebble.IterOptions{LowerBound: prefix, UpperBound: prefixEnd(prefix)})
	if err != nil {
		return 0, l.readError(err)
	}
	defer it.Close()
	v := int64(-1)
	if it.Last() {
		_, version, err := decodeIndexKey(it.Key())
		if err != nil {
			return 0, l.readError(err)
		}
		v = int64(version)
	} else if err := it.Error(); err != nil {
		return 0, l.readError(err)
	}
	l.heads[stream] = v
	return v, nil
}

// runCompleter waits for each group's fsync in commit order, advances the
// durable position, wakes subscribers and answers the group's waiters.
func (l *Log) runCompleter(inflight <-chan *group, done chan<- struct{}) {
	defer close(done)
	for g := range inflight {
		err := g.err
		if g.batch != nil {
			if serr := g.batch.SyncWait(); serr != nil && err == nil {
				err = l.markBroken(fmt.Errorf("wal sync: %w", serr))
			}
			g.batch.Close()
			if err == nil {
				l.durable.Store(uint64(g.lastPos))
				l.notify()
			}
		}
		for _, r := range g.reqs {
			out := r.outcome
			var wv *eventlog.WrongVersionError
			if err != nil && !errors.As(out.err, &wv) {
				out = appendOutcome{err: err}
			}
			r.done <- out
		}
	}
}

func putUint64(b []byte, v uint64) {
	_ = b[7]
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
