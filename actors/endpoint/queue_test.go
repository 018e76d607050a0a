package endpoint

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/herald-webhooks/herald/events"
)

// payload returns the wire bytes of a nodeCreated event with the given id,
// padded (in the device name) to at least size bytes.
func payload(t testing.TB, id string, size int) []byte {
	t.Helper()
	d := events.Data{NodeID: "n" + id, DeviceName: "node-" + id}
	p, err := events.New(id, "acme.example", events.NodeCreated, t0, d)
	if err != nil {
		t.Fatal(err)
	}
	if pad := size - len(p); pad > 0 {
		d.NodeID += strings.Repeat("x", pad) // the node id appears once
		if p, err = events.New(id, "acme.example", events.NodeCreated, t0, d); err != nil {
			t.Fatal(err)
		}
	}
	return p
}

// model drives a Queue the way the actor does: every record is kept (as
// the log would) before it is applied.
type model struct {
	t       testing.TB
	q       *Queue
	records []any
	tv      uint64
	n       int
}

func newModel(t testing.TB, r RetryPolicy, b BatchPolicy) *model {
	return &model{t: t, q: NewQueue(r, b)}
}

func (m *model) apply(r any) {
	m.records = append(m.records, r)
	m.q.Apply(uint64(len(m.records)-1), r)
}

// queue queues n events of size bytes at now and returns their ids.
func (m *model) queue(now time.Time, n, size int) []string {
	var ids []string
	for range n {
		m.n++
		m.tv++
		id := fmt.Sprintf("ev%03d", m.n)
		m.apply(&QueuedRecord{Type: TypeQueued, V: SchemaVersion, Event: id, TailnetVersion: m.tv, QueuedAt: now, Payload: payload(m.t, id, size)})
		ids = append(ids, id)
	}
	return ids
}

// step runs Step at now, logging abandonments, and returns the batch (nil
// if none) with its ID and start set.
func (m *model) step(now time.Time) (*Batch, Plan) {
	for {
		p := m.q.Step(now)
		if len(p.Abandon) > 0 {
			for _, r := range p.Abandon {
				m.apply(r)
			}
			continue
		}
		if p.Batch != nil {
			p.Batch.ID = fmt.Sprintf("at%d", len(m.records))
			p.Batch.Started = now
			p.Batch.BodyBytes = events.BatchSize(p.Batch.PayloadBytes, len(p.Batch.Events))
		}
		return p.Batch, p
	}
}

