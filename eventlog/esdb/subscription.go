package esdb

import (
	"context"
	"fmt"
	"sync"

	"github.com/EventStore/EventStore-Client-Go/v4/esdb"
	"github.com/cenkalti/backoff/v4"

	"github.com/herald-webhooks/herald/eventlog"
)

const (
	// subscriptionBuffer is how many records a subscription reads ahead
	// of Next.
	subscriptionBuffer = 256
	// nonSystemStreams matches stream names that are not EventStoreDB's
	// own; it is the server-side filter when there is no namespace.
	nonSystemStreams = "^[^$]"
)

// subscription follows $all through esdb subscriptions, making a new one
// from the last position it received whenever one drops.
type subscription struct {
	l      *Log
	items  chan item
	done   chan struct{} // closed by Close
	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once
	err    error // terminal error, once Next has seen it
}

// item is a record, or the error that ended the subscription.
type item struct {
	rec eventlog.Record
	err error
}

// Subscribe implements eventlog.Log. The subscription catches up from
// after and then follows new records; it survives lost connections.
// Next must not be called from two goroutines at once.
//
// Checkpoints that EventStoreDB sends while it scans past filtered events
// are not used as resume points: some server versions sent a checkpoint
// equal to the position of an event not yet delivered (KurrentDB issue
// 4970), and resuming after it would lose that event. A resubscription
// therefore scans again from the last event received, which costs time,
// never records.
func (l *Log) Subscribe(ctx context.Context, after eventlog.Position) (eventlog.Subscription, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil, eventlog.ErrClosed
	}
	s := &subscription{l: l, items: make(chan item, subscriptionBuffer), done: make(chan struct{})}
	s.ctx, s.cancel = context.WithCancel(l.ctx)
	l.subs[s] = struct{}{}
	l.pumps.Add(1)
	go s.pump(after)
	return s, nil
}

// Next implements eventlog.Subscription.
func (s *subscription) Next(ctx context.Context) (eventlog.Record, error) {
	select {
	case <-s.done:
		return eventlog.Record{}, eventlog.ErrClosed
	default:
	}
	if s.err != nil {
		return eventlog.Record{}, s.err
	}
	select {
	case it := <-s.items:
		if it.err != nil {
			s.err = it.err
			return eventlog.Record{}, it.err
		}
		return it.rec, nil
	case <-s.done:
		return eventlog.Record{}, eventlog.ErrClosed
	case <-s.l.ctx.Done():
		return eventlog.Record{}, eventlog.ErrClosed
	case <-ctx.Done():
		return eventlog.Record{}, ctx.Err()
	}
}

// Close implements eventlog.Subscription.
func (s *subscription) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.cancel()
	})
	return nil
}

// pump subscribes, forwards records to items, and resubscribes after
// drops, until the subscription or the log closes or the retry budget is
// spent.
func (s *subscription) pump(after eventlog.Position) {
	l := s.l
	defer l.pumps.Done()
	defer func() {
		l.mu.Lock()
		delete(l.subs, s)
		l.mu.Unlock()
	}()
	last := after // position of the last event received, shown or not
	from := allPosition(after)
	b := l.newBackOff()
	for {
		sub, cancel, err := l.subscribeOnce(s.ctx, from)
		if err == nil {
			b.Reset()
			err = s.forward(sub, &last)
			_ = sub.Close()
			cancel()
			if s.ctx.Err() != nil {
				return
			}
			l.log.Warn("esdb: subscription dropped; resubscribing", "after", uint64(last), "err", err)
		}
		if s.ctx.Err() != nil {
			return
		}
		if last == after && invalidPosition(err) {
			if _, fromStart := from.(esdb.Start); !fromStart {
				// after falls inside a record: start from the beginning;
				// forward skips up to after.
				l.log.Warn("esdb: position is not an event's; subscribing to $all from the start", "after", uint64(after))
				from = esdb.Start{}
				continue
			}
		}
		from = allPosition(last)
		if !transient(err) {
			s.fail(fmt.Errorf("esdb: subscription after position %d: %w", last, err))
			return
		}
		wait := b.NextBackOff()
		if wait == backoff.Stop {
			s.fail(fmt.Errorf("esdb: subscription after position %d: %w: %w", last, eventlog.ErrUnavailable, err))
			return
		}
		l.log.Warn("esdb: retrying", "op", "subscribe", "after", uint64(last), "wait", wait, "err", err)
		if l.sleep(s.ctx, wait) != nil {
			return
		}
	}
}

// subscribeOnce opens one esdb subscription to $all from a position
// (exclusive). The returned cancel releases it, after Close.
func (l *Log) subscribeOnce(ctx context.Context, from esdb.AllPosition) (*esdb.Subscription, context.CancelFunc, error) {
	subCtx, cancel := context.WithCancel(ctx)
	opts := esdb.SubscribeToAllOptions{From: from, Filter: l.filter()}
	sub, err := call(l, subCtx, cancel, func(ctx context.Context, c *esdb.Client) (*esdb.Subscription, error) {
		return c.SubscribeToAll(ctx, opts)
	})
	if err != nil {
		cancel()
		return nil, nil, err
	}
	return sub, cancel, nil
}

// filter is the server-side filter: the namespace, or no system streams.
// ReadAll applies the same rule on the client (visible), and so does
// forward, in case a server ignores the filter.
func (l *Log) filter() *esdb.SubscriptionFilter {
	if l.opts.Namespace != "" {
		return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Prefixes: []string{l.opts.Namespace}}
	}
	return &esdb.SubscriptionFilter{Type: esdb.StreamFilterType, Regex: nonSystemStreams}
}

// forward passes sub's events to items until sub drops (it returns why)
// or the subscription closes (it returns nil). last advances with every
// event received; events at or before it are duplicates and skipped.
func (s *subscription) forward(sub *esdb.Subscription, last *eventlog.Position) error {
	l := s.l
	for {
		ev := sub.Recv()
		switch {
		case ev.EventAppeared != nil:
			re := ev.EventAppeared.Event
			if re == nil {
				continue
			}
			p := positionOf(re)
			if p <= *last {
				continue
			}
			*last = p
			if !l.visible(re) {
				continue
			}
			select {
			case s.items <- item{rec: l.record(re)}:
			case <-s.ctx.Done():
				return nil
			}
		case ev.CheckPointReached != nil:
			l.log.Debug("esdb: subscription checkpoint", "commit", ev.CheckPointReached.Commit)
		case ev.SubscriptionDropped != nil:
			if s.ctx.Err() != nil {
				return nil
			}
			return ev.SubscriptionDropped.Error
		}
	}
}

// fail hands err to Next as the subscription's last word.
func (s *subscription) fail(err error) {
	s.l.log.Error("esdb: subscription ended", "err", err)
	select {
	case s.items <- item{err: err}:
	case <-s.ctx.Done():
	}
}
