package projections

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/eventlog"
)

// ReadPage is how many records one ReadAll call of CatchUp reads.
const ReadPage = 4096

// tailnetPrefix starts the name of every tailnet stream.
var tailnetPrefix = tailnet.StreamName("")

// Deliveries is the delivery read model: every event raised, and what
// became of it at each endpoint. It is a fold of the log's records in
// global order (Apply); Run keeps it current from a subscription, CatchUp
// brings it up to what the log holds now. Queries may run while it is
// being applied to. The zero value is empty and ready to use.
type Deliveries struct {
	mu      sync.RWMutex
	pos     eventlog.Position
	changed chan struct{} // closed and cleared when pos advances; nil: nobody waits

	events    map[string]*eventState // by event id
	order     []*eventState          // in the order first seen: raise order
	endpoints map[string]*endpointState
	tailnets  map[string]string // interned tailnet names
}

// eventState is what the projection keeps of one event.
type eventState struct {
	id, typ, tailnet string
	raised           eventlog.Position // of the notification; 0 until it is seen
	// endpoints are the notification's targets (the first targets of
	// them), then endpoints whose streams name the event without being
	// targets (or before the notification was seen).
	endpoints []string
	targets   int
}

// endpointState is what the projection keeps of one endpoint.
type endpointState struct {
	id, tailnet string
	chains      map[string]*chain // by event id

	queued, delivered, abandoned uint64
	pending                      int
	attempts, failed             uint64
	last                         *Attempt
}

// chain is one event at one endpoint: the attempt chain (event, endpoint).
type chain struct {
	queued   bool
	queuedAt time.Time
	attempts []eventAttempt
	outcome  Outcome // "" while pending
	reason   string
	at       time.Time
}

// eventAttempt is one attempt as it concerned one event. The attempt is
// shared by every event of its POST.
type eventAttempt struct {
	attempt *Attempt
	result  string
	nextDue time.Time
}

// RecordError is a record Apply could not decode. The record was skipped:
// Position() has moved past it, so a CatchUp or Run that starts again goes
// on after it.
type RecordError struct {
	Stream   string
	Version  uint64
	Position eventlog.Position
	Err      error
}

func (e *RecordError) Error() string {
	return fmt.Sprintf("record at position %d skipped: %v", e.Position, e.Err)
}

func (e *RecordError) Unwrap() error { return e.Err }

// Position returns the position of the last record applied (or skipped);
// eventlog.Start if none.
func (d *Deliveries) Position() eventlog.Position {
	d.mu.RLock()
	defer d.mu.RUnlock()
	return d.pos
}

// Apply folds one record into the view: a notification of a tailnet
// stream, or a queued, attempt or abandoned record of an endpoint stream.
// Other streams and record types are skipped. Records must come in
// position order; one at or before Position() was already applied and is
// ignored, so overlapping replays are harmless. A record that cannot be
// decoded is skipped and reported as a *RecordError.
func (d *Deliveries) Apply(rec eventlog.Record) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if rec.Position <= d.pos {
		return nil
	}
	if d.events == nil {
		d.events = map[string]*eventState{}
		d.endpoints = map[string]*endpointState{}
		d.tailnets = map[string]string{}
	}
	err := d.apply(rec)
	d.pos = rec.Position
	if d.changed != nil {
		close(d.changed)
		d.changed = nil
	}
	if err != nil {
		return &RecordError{Stream: rec.Stream, Version: rec.Version, Position: rec.Position, Err: err}
	}
	return nil
}

func (d *Deliveries) apply(rec eventlog.Record) error {
	if id, ok := strings.CutPrefix(rec.Stream, endpoint.StreamPrefix); ok {
		v, err := endpoint.DecodeRecord(rec)
		if err != nil || v == nil {
			return err
		}
		ep := d.endpoint(id)
		switch r := v.(type) {
		case *endpoint.QueuedRecord:
			d.applyQueued(ep, r)
		case *endpoint.AttemptRecord:
			d.applyAttempt(ep, r)
		case *endpoint.AbandonedRecord:
			for _, id := range r.Events {
				if c := d.chain(ep, id); c.outcome == "" {
					ep.decide(c, Abandoned, r.Reason, r.At)
				}
			}
		}
		return nil
	}
	if name, ok := strings.CutPrefix(rec.Stream, tailnetPrefix); ok {
		n, ok, err := tailnet.DecodeNotification(rec)
		if err != nil || !ok {
			return err
		}
		d.applyNotification(name, rec.Position, n)
	}
	return nil
}