func (m *model) finish(b *Batch, ok bool, finished time.Time) *AttemptRecord {
	o := Outcome{StatusCode: 200}
	if !ok {
		o = Outcome{StatusCode: 500, ErrorClass: "status", Err: errors.New("answered 500")}
	}
	r := m.q.Finish(b, o, errText(o.Err), finished)
	m.apply(r)
	return r
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func (m *model) rebuilt() *Queue {
	q := NewQueue(m.q.retry, m.q.batch)
	for i, r := range m.records {
		q.Apply(uint64(i), r)
	}
	return q
}

func TestQueueLinger(t *testing.T) {
	m := newModel(t, RetryPolicy{}, BatchPolicy{})
	ids := m.queue(t0, 3, 0)
	if b, p := m.step(t0); b != nil || !p.Wake.Equal(at(DefaultBatchLinger)) {
		t.Fatalf("at t0: got batch %v, wake %v; want none, wake at t0+%v", b, p.Wake, DefaultBatchLinger)
	}
	if b, _ := m.step(at(DefaultBatchLinger - time.Millisecond)); b != nil {
		t.Fatalf("before the linger passed: got batch %v, want none", b.Events)
	}
	b, _ := m.step(at(DefaultBatchLinger))
	if b == nil || !slices.Equal(b.Events, ids) {
		t.Fatalf("after the linger: got %v, want %v", b, ids)
	}
	if b2, p := m.step(at(time.Hour)); b2 != nil || !p.Wake.IsZero() {
		t.Fatalf("with a batch in flight: got batch %v, wake %v; want nothing", b2, p.Wake)
	}
}

func TestQueueFullBatchGoesAtOnce(t *testing.T) {
	m := newModel(t, RetryPolicy{}, BatchPolicy{MaxEvents: 10})
	m.queue(t0, 25, 0)
	var sizes []int
	now := t0
	for {
		b, p := m.step(now)
		if b == nil {
			if p.Wake.IsZero() {
				break
			}
			now = p.Wake
			continue
		}
		sizes = append(sizes, len(b.Events))
		if len(sizes) <= 2 && !now.Equal(t0) {
			t.Fatalf("full batch %d sent at t0+%v, want at once", len(sizes), now.Sub(t0))
		}
		m.finish(b, true, now)
	}
	if want := []int{10, 10, 5}; !slices.Equal(sizes, want) {
		t.Fatalf("batch sizes %v, want %v", sizes, want)
	}
	if !now.Equal(at(DefaultBatchLinger)) {
		t.Fatalf("last, partial batch sent at t0+%v, want after the linger", now.Sub(t0))
	}
	if st := m.q.Stats(); st.Delivered != 25 || st.Pending != 0 {
		t.Fatalf("delivered %d, pending %d; want 25, 0", st.Delivered, st.Pending)
	}
}

func TestQueueMaxBytes(t *testing.T) {
	const size = 1000
	m := newModel(t, RetryPolicy{}, BatchPolicy{MaxBytes: 3500, Linger: -1})
	m.queue(t0, 4, size)
	big := m.queue(t0, 1, 5000)
	m.queue(t0, 2, size)
	var got [][]string
	for {
		b, _ := m.step(t0)
		if b == nil {
			break
		}
		if n := events.BatchSize(b.PayloadBytes, len(b.Events)); n > 3500 && len(b.Events) > 1 {
			t.Fatalf("batch %v has %d body bytes, more than 3500", b.Events, n)
		}
		if m.q.Oversize(b) != (len(b.Events) == 1 && b.Events[0] == big[0]) {
			t.Fatalf("Oversize(%v) = %v", b.Events, m.q.Oversize(b))
		}
		got = append(got, b.Events)
		m.finish(b, true, t0)
	}
	want := [][]string{{"ev001", "ev002", "ev003"}, {"ev004"}, {"ev005"}, {"ev006", "ev007"}}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Fatalf("batches %v, want %v (in queue order, the big one alone)", got, want)
	}
}

func TestQueueFailedTogetherRetryTogether(t *testing.T) {
	m := newModel(t, RetryPolicy{}, BatchPolicy{Linger: -1})
	ids := m.queue(t0, 3, 0)
	b, _ := m.step(t0)
	r := m.finish(b, false, t0)
	for _, o := range r.Outcomes {
		if o.Result != ResultRetry || !o.NextDue.Equal(at(time.Hour)) {
			t.Fatalf("outcome %+v, want retry at t0+1h", o)
		}
	}
	if b, p := m.step(at(59 * time.Minute)); b != nil || !p.Wake.Equal(at(time.Hour)) {
		t.Fatalf("before the slot: batch %v, wake %v; want none, t0+1h", b, p.Wake)
	}
	b, _ = m.step(at(time.Hour))
	if b == nil || !slices.Equal(b.Events, ids) {
		t.Fatalf("at t0+1h: got %v, want all of %v together", b, ids)
	}
}

