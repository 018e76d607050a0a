package endpoint

import (
	"container/heap"
	"slices"
	"strings"
	"time"

	"github.com/herald-webhooks/herald/events"
)

// Queue is an endpoint's delivery state and the decisions made on it,
// without actors, logs or clocks: the state is a fold of the stream's
// records (Apply), and Step says what to do at a given time. The actor
// logs a record first and applies it after the append succeeded, so a
// rebuilt Queue (every record of the stream applied in order) equals the
// live one. A Queue is not safe for concurrent use.
type Queue struct {
	retry RetryPolicy
	batch BatchPolicy

	events map[string]*entry
	// fresh holds the events never attempted, in queue order. Entries
	// that left it (state != stateFresh) are skipped and trimmed lazily.
	fresh      []*entry
	freshHead  int
	freshCount int
	freshBytes int
	retries    dueHeap // attempted events waiting for their next slot

	inFlight *Batch

	highest    uint64 // highest TailnetVersion queued
	hasHighest bool

	delivered, abandoned, attempts uint64
	last                           *AttemptRecord
}

type entryState uint8

const (
	stateDetached entryState = iota
	stateFresh
	stateRetry
	stateInFlight
)

// entry is one pending event.
type entry struct {
	id             string
	tailnetVersion uint64
	seq            uint64 // stream version of its queued record: the queue order
	payload        []byte
	queuedAt       time.Time
	t0, lastStart  time.Time // zero until the first attempt is logged
	attempts       int
	due            time.Time // next slot (attempted events)
	exhausted      bool      // no slot left: abandon at the next step
	state          entryState
	index          int // in retries, while stateRetry
}

// Batch is the events of one POST, in body order.
type Batch struct {
	// ID is the attempt id; the caller sets it before sending.
	ID           string
	Events       []string
	Payloads     [][]byte
	PayloadBytes int // sum of len(Payloads[i])
	// Started and BodyBytes are set by the caller when it sends the batch.
	Started   time.Time
	BodyBytes int
}

// Plan is what Step decided.
type Plan struct {
	// Abandon lists events whose window closed before they could be
	// attempted again. Log these records and Apply them, then Step again;
	// Batch is nil when Abandon is not empty.
	Abandon []*AbandonedRecord
	// Batch is the POST to send now. The queue holds it in flight (Step
	// returns nothing more) until the attempt record that Finish builds
	// for it is applied.
	Batch *Batch
	// Wake is when Step next has something to do; zero when nothing is
	// pending or a batch is in flight (its outcome is the next event).
	Wake time.Time
}

// NewQueue returns an empty queue for the policies (zero fields take the
// defaults).
func NewQueue(retry RetryPolicy, batch BatchPolicy) *Queue {
	return &Queue{retry: retry.withDefaults(), batch: batch.withDefaults(), events: map[string]*entry{}}
}

// HighestQueued returns the highest TailnetVersion queued, and false if
// nothing was ever queued.
func (q *Queue) HighestQueued() (uint64, bool) { return q.highest, q.hasHighest }

// Len returns the number of pending events, in flight included.
func (q *Queue) Len() int { return len(q.events) }

// InFlight returns the batch in flight, or nil.
func (q *Queue) InFlight() *Batch { return q.inFlight }

// Apply folds one record of the stream into the state: a *QueuedRecord
// (version is its stream version, which orders the queue), an
// *AttemptRecord or an *AbandonedRecord. Anything else is ignored.
func (q *Queue) Apply(version uint64, rec any) {
	switch r := rec.(type) {
	case *QueuedRecord:
		q.applyQueued(version, r)
	case *AttemptRecord:
		q.applyAttempt(r)
	case *AbandonedRecord:
		for _, id := range r.Events {
			if e := q.events[id]; e != nil && e.state != stateInFlight {
				q.remove(e)
				q.abandoned++
			}
		}
	}
}