func (d *Deliveries) applyNotification(tailnetName string, pos eventlog.Position, n tailnet.Raised) {
	name, ok := d.tailnets[tailnetName]
	if !ok {
		name = tailnetName
		d.tailnets[name] = name
	}
	ev := d.events[n.ID]
	switch {
	case ev == nil:
		ev = &eventState{id: n.ID}
		d.events[ev.id] = ev
		d.order = append(d.order, ev)
	case ev.raised != 0:
		return // a second notification with the same id: the first one stands
	}
	ev.typ, ev.tailnet, ev.raised = n.Type, name, pos
	targets := make([]string, 0, len(n.Endpoints)+len(ev.endpoints))
	for _, id := range n.Endpoints {
		ep := d.endpoint(id)
		if ep.tailnet == "" {
			ep.tailnet = name
		}
		if !slices.Contains(targets, ep.id) {
			targets = append(targets, ep.id)
		}
	}
	ev.targets = len(targets)
	for _, id := range ev.endpoints { // endpoints that named the event before
		if !slices.Contains(targets, id) {
			targets = append(targets, id)
		}
	}
	ev.endpoints = targets
}

func (d *Deliveries) applyQueued(ep *endpointState, r *endpoint.QueuedRecord) {
	c := d.chain(ep, r.Event)
	if c.queued {
		return // a duplicate: the endpoint actor ignores it too
	}
	c.queued, c.queuedAt = true, r.QueuedAt
	ep.queued++
	if c.outcome == "" {
		ep.pending++
	}
}

func (d *Deliveries) applyAttempt(ep *endpointState, r *endpoint.AttemptRecord) {
	a := &Attempt{
		ID: r.ID, Started: r.Started, Finished: r.Finished,
		Status: r.StatusCode, ErrorClass: r.ErrorClass, Error: r.Error, Events: len(r.Events),
	}
	ep.attempts++
	if !r.OK() {
		ep.failed++
	}
	ep.last = a
	for _, o := range r.Outcomes {
		for _, id := range o.Events {
			c := d.chain(ep, id)
			c.attempts = append(c.attempts, eventAttempt{attempt: a, result: o.Result, nextDue: o.NextDue})
			if c.outcome != "" {
				continue
			}
			switch o.Result {
			case endpoint.ResultDelivered:
				ep.decide(c, Delivered, "", r.Finished)
			case endpoint.ResultAbandoned:
				ep.decide(c, Abandoned, o.Reason, r.Finished)
			}
		}
	}
}

// decide records an event's final outcome at ep. Like the endpoint actor,
// it counts only events that were queued.
func (ep *endpointState) decide(c *chain, o Outcome, reason string, at time.Time) {
	c.outcome, c.reason, c.at = o, reason, at
	if !c.queued {
		return
	}
	ep.pending--
	if o == Delivered {
		ep.delivered++
	} else {
		ep.abandoned++
	}
}

// endpoint returns the state of endpoint id, creating it.
func (d *Deliveries) endpoint(id string) *endpointState {
	ep := d.endpoints[id]
	if ep == nil {
		ep = &endpointState{id: id, chains: map[string]*chain{}}
		d.endpoints[id] = ep
	}
	return ep
}

// chain returns the chain of event id at ep, creating it (and the event,
// if its notification was not seen).
func (d *Deliveries) chain(ep *endpointState, id string) *chain {
	if c := ep.chains[id]; c != nil {
		return c
	}
	ev := d.events[id]
	if ev == nil {
		ev = &eventState{id: id, tailnet: ep.tailnet}
		d.events[id] = ev
		d.order = append(d.order, ev)
	}
	if !slices.Contains(ev.endpoints, ep.id) {
		ev.endpoints = append(ev.endpoints, ep.id)
	}
	c := &chain{}
	ep.chains[ev.id] = c
	return c
}

// Wait blocks until the view has applied the record at pos (or a later
// one), or ctx is done.
func (d *Deliveries) Wait(ctx context.Context, pos eventlog.Position) error {
	for {
		d.mu.Lock()
		if d.pos >= pos {
			d.mu.Unlock()
			return nil
		}
		if d.changed == nil {
			d.changed = make(chan struct{})
		}
		changed := d.changed
		d.mu.Unlock()
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// CatchUp applies every record after Position() that log holds now, in
// pages of ReadPage, and returns. It stops at the first error: a read
// error, or a *RecordError (the record is skipped, so calling CatchUp
// again goes on after it).
func (d *Deliveries) CatchUp(ctx context.Context, log eventlog.Log) error {
	for {
		after := d.Position()
		recs, err := log.ReadAll(ctx, after, ReadPage)
		if err != nil {
			return fmt.Errorf("read the log after position %d: %w", after, err)
		}
		if len(recs) == 0 {
			return nil
		}
		for _, rec := range recs {
			if err := d.Apply(rec); err != nil {
				return err
			}
		}
	}
}

// Run subscribes to log after position after and applies every record,
// first those already written, then new ones as they are committed,
// until ctx ends (it then returns ctx.Err()), the subscription fails, or
// a record cannot be decoded (a *RecordError). In every case,
// Run(ctx, log, d.Position()) resumes where it stopped.
func (d *Deliveries) Run(ctx context.Context, log eventlog.Log, after eventlog.Position) error {
	sub, err := log.Subscribe(ctx, after)
	if err != nil {
		return fmt.Errorf("subscribe to the log after position %d: %w", after, err)
	}
	defer sub.Close()
	for {
		rec, err := sub.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return fmt.Errorf("log subscription: %w", err)
		}
		if err := d.Apply(rec); err != nil {
			return err
		}
	}
}
