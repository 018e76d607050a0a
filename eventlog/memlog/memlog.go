// Package memlog is an in-memory eventlog.Log: the reference model that the
// conformance and property tests compare real backends against. It keeps
// nothing across restarts, so Herald never runs on it.
package memlog

import (
	"context"
	"sync"

	"github.com/herald-webhooks/herald/eventlog"
)

// Log is an in-memory eventlog.Log.
type Log struct {
	mu      sync.Mutex
	records []eventlog.Record // global order; Position = index+1
	streams map[string][]eventlog.Position
	changed chan struct{} // closed and replaced on every append
	closed  bool
}

// New returns an empty log.
func New() *Log {
	return &Log{streams: map[string][]eventlog.Position{}, changed: make(chan struct{})}
}

// Append implements eventlog.Log.
func (l *Log) Append(ctx context.Context, stream string, expected eventlog.ExpectedVersion, events ...eventlog.Event) (eventlog.AppendResult, error) {
	if err := eventlog.CheckAppend(stream, expected, events); err != nil {
		return eventlog.AppendResult{}, err
	}
	if err := ctx.Err(); err != nil {
		return eventlog.AppendResult{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return eventlog.AppendResult{}, eventlog.ErrClosed
	}
	positions := l.streams[stream]
	current := int64(len(positions)) - 1
	if !eventlog.VersionMatches(expected, current) {
		return eventlog.AppendResult{}, &eventlog.WrongVersionError{Stream: stream, Expected: expected, Actual: current}
	}
	var res eventlog.AppendResult
	for _, e := range events {
		res = eventlog.AppendResult{Version: uint64(len(positions)), Position: eventlog.Position(len(l.records) + 1)}
		l.records = append(l.records, eventlog.Record{
			Stream: stream, Version: res.Version, Position: res.Position,
			Type: e.Type, Data: append([]byte(nil), e.Data...),
		})
		positions = append(positions, res.Position)
	}
	l.streams[stream] = positions
	close(l.changed)
	l.changed = make(chan struct{})
	return res, nil
}

// ReadStream implements eventlog.Log.
func (l *Log) ReadStream(ctx context.Context, stream string, from uint64, limit int) ([]eventlog.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	positions := l.streams[stream]
	var out []eventlog.Record
	for v := from; v < uint64(len(positions)); v++ {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, l.records[positions[v]-1])
	}
	return out, nil
}

// ReadAll implements eventlog.Log.
func (l *Log) ReadAll(ctx context.Context, after eventlog.Position, limit int) ([]eventlog.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	return l.readAfterLocked(after, limit), nil
}

func (l *Log) readAfterLocked(after eventlog.Position, limit int) []eventlog.Record {
	var out []eventlog.Record
	for i := int(after); i < len(l.records); i++ {
		if limit > 0 && len(out) == limit {
			break
		}
		out = append(out, l.records[i])
	}
	return out
}

// Subscribe implements eventlog.Log.
func (l *Log) Subscribe(ctx context.Context, after eventlog.Position) (eventlog.Subscription, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	return &subscription{log: l, next: after, done: make(chan struct{})}, nil
}

// Close implements eventlog.Log.
func (l *Log) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.closed {
		l.closed = true
		close(l.changed)
	}
	return nil
}

type subscription struct {
	log       *Log
	next      eventlog.Position // last position delivered
	done      chan struct{}
	closeOnce sync.Once
}

func (s *subscription) Next(ctx context.Context) (eventlog.Record, error) {
	for {
		select {
		case <-s.done:
			return eventlog.Record{}, eventlog.ErrClosed
		default:
		}
		s.log.mu.Lock()
		if s.log.closed {
			s.log.mu.Unlock()
			return eventlog.Record{}, eventlog.ErrClosed
		}
		recs := s.log.readAfterLocked(s.next, 1)
		changed := s.log.changed
		s.log.mu.Unlock()
		if len(recs) == 1 {
			s.next = recs[0].Position
			return recs[0], nil
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

func (s *subscription) Close() error {
	s.closeOnce.Do(func() { close(s.done) })
	return nil
}