func (q *Queue) applyQueued(version uint64, r *QueuedRecord) {
	if !q.hasHighest || r.TailnetVersion > q.highest {
		q.highest, q.hasHighest = r.TailnetVersion, true
	}
	if _, dup := q.events[r.Event]; dup {
		return
	}
	e := &entry{id: r.Event, tailnetVersion: r.TailnetVersion, seq: version, payload: r.Payload, queuedAt: r.QueuedAt}
	q.events[e.id] = e
	q.pushFresh(e)
}

func (q *Queue) applyAttempt(r *AttemptRecord) {
	q.attempts++
	q.last = r
	for _, o := range r.Outcomes {
		for _, id := range o.Events {
			e := q.events[id]
			if e == nil {
				continue
			}
			q.detach(e)
			e.attempts++
			if e.t0.IsZero() {
				e.t0 = r.Started
			}
			if r.Started.After(e.lastStart) {
				e.lastStart = r.Started
			}
			switch o.Result {
			case ResultDelivered:
				q.remove(e)
				q.delivered++
			case ResultAbandoned:
				q.remove(e)
				q.abandoned++
			default: // ResultRetry, or a result a later version added: keep it
				q.schedule(e)
			}
		}
	}
	if q.inFlight != nil && q.inFlight.ID == r.ID {
		// Anything the record did not mention goes back where it was.
		for _, id := range q.inFlight.Events {
			if e := q.events[id]; e != nil && e.state == stateInFlight {
				e.state = stateDetached
				if e.t0.IsZero() {
					q.pushFresh(e)
				} else {
					q.schedule(e)
				}
			}
		}
		q.inFlight = nil
	}
}

// schedule puts an attempted event on the heap at its next slot.
func (q *Queue) schedule(e *entry) {
	slot, ok := slotAfter(e.t0, e.lastStart, q.retry)
	e.due, e.exhausted = slot, !ok
	if !ok {
		e.due = e.lastStart
	}
	e.state = stateRetry
	heap.Push(&q.retries, e)
}

func (q *Queue) pushFresh(e *entry) {
	e.state = stateFresh
	q.fresh = append(q.fresh, e)
	q.freshCount++
	q.freshBytes += len(e.payload)
}

// detach takes e out of the fresh list or the heap.
func (q *Queue) detach(e *entry) {
	switch e.state {
	case stateFresh:
		q.freshCount--
		q.freshBytes -= len(e.payload)
		e.state = stateDetached
		q.trimFresh()
	case stateRetry:
		heap.Remove(&q.retries, e.index)
	}
	e.state = stateDetached
}

// remove forgets e (delivered or abandoned): its payload is not kept.
func (q *Queue) remove(e *entry) {
	q.detach(e)
	delete(q.events, e.id)
	e.payload = nil
}

// minCompact is the fewest stale fresh-list slots worth compacting.
const minCompact = 64

func (q *Queue) trimFresh() {
	for q.freshHead < len(q.fresh) && q.fresh[q.freshHead].state != stateFresh {
		q.fresh[q.freshHead] = nil
		q.freshHead++
	}
	if q.freshHead == len(q.fresh) {
		q.fresh, q.freshHead = q.fresh[:0], 0
		return
	}
	if stale := len(q.fresh) - q.freshCount; stale > minCompact && stale > len(q.fresh)/2 {
		kept := make([]*entry, 0, q.freshCount)
		for _, e := range q.fresh[q.freshHead:] {
			if e.state == stateFresh {
				kept = append(kept, e)
			}
		}
		q.fresh, q.freshHead = kept, 0
	}
}

func (q *Queue) freshFull() bool {
	return q.freshCount >= q.batch.MaxEvents || events.BatchSize(q.freshBytes, q.freshCount) >= q.batch.MaxBytes
}

// freshDue is when the fresh events are due: Linger after the first of
// them was queued, or at once when they fill a batch.
func (q *Queue) freshDue() (time.Time, bool) {
	if q.freshCount == 0 {
		return time.Time{}, false
	}
	head := q.fresh[q.freshHead]
	if q.freshFull() {
		return head.queuedAt, true
	}
	return head.queuedAt.Add(q.batch.Linger), true
}

