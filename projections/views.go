package projections

import (
	"time"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/eventlog"
)

// Outcome is where an event stands at one endpoint.
type Outcome string

// Outcomes of an event at an endpoint.
const (
	// Pending: neither delivered nor abandoned yet. An event raised for an
	// endpoint but not (yet) queued there is pending too.
	Pending Outcome = "pending"
	// Delivered: an attempt got a 2xx.
	Delivered Outcome = endpoint.ResultDelivered
	// Abandoned: the retry window ended without a delivery.
	Abandoned Outcome = endpoint.ResultAbandoned
)

// Attempt is one POST to an endpoint, as its attempt record logged it.
type Attempt struct {
	ID       string    `json:"attempt"`
	Started  time.Time `json:"started"`
	Finished time.Time `json:"finished"`
	// Status is the response status; 0 if none was received.
	Status int `json:"status,omitempty"`
	// ErrorClass is the publisher's short error class; "" on success.
	ErrorClass string `json:"errorClass,omitempty"`
	// Error is the logged error text (short, secrets and URL redacted).
	Error string `json:"error,omitempty"`
	// Events is how many events the POST carried.
	Events int `json:"events"`
}

// OK reports whether the attempt delivered its events: a 2xx and no error.
func (a Attempt) OK() bool {
	return a.Error == "" && a.ErrorClass == "" && a.Status >= 200 && a.Status <= 299
}

// EventAttempt is an attempt as it concerned one event.
type EventAttempt struct {
	Attempt
	// Result is endpoint.ResultDelivered, ResultRetry or ResultAbandoned.
	Result string `json:"result"`
	// NextDue is the slot of the next attempt (ResultRetry only).
	NextDue time.Time `json:"nextDue,omitzero"`
}

// Delivery is the history of one event at one endpoint.
type Delivery struct {
	Endpoint string `json:"endpoint"`
	// Target says the event's notification named the endpoint. False only
	// in an unusual log: the endpoint's stream names an event whose
	// notification did not target it, or was not read.
	Target   bool      `json:"target"`
	Queued   bool      `json:"queued"`
	QueuedAt time.Time `json:"queuedAt,omitzero"`
	// Attempts are every attempt that carried the event, in log order.
	Attempts []EventAttempt `json:"attempts"`
	Outcome  Outcome        `json:"outcome"`
	// Reason says why the event was abandoned.
	Reason string `json:"reason,omitempty"`
	// DecidedAt is when the outcome became final: the end of the
	// delivering (or last) attempt, or the time of the abandoned record.
	DecidedAt time.Time `json:"decidedAt,omitzero"`
}

// EventHistory is everything the log says about one event.
type EventHistory struct {
	ID      string `json:"id"`
	Type    string `json:"type"`
	Tailnet string `json:"tailnet"`
	// Raised is the position of the notification record in the log; 0 if
	// the view has not seen it (Type is then "" too).
	Raised eventlog.Position `json:"raised"`
	// Endpoints are the event's targets in the notification's order, then
	// any other endpoint whose stream names the event.
	Endpoints []Delivery `json:"endpoints"`
}

// EndpointSummary is an endpoint's delivery counters. Pending, Delivered,
// Abandoned and Attempts mean what they mean in the endpoint actor's
// status (endpoint.Status), and agree with it once both have read the
// same records.
type EndpointSummary struct {
	ID      string `json:"endpointId"`
	Tailnet string `json:"tailnet,omitempty"`
	// Queued counts events queued for the endpoint.
	Queued    uint64 `json:"queued"`
	Delivered uint64 `json:"delivered"`
	Abandoned uint64 `json:"abandoned"`
	// Pending counts events queued and neither delivered nor abandoned.
	Pending int `json:"pending"`
	// Attempts counts POSTs logged; FailedAttempts those without a 2xx.
	Attempts       uint64 `json:"attempts"`
	FailedAttempts uint64 `json:"failedAttempts"`
	// LastAttempt is the last attempt logged; nil if none.
	LastAttempt *Attempt `json:"lastAttempt,omitempty"`
}

// Endpoint returns the counters of endpoint id. An endpoint the log has
// said nothing about has zero counters.
func (d *Deliveries) Endpoint(id string) EndpointSummary {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ep := d.endpoints[id]
	if ep == nil {
		return EndpointSummary{ID: id}
	}
	s := EndpointSummary{
		ID: ep.id, Tailnet: ep.tailnet,
		Queued: ep.queued, Delivered: ep.delivered, Abandoned: ep.abandoned, Pending: ep.pending,
		Attempts: ep.attempts, FailedAttempts: ep.failed,
	}
	if ep.last != nil {
		last := *ep.last
		s.LastAttempt = &last
	}
	return s
}

// Event returns the history of event id; the zero EventHistory (ID "") if
// the view has seen nothing of it.
func (d *Deliveries) Event(id string) EventHistory {
	d.mu.RLock()
	defer d.mu.RUnlock()
	ev := d.events[id]
	if ev == nil {
		return EventHistory{}
	}
	return d.history(ev)
}

// Events calls yield with the history of every event in the order the view
// first saw them, which is raise order (a notification precedes its queued
// records in the log), until yield returns false. Events applied while it
// runs may or may not be included. It holds no lock while yield runs, so
// yield may query the view. `for h := range d.Events` works.
func (d *Deliveries) Events(yield func(EventHistory) bool) {
	d.mu.RLock()
	n := len(d.order)
	d.mu.RUnlock()
	for i := range n {
		d.mu.RLock()
		h := d.history(d.order[i])
		d.mu.RUnlock()
		if !yield(h) {
			return
		}
	}
}

// history builds an event's history; d.mu must be held.
func (d *Deliveries) history(ev *eventState) EventHistory {
	h := EventHistory{ID: ev.id, Type: ev.typ, Tailnet: ev.tailnet, Raised: ev.raised, Endpoints: make([]Delivery, 0, len(ev.endpoints))}
	for i, id := range ev.endpoints {
		del := Delivery{Endpoint: id, Target: i < ev.targets, Outcome: Pending, Attempts: []EventAttempt{}}
		if ep := d.endpoints[id]; ep != nil {
			if c := ep.chains[ev.id]; c != nil {
				del.Queued, del.QueuedAt = c.queued, c.queuedAt
				if c.outcome != "" {
					del.Outcome, del.Reason, del.DecidedAt = c.outcome, c.reason, c.at
				}
				del.Attempts = make([]EventAttempt, len(c.attempts))
				for j, a := range c.attempts {
					del.Attempts[j] = EventAttempt{Attempt: *a.attempt, Result: a.result, NextDue: a.nextDue}
				}
			}
		}
		h.Endpoints = append(h.Endpoints, del)
	}
	return h
}