func TestQueueOrderAndRideAlong(t *testing.T) {
	m := newModel(t, RetryPolicy{}, BatchPolicy{Linger: -1})
	a := m.queue(t0, 1, 0)
	b, _ := m.step(t0)
	m.finish(b, false, t0) // a due at t0+1h
	later := at(10 * time.Minute)
	c := m.queue(later, 1, 0)
	b, _ = m.step(later)
	m.finish(b, false, later) // c due at t0+1h10m
	fresh := m.queue(at(30*time.Minute), 1, 0)
	// Held back by a long linger would be sent at t0+30m; with no linger
	// it goes at once, alone.
	b, _ = m.step(at(30 * time.Minute))
	if !slices.Equal(b.Events, fresh) {
		t.Fatalf("got %v, want %v", b.Events, fresh)
	}
	m.finish(b, true, at(30*time.Minute))

	ride := m.queue(at(119*time.Minute), 1, 0)
	m.q.batch.Linger = time.Hour // so that ride is not due by itself
	b, _ = m.step(at(2 * time.Hour))
	want := append(append(slices.Clone(a), c...), ride...)
	if b == nil || !slices.Equal(b.Events, want) {
		t.Fatalf("got %v, want %v (by due time, then the fresh one riding along)", b, want)
	}
}

func TestQueueWindowClosedAbandons(t *testing.T) {
	m := newModel(t, RetryPolicy{}, BatchPolicy{Linger: -1})
	ids := m.queue(t0, 2, 0)
	b, _ := m.step(t0)
	m.finish(b, false, t0)
	p := m.q.Step(at(25 * time.Hour))
	if len(p.Abandon) != 1 || p.Batch != nil {
		t.Fatalf("after the window: got %+v, want one abandoned record and no batch", p)
	}
	r := p.Abandon[0]
	if r.Reason != ReasonWindowClosed || !slices.Equal(r.Events, ids) || !r.At.Equal(at(25*time.Hour)) {
		t.Fatalf("abandoned record %+v, want %v with reason %q", r, ids, ReasonWindowClosed)
	}
	m.apply(r)
	if st := m.q.Stats(); st.Pending != 0 || st.Abandoned != 2 || !st.NextDue.IsZero() {
		t.Fatalf("stats %+v, want nothing pending, 2 abandoned, no due time", st)
	}
}

func TestQueueLastSlotExhausts(t *testing.T) {
	m := newModel(t, RetryPolicy{Interval: time.Hour, Window: 2 * time.Hour}, BatchPolicy{Linger: -1})
	m.queue(t0, 1, 0)
	now := t0
	var last *AttemptRecord
	for i := 0; ; {
		b, p := m.step(now)
		if b == nil {
			if p.Wake.IsZero() {
				break
			}
			now = p.Wake
			continue
		}
		if want := at(time.Duration(i) * time.Hour); !now.Equal(want) {
			t.Fatalf("attempt %d at t0+%v, want t0+%v", i+1, now.Sub(t0), want.Sub(t0))
		}
		last = m.finish(b, false, now)
		i++
	}
	if st := m.q.Stats(); st.Attempts != 3 || st.Abandoned != 1 {
		t.Fatalf("attempts %d, abandoned %d; want 3, 1", st.Attempts, st.Abandoned)
	}
	if o := last.Outcomes[0]; o.Result != ResultAbandoned || o.Reason != ReasonWindowExhausted {
		t.Fatalf("last outcome %+v, want abandoned: %s", o, ReasonWindowExhausted)
	}
}

func TestQueueDuplicatesAndHighest(t *testing.T) {
	q := NewQueue(RetryPolicy{}, BatchPolicy{})
	if _, ok := q.HighestQueued(); ok {
		t.Fatal("empty queue reports a highest version")
	}
	p := payload(t, "a", 0)
	q.Apply(0, &QueuedRecord{Event: "a", TailnetVersion: 7, QueuedAt: t0, Payload: p})
	q.Apply(1, &QueuedRecord{Event: "a", TailnetVersion: 9, QueuedAt: t0, Payload: p})
	if h, _ := q.HighestQueued(); h != 9 || q.Len() != 1 {
		t.Fatalf("highest %d, len %d; want 9, 1 (the same event id is queued once)", h, q.Len())
	}
}