// NextDue returns the earliest time an event is due (in flight or not),
// and false when nothing waits.
func (q *Queue) NextDue() (time.Time, bool) {
	var at time.Time
	ok := false
	if len(q.retries) > 0 {
		at, ok = q.retries[0].due, true
	}
	if fd, fok := q.freshDue(); fok && (!ok || fd.Before(at)) {
		at, ok = fd, true
	}
	return at, ok
}

// Step is the synchronous "flush what is due" step: given the time now,
// it abandons what can no longer be attempted, or cuts the next batch.
// Its cost grows with the batch size, not with the number of events due.
func (q *Queue) Step(now time.Time) Plan {
	if q.inFlight != nil {
		return Plan{}
	}
	due, ab := q.popDue(now)
	if len(ab) > 0 {
		return Plan{Abandon: ab}
	}
	fd, fok := q.freshDue()
	if len(due) == 0 && (!fok || fd.After(now)) {
		w, _ := q.NextDue()
		return Plan{Wake: w}
	}
	b := q.cut(due)
	q.inFlight = b
	return Plan{Batch: b}
}

// maxAbandonPerRecord caps the events of one abandoned record (a long
// downtime can close the windows of many events at once).
const maxAbandonPerRecord = 10_000

// popDue looks at the attempted events due at now in (due, queue) order:
// up to MaxEvents that may be sent, and those that must be abandoned
// (one record per reason). Everything it looked at stays in the heap;
// cut and Apply take events out.
func (q *Queue) popDue(now time.Time) ([]*entry, []*AbandonedRecord) {
	var due, seen []*entry
	var exhausted, closed []string
	for len(q.retries) > 0 && !q.retries[0].due.After(now) &&
		len(due) < q.batch.MaxEvents && len(exhausted)+len(closed) < maxAbandonPerRecord {
		e := heap.Pop(&q.retries).(*entry)
		seen = append(seen, e)
		if _, ok := nextDue(e.t0, e.lastStart, now, q.retry); ok {
			due = append(due, e)
		} else if e.exhausted {
			exhausted = append(exhausted, e.id)
		} else {
			closed = append(closed, e.id)
		}
	}
	for _, e := range seen {
		heap.Push(&q.retries, e)
	}
	var ab []*AbandonedRecord
	for _, g := range []struct {
		ids    []string
		reason string
	}{{exhausted, ReasonWindowExhausted}, {closed, ReasonWindowClosed}} {
		if len(g.ids) > 0 {
			ab = append(ab, &AbandonedRecord{Type: TypeAbandoned, V: SchemaVersion, Events: g.ids, At: now, Reason: g.reason})
		}
	}
	return due, ab
}

func compareDue(a, b *entry) int {
	if c := a.due.Compare(b.due); c != 0 {
		return c
	}
	switch {
	case a.seq < b.seq:
		return -1
	case a.seq > b.seq:
		return 1
	}
	return 0
}

// cut takes the next batch: the due attempted events and the fresh ones
// (fresh events ride along with a batch that is going out anyway), merged
// in (due, queue) order, within MaxEvents and MaxBytes.
func (q *Queue) cut(due []*entry) *Batch {
	b := &Batch{}
	var chosen []*entry
	add := func(e *entry) bool {
		n := len(chosen)
		if n == q.batch.MaxEvents {
			return false
		}
		if n > 0 && events.BatchSize(b.PayloadBytes+len(e.payload), n+1) > q.batch.MaxBytes {
			return false
		}
		chosen = append(chosen, e)
		b.Events = append(b.Events, e.id)
		b.Payloads = append(b.Payloads, e.payload)
		b.PayloadBytes += len(e.payload)
		return true
	}
	fresh := q.fresh[q.freshHead:]
	i, j := 0, 0
	for {
		for j < len(fresh) && fresh[j].state != stateFresh {
			j++
		}
		var next *entry
		switch {
		case i < len(due) && j < len(fresh):
			if fd := fresh[j].queuedAt.Add(q.batch.Linger); fd.Before(due[i].due) {
				next, j = fresh[j], j+1
			} else {
				next, i = due[i], i+1
			}
		case i < len(due):
			next, i = due[i], i+1
		case j < len(fresh):
			next, j = fresh[j], j+1
		}
		if next == nil || !add(next) {
			break
		}
	}
	for _, e := range chosen {
		q.detach(e)
		e.state = stateInFlight
	}
	return b
}

