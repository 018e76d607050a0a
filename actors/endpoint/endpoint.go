package endpoint

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
)

// Defaults for the zero values of RetryPolicy and BatchPolicy.
const (
	DefaultRetryInterval  = time.Hour
	DefaultRetryWindow    = 24 * time.Hour
	DefaultBatchMaxEvents = 100
	DefaultBatchMaxBytes  = 1 << 20
	DefaultBatchLinger    = 100 * time.Millisecond
)

// Limits and timings of the actor.
const (
	// MaxDispatchLateness is how late an attempt may start after its slot
	// and still count as that slot's attempt (timer and scheduling
	// jitter). It matters only at the end of the window: the last slot,
	// t0+Window, may start up to this much later; any other late attempt
	// must start by t0+Window.
	MaxDispatchLateness = time.Second
	// StorageRetryMin and StorageRetryMax bound the delay before a failed
	// log write or read is tried again (doubling from min to max).
	StorageRetryMin = time.Second
	StorageRetryMax = time.Minute
	// RebuildPageSize is how many records one ReadStream call of a rebuild
	// reads.
	RebuildPageSize = 4096
	// MaxErrorText is how much of an attempt's error text the attempt
	// record keeps.
	MaxErrorText = 256
	// MaxRestarts within RestartWindow is how often SupervisorStrategy
	// restarts a failing endpoint actor before it stops it.
	MaxRestarts   = 10
	RestartWindow = 10 * time.Second
)

// StreamPrefix starts the name of every endpoint stream.
const StreamPrefix = "endpoint-"

// StreamName is the log stream an endpoint's actor owns.
func StreamName(endpointID string) string { return StreamPrefix + endpointID }

// RetryPolicy is the retry schedule: an event first attempted at t0 is
// attempted at t0 + k·Interval for k = 0..Window/Interval, then abandoned.
// Zero fields take the defaults (1h, 24h).
type RetryPolicy struct{ Interval, Window time.Duration }

// BatchPolicy bounds one POST: at most MaxEvents events and MaxBytes body
// bytes (an event bigger than MaxBytes alone is sent alone). A new event
// waits at most Linger for others to join it. Zero fields take the
// defaults (100, 1 MiB, 100ms); a negative Linger means no wait.
type BatchPolicy struct {
	MaxEvents int
	MaxBytes  int
	Linger    time.Duration
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Interval <= 0 {
		p.Interval = DefaultRetryInterval
	}
	if p.Window <= 0 {
		p.Window = DefaultRetryWindow
	}
	return p
}

func (p BatchPolicy) withDefaults() BatchPolicy {
	if p.MaxEvents <= 0 {
		p.MaxEvents = DefaultBatchMaxEvents
	}
	if p.MaxBytes <= 0 {
		p.MaxBytes = DefaultBatchMaxBytes
	}
	switch {
	case p.Linger == 0:
		p.Linger = DefaultBatchLinger
	case p.Linger < 0:
		p.Linger = 0
	}
	return p
}

// Delivery is one POST to an endpoint.
type Delivery struct {
	URL    string
	Body   []byte
	Header http.Header
}

// Outcome is what came of a Delivery.
type Outcome struct {
	StatusCode    int
	ErrorClass    string
	Err           error
	ResponseBytes int64
}

// OK reports whether the endpoint accepted the delivery: a 2xx status and
// no error. A 3xx is a failure (redirects are never followed).
func (o Outcome) OK() bool {
	return o.Err == nil && o.StatusCode >= 200 && o.StatusCode <= 299
}

// Publisher makes one delivery attempt. It must return (with an Outcome)
// within a bounded time and honour ctx; it is called from its own
// goroutine, one call at a time per endpoint.
type Publisher interface {
	Publish(ctx context.Context, d Delivery) Outcome
}

// Notification is one event for one endpoint, as the tailnet stream holds
// it.
type Notification struct {
	EventID        string // stable id, the same on every attempt (it is already inside Payload as "id")
	TailnetVersion uint64 // version of the notification record in the tailnet stream
	Payload        []byte // the event's exact wire bytes; not modified, and not to be modified by the sender
}

// Settings are an endpoint's current configuration.
type Settings struct {
	ID, Tailnet, URL, ProviderType string
	// Secrets are the plaintext signing secrets, current first; every
	// attempt is signed with all of them (rotation overlap).
	Secrets []string
	// CreatedVersion is the tailnet-stream version of the endpoint's
	// creation record: catch-up starts after it.
	CreatedVersion uint64
	// Deleted means the endpoint was deleted: accept nothing new, deliver
	// what is pending, then stop.
	Deleted bool
	// DeletedVersion is the tailnet-stream version of the deletion record.
	// With Deleted, notifications with a TailnetVersion below it were raised
	// before the deletion and are still accepted. When it is 0, a deleted
	// endpoint still accepts what Backlog returns (the tailnet stream
	// targets an endpoint only while it exists) but no Notify.
	DeletedVersion uint64
}

// Config is what an endpoint actor needs besides its settings.
type Config struct {
	Log       eventlog.Log
	Clock     clock.Clock
	Publisher Publisher
	Retry     RetryPolicy
	Batch     BatchPolicy
	Logger    *slog.Logger
	// Backlog returns the notifications for endpoint id that its tailnet
	// stream holds after version `after`, in version order. The actor calls
	// it on start, and after a failed queued-append, to heal a crash
	// between "notification logged" and "queued".
	Backlog func(ctx context.Context, endpointID string, after uint64) ([]Notification, error)
}

// Messages an endpoint actor takes (send them as pointers).
type (
	// Notify queues notifications (fire-and-forget, in TailnetVersion order).
	// Notifications whose TailnetVersion is not above the highest already
	// queued are duplicates and are dropped.
	Notify struct{ Notifications []Notification }
	// UpdateSettings replaces the settings (URL, secrets, provider type
	// changed, or Deleted set). The next attempt uses them.
	UpdateSettings struct{ Settings Settings }
	// GetStatus asks for a *Status.
	GetStatus struct{}
)

// Status is an endpoint actor's answer to GetStatus.
type Status struct {
	Pending        int            `json:"pending"`                 // events queued and not yet delivered or abandoned
	InFlight       bool           `json:"inFlight"`                // a POST is in flight (or its outcome awaits logging)
	Delivered      uint64         `json:"delivered"`               // events delivered since the endpoint was created
	Abandoned      uint64         `json:"abandoned"`               // events abandoned since the endpoint was created
	Attempts       uint64         `json:"attempts"`                // POSTs made (attempts logged)
	NextDue        time.Time      `json:"nextDue,omitzero"`        // earliest due time of a pending event; zero if none
	LastAttempt    *AttemptRecord `json:"lastAttempt,omitempty"`   // the last attempt logged; nil if none
	Ready          bool           `json:"ready"`                   // the stream has been read since the actor started
	StorageRetryAt time.Time      `json:"storageRetryAt,omitzero"` // when a failed log write or read is next tried; zero if none failed
}

// SupervisorStrategy is how a parent should supervise endpoint actors
// (actor.WithSupervisor on the parent's props): restart on failure (the
// new incarnation rebuilds from the log), at most MaxRestarts times within
// RestartWindow, then stop. Failures are panics and stale-state version
// conflicts; storage outages are retried inside the actor and never fail it.
func SupervisorStrategy() actor.SupervisorStrategy {
	return actor.NewOneForOneStrategy(MaxRestarts, RestartWindow, actor.DefaultDecider)
}