// TestQueueRebuildEqualsLive checks, over random runs, that replaying the
// records gives the live state, and that every attempt is on its event's
// grid (or a collapse of missed slots) and within its window.
func TestQueueRebuildEqualsLive(t *testing.T) {
	pol := RetryPolicy{Interval: time.Hour, Window: 5 * time.Hour}
	rapid.Check(t, func(rt *rapid.T) {
		m := newModel(t, pol, BatchPolicy{MaxEvents: 3})
		now := t0
		var inflight *Batch
		t0s := map[string]time.Time{}
		for range rapid.IntRange(1, 60).Draw(rt, "ops") {
			switch rapid.IntRange(0, 3).Draw(rt, "op") {
			case 0:
				m.queue(now, rapid.IntRange(1, 4).Draw(rt, "n"), 0)
			case 1: // time passes: to the next wake, or by a random amount
				if _, ok := m.q.NextDue(); ok && rapid.Bool().Draw(rt, "toWake") {
					if w, _ := m.q.NextDue(); w.After(now) {
						now = w
					}
				} else {
					now = now.Add(time.Duration(rapid.Int64Range(0, int64(3*time.Hour)).Draw(rt, "d")))
				}
			}
			if inflight == nil {
				b, _ := m.step(now)
				inflight = b
				if b != nil {
					for _, id := range b.Events {
						if _, ok := t0s[id]; !ok {
							t0s[id] = now
						}
						first := t0s[id]
						if now.After(first.Add(pol.Window).Add(MaxDispatchLateness)) {
							rt.Fatalf("%s attempted at t0+%v, past its window", id, now.Sub(first))
						}
					}
				}
			} else if rapid.Bool().Draw(rt, "finish") {
				m.finish(inflight, rapid.Bool().Draw(rt, "ok"), now)
				inflight = nil
			}
			if inflight == nil {
				if got, want := snapshot(m.rebuilt()), snapshot(m.q); got != want {
					rt.Fatalf("rebuilt state differs from live:\n got %s\nwant %s", got, want)
				}
			}
		}
	})
}

func snapshot(q *Queue) string {
	ids := make([]string, 0, len(q.events))
	for id := range q.events {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	var b strings.Builder
	for _, id := range ids {
		e := q.events[id]
		fmt.Fprintf(&b, "%s t0=%v last=%v n=%d due=%v ex=%v st=%d; ", id, e.t0.Sub(t0), e.lastStart.Sub(t0), e.attempts, e.due.Sub(t0), e.exhausted, e.state)
	}
	st := q.Stats()
	st.LastAttempt = nil
	fmt.Fprintf(&b, "stats=%+v", st)
	return b.String()
}

func TestFinishGroupsOutcomes(t *testing.T) {
	m := newModel(t, RetryPolicy{Interval: time.Hour, Window: 2 * time.Hour}, BatchPolicy{Linger: -1})
	old := m.queue(t0, 2, 0)
	b, _ := m.step(t0)
	m.finish(b, false, t0)
	b, _ = m.step(at(time.Hour))
	m.finish(b, false, at(time.Hour))
	fresh := m.queue(at(2*time.Hour), 1, 0)
	b, _ = m.step(at(2 * time.Hour)) // old ones in their last slot, the fresh one first
	r := m.finish(b, false, at(2*time.Hour))
	want := []EventOutcome{
		{Result: ResultAbandoned, Reason: ReasonWindowExhausted, Events: old},
		{Result: ResultRetry, NextDue: at(3 * time.Hour), Events: fresh},
	}
	if !slices.EqualFunc(r.Outcomes, want, func(a, b EventOutcome) bool {
		return a.Result == b.Result && a.NextDue.Equal(b.NextDue) && a.Reason == b.Reason && slices.Equal(a.Events, b.Events)
	}) {
		t.Fatalf("outcomes %+v, want %+v", r.Outcomes, want)
	}
	if o, ok := r.OutcomeOf(fresh[0]); !ok || o.Result != ResultRetry {
		t.Fatalf("OutcomeOf(%s) = %+v, %v; want retry", fresh[0], o, ok)
	}
}