// Oversize reports whether b is a single event bigger than MaxBytes.
func (q *Queue) Oversize(b *Batch) bool {
	return len(b.Events) == 1 && events.BatchSize(b.PayloadBytes, 1) > q.batch.MaxBytes
}

// Adopt marks b in flight: a restarted actor takes over the request its
// previous incarnation sent, so that its outcome is still logged and no
// second request starts meanwhile. Events of b that are not pending are
// left out of it.
func (q *Queue) Adopt(b *Batch) {
	for _, id := range b.Events {
		if e := q.events[id]; e != nil {
			q.detach(e)
			e.state = stateInFlight
		}
	}
	q.inFlight = b
}

// Finish builds the attempt record of batch b, sent at b.Started, that
// ended at finished with outcome o. The state changes only when the
// record is applied (after it was logged). errText is o.Err's text as it
// may be logged (the caller removes anything secret).
func (q *Queue) Finish(b *Batch, o Outcome, errText string, finished time.Time) *AttemptRecord {
	r := &AttemptRecord{
		Type: TypeAttempt, V: SchemaVersion, ID: b.ID, Events: b.Events,
		Started: b.Started, Finished: finished,
		StatusCode: o.StatusCode, ErrorClass: o.ErrorClass, Error: shortText(errText),
		ResponseBytes: o.ResponseBytes, BodyBytes: b.BodyBytes,
	}
	ok := o.OK()
	for _, id := range b.Events {
		e := q.events[id]
		if e == nil {
			continue
		}
		out := EventOutcome{Result: ResultDelivered}
		if !ok {
			t0 := e.t0
			if t0.IsZero() {
				t0 = b.Started
			}
			if slot, more := slotAfter(t0, b.Started, q.retry); more {
				out.Result, out.NextDue = ResultRetry, slot
			} else {
				out.Result, out.Reason = ResultAbandoned, ReasonWindowExhausted
			}
		}
		i := slices.IndexFunc(r.Outcomes, func(g EventOutcome) bool {
			return g.Result == out.Result && g.NextDue.Equal(out.NextDue) && g.Reason == out.Reason
		})
		if i < 0 {
			r.Outcomes = append(r.Outcomes, out)
			i = len(r.Outcomes) - 1
		}
		r.Outcomes[i].Events = append(r.Outcomes[i].Events, id)
	}
	return r
}

// shortText keeps the first MaxErrorText bytes of s, on one line.
func shortText(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > MaxErrorText {
		s = strings.ToValidUTF8(s[:MaxErrorText], "") + "…"
	}
	return s
}

// Stats is the queue's part of a Status.
func (q *Queue) Stats() Status {
	st := Status{
		Pending:   len(q.events),
		InFlight:  q.inFlight != nil,
		Delivered: q.delivered,
		Abandoned: q.abandoned,
		Attempts:  q.attempts,
	}
	st.NextDue, _ = q.NextDue()
	if q.last != nil {
		c := *q.last
		c.Events = slices.Clone(c.Events)
		c.Outcomes = slices.Clone(c.Outcomes)
		for i := range c.Outcomes {
			c.Outcomes[i].Events = slices.Clone(c.Outcomes[i].Events)
		}
		st.LastAttempt = &c
	}
	return st
}

// dueHeap orders attempted events by (due, queue order).
type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return compareDue(h[i], h[j]) < 0 }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}
func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.index = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	e.index = -1
	return e
}
