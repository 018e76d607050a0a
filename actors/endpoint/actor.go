package endpoint

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/asynkron/protoactor-go/ctxext"

	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/signer"
)

// ErrorClassPayload is the error class of an attempt whose body could not
// be built from its events (a chat provider could not read an event).
const ErrorClassPayload = "payload"

// redacted replaces secrets and URL paths in error texts.
const redacted = "[redacted]"

// Props returns the props of the actor of one endpoint. Spawn each Props
// once; its parent should supervise it with SupervisorStrategy.
func Props(cfg Config, s Settings) *actor.Props {
	cfg.Retry = cfg.Retry.withDefaults()
	cfg.Batch = cfg.Batch.withDefaults()
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return actor.PropsFromProducer(
		func() actor.Actor { return &endpointActor{cfg: cfg} },
		// What must survive a restart (a panic, or a stale stream version)
		// lives in a context extension: the latest settings, the request in
		// flight, the timer generation, the context of requests and reads.
		actor.WithOnInit(func(ctx actor.Context) { ctx.Set(newShared(s)) }),
	)
}

// Internal messages.
type (
	// wake is sent by the one timer; gen tells a stale one from the current.
	wake struct{ gen uint64 }
	// attemptDone carries a POST's outcome back to the actor.
	attemptDone struct {
		batch    *Batch
		outcome  Outcome
		finished time.Time
	}
)

// shared is the state an actor's incarnations share.
type shared struct {
	mu       sync.Mutex
	settings Settings
	gen      uint64
	inflight *Batch
	ctx      context.Context
	cancel   context.CancelFunc
}

var sharedID = ctxext.NextContextExtensionID()

func newShared(s Settings) *shared {
	ctx, cancel := context.WithCancel(context.Background())
	return &shared{settings: s, ctx: ctx, cancel: cancel}
}

func (sh *shared) ExtensionID() ctxext.ContextExtensionID { return sharedID }

func (sh *shared) getSettings() Settings {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.settings
}

func (sh *shared) setSettings(s Settings) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.settings = s
}

func (sh *shared) nextGen() uint64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.gen++
	return sh.gen
}

func (sh *shared) currentGen() uint64 {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.gen
}

func (sh *shared) setInflight(b *Batch) {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.inflight = b
}

func (sh *shared) getInflight() *Batch {
	sh.mu.Lock()
	defer sh.mu.Unlock()
	return sh.inflight
}

// endpointActor wraps a Queue with the log, the clock and the publisher.
type endpointActor struct {
	cfg    Config
	sh     *shared
	log    *slog.Logger
	stream string

	q       *Queue
	version int64 // version of the stream's last record; -1 when empty
	ready   bool  // the stream has been read
	stopped bool

	timer   clock.Timer
	timerAt time.Time

	// Storage trouble: what waits for the log to work again.
	held        *AttemptRecord // an outcome not yet logged
	early       *attemptDone   // an outcome that arrived before the rebuild finished
	needBacklog bool           // queue what Backlog returns (start, or a failed queued-append)
	buffered    []Notification // notifications to queue when there is no Backlog
	failures    int
	retryAt     time.Time
}

// Receive is the actor's one message switch.
func (a *endpointActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.start(ctx)
	case *actor.Stopping:
		a.stop()
		return
	case *actor.Restarting:
		// The next incarnation rebuilds from the log and adopts the
		// request in flight; only the timer goes.
		a.stopTimer()
		return
	case *actor.Stopped:
		return
	case *Notify:
		a.notify(ctx, m.Notifications)
	case *UpdateSettings:
		a.updateSettings(m.Settings)
	case *GetStatus:
		ctx.Respond(a.status())
		return
	case *wake:
		if a.timer == nil || m.gen != a.sh.currentGen() {
			return // stale
		}
		a.timer, a.timerAt = nil, time.Time{}
		if !a.retryAt.IsZero() && !a.now().Before(a.retryAt) {
			a.retryAt = time.Time{}
			a.repair(ctx)
		}
	case *attemptDone:
		a.attemptDone(ctx, m)
	default:
		a.log.Debug("endpoint actor ignored a message", "type", fmt.Sprintf("%T", m))
		return
	}
	a.drive(ctx)
}

func (a *endpointActor) now() time.Time { return a.cfg.Clock.Now() }

func (a *endpointActor) start(ctx actor.Context) {
	a.sh = ctx.Get(sharedID).(*shared)
	id := a.sh.getSettings().ID
	a.stream = StreamName(id)
	a.log = a.cfg.Logger.With("endpoint", id)
	a.q = NewQueue(a.cfg.Retry, a.cfg.Batch)
	a.version = -1
	a.needBacklog = true
	a.repair(ctx)
}

func (a *endpointActor) stop() {
	a.stopped = true
	a.stopTimer()
	a.sh.cancel() // an outcome arriving after this is dropped, unlogged
}

// repair does what start and storage trouble left undone, in order:
// rebuild, log the held outcome, catch up. It stops at the first failure,
// which schedules the next try.
func (a *endpointActor) repair(ctx actor.Context) {
	if !a.ready {
		if err := a.rebuild(); err != nil {
			a.storageFailed("read stream", err)
			return
		}
		if b := a.sh.getInflight(); b != nil {
			a.q.Adopt(b)
		}
		if m := a.early; m != nil {
			a.early = nil
			a.attemptDone(ctx, m)
		}
	}
	if a.held != nil && !a.persistAttempt(a.held) {
		return
	}
	if !a.catchUp() {
		return
	}
	a.failures = 0
}

// rebuild reads the whole stream into a new Queue.
func (a *endpointActor) rebuild() error {
	q := NewQueue(a.cfg.Retry, a.cfg.Batch)
	version := int64(-1)
	err := eventlog.ForEachInStream(a.sh.ctx, a.cfg.Log, a.stream, 0, RebuildPageSize, func(rec eventlog.Record) error {
		r, err := DecodeRecord(rec)
		if err != nil {
			// A record that cannot be read is skipped, not fatal: the
			// rest of the endpoint's deliveries go on.
			a.log.Error("skipping an unreadable record", "version", rec.Version, "err", err)
		} else if r == nil {
			a.log.Debug("skipping a record of an unknown type", "version", rec.Version, "type", rec.Type)
		}
		q.Apply(rec.Version, r)
		version = int64(rec.Version)
		return nil
	})
	if err != nil {
		return err
	}
	a.q, a.version, a.ready = q, version, true
	st := q.Stats()
	a.log.Debug("endpoint rebuilt", "records", version+1, "pending", st.Pending, "delivered", st.Delivered, "abandoned", st.Abandoned)
	return nil
}

// catchUp queues what Backlog returns after the highest version queued,
// and anything buffered for want of a Backlog.
func (a *endpointActor) catchUp() bool {
	if a.needBacklog && a.cfg.Backlog != nil {
		s := a.sh.getSettings()
		after := s.CreatedVersion
		if h, ok := a.q.HighestQueued(); ok && h > after {
			after = h
		}
		ns, err := a.cfg.Backlog(a.sh.ctx, s.ID, after)
		if err != nil {
			a.storageFailed("read backlog", err)
			return false
		}
		if !a.queue(ns, true) {
			return false
		}
	}
	a.needBacklog = false
	if len(a.buffered) > 0 {
		ns := a.buffered
		a.buffered = nil
		if !a.queue(ns, false) {
			return false
		}
	}
	return true
}

func (a *endpointActor) notify(_ actor.Context, ns []Notification) {
	switch {
	case a.cfg.Backlog == nil && (!a.ready || !a.retryAt.IsZero() || len(a.buffered) > 0):
		// Keep the order: these go after what is already waiting.
		a.buffered = append(a.buffered, ns...)
	case !a.ready || a.needBacklog:
		// Backlog will return these (the tailnet logged them before it sent
		// them); queueing them now would skip the versions still missing.
	case !a.retryAt.IsZero():
		a.needBacklog = true
	default:
		a.queue(ns, false)
	}
}

// queue logs one queued record per new notification, in one append, then
// adds them to the queue. Duplicates (a TailnetVersion not above the
// highest queued) are dropped. On failure it arranges a retry.
func (a *endpointActor) queue(ns []Notification, fromBacklog bool) bool {
	if len(ns) == 0 {
		return true
	}
	ns = slices.Clone(ns)
	slices.SortStableFunc(ns, func(x, y Notification) int {
		switch {
		case x.TailnetVersion < y.TailnetVersion:
			return -1
		case x.TailnetVersion > y.TailnetVersion:
			return 1
		}
		return 0
	})
	s := a.sh.getSettings()
	last, has := a.q.HighestQueued()
	now := a.now()
	var (
		recs    []*QueuedRecord
		evs     []eventlog.Event
		refused int
	)
	for _, n := range ns {
		if has && n.TailnetVersion <= last {
			continue
		}
		if s.Deleted && !acceptDeleted(s, n, fromBacklog) {
			refused++
			continue
		}
		r := &QueuedRecord{Type: TypeQueued, V: SchemaVersion, Event: n.EventID, TailnetVersion: n.TailnetVersion, QueuedAt: now, Payload: n.Payload}
		ev, err := encodeRecord(TypeQueued, r)
		if err != nil {
			a.log.Error("dropping a notification that cannot be encoded", "event", n.EventID, "err", err)
			continue
		}
		recs, evs = append(recs, r), append(evs, ev)
		last, has = n.TailnetVersion, true
	}
	if refused > 0 {
		a.log.Info("endpoint deleted: refused new notifications", "count", refused)
	}
	if len(evs) == 0 {
		return true
	}
	res, err := a.append(evs)
	if err != nil {
		if a.cfg.Backlog != nil {
			a.needBacklog = true
		} else {
			a.buffered = append(ns, a.buffered...)
		}
		a.storageFailed("append queued records", err)
		return false
	}
	first := res.Version + 1 - uint64(len(evs))
	for i, r := range recs {
		a.q.Apply(first+uint64(i), r)
	}
	return true
}

// acceptDeleted reports whether a deleted endpoint still queues n.
func acceptDeleted(s Settings, n Notification, fromBacklog bool) bool {
	if s.DeletedVersion > 0 {
		return n.TailnetVersion < s.DeletedVersion
	}
	return fromBacklog
}

// append appends to the stream at the version the actor believes current.
// A version conflict means the state is stale: the actor fails and its
// supervisor restarts it, which rebuilds from the log.
func (a *endpointActor) append(evs []eventlog.Event) (eventlog.AppendResult, error) {
	expected := eventlog.NoStream
	if a.version >= 0 {
		expected = eventlog.Exact(uint64(a.version))
	}
	res, err := a.cfg.Log.Append(a.sh.ctx, a.stream, expected, evs...)
	if err != nil {
		var wv *eventlog.WrongVersionError
		if errors.As(err, &wv) {
			panic(fmt.Errorf("endpoint %s: state is stale, restarting to rebuild: %w", a.sh.getSettings().ID, err))
		}
		return res, err
	}
	a.version = int64(res.Version)
	return res, nil
}

func (a *endpointActor) updateSettings(s Settings) {
	old := a.sh.getSettings()
	if s.ID != old.ID {
		a.log.Error("settings of another endpoint ignored", "other", s.ID)
		return
	}
	a.sh.setSettings(s)
	if s.Deleted && !old.Deleted {
		a.log.Info("endpoint deleted: delivering what is pending, then stopping", "pending", a.q.Len())
	}
}

// drive runs the step until it has nothing more to do now, then arms the
// timer for the next thing.
func (a *endpointActor) drive(ctx actor.Context) {
	if a.stopped {
		return
	}
	if a.ready && a.retryAt.IsZero() {
		for {
			plan := a.q.Step(a.now())
			if len(plan.Abandon) > 0 {
				if !a.persistAbandoned(plan.Abandon) {
					break
				}
				continue
			}
			if plan.Batch != nil {
				a.send(ctx, plan.Batch)
			}
			break
		}
		if a.retiring() {
			a.log.Info("deleted endpoint has nothing left to deliver; stopping")
			a.stop()
			ctx.Stop(ctx.Self())
			return
		}
	}
	a.arm(ctx)
}

func (a *endpointActor) retiring() bool {
	return a.sh.getSettings().Deleted && a.ready && a.q.Len() == 0 && a.q.InFlight() == nil &&
		a.held == nil && !a.needBacklog && len(a.buffered) == 0
}

func (a *endpointActor) persistAbandoned(recs []*AbandonedRecord) bool {
	evs := make([]eventlog.Event, 0, len(recs))
	for _, r := range recs {
		ev, err := encodeRecord(TypeAbandoned, r)
		if err != nil {
			a.storageFailed("encode abandoned record", err)
			return false
		}
		evs = append(evs, ev)
	}
	if _, err := a.append(evs); err != nil {
		a.storageFailed("append abandoned record", err)
		return false
	}
	for _, r := range recs {
		a.q.Apply(0, r)
		a.log.Warn("events abandoned", "count", len(r.Events), "reason", r.Reason)
	}
	return true
}

func (a *endpointActor) persistAttempt(r *AttemptRecord) bool {
	ev, err := encodeRecord(TypeAttempt, r)
	if err == nil {
		_, err = a.append([]eventlog.Event{ev})
	}
	if err != nil {
		a.held = r
		a.storageFailed("append attempt record", err)
		return false
	}
	a.held = nil
	a.q.Apply(0, r)
	return true
}

// send POSTs b from its own goroutine; the outcome comes back as a message.
func (a *endpointActor) send(ctx actor.Context, b *Batch) {
	s := a.sh.getSettings()
	now := a.now()
	b.ID = "at_" + rand.Text()
	b.Started = now
	a.sh.setInflight(b)
	if a.q.Oversize(b) {
		a.log.Warn("event bigger than the batch byte limit; sending it alone", "event", b.Events[0], "bytes", b.PayloadBytes, "limit", a.cfg.Batch.MaxBytes)
	}
	pid, root := ctx.Self(), ctx.ActorSystem().Root
	body, err := events.Body(s.ProviderType, b.Payloads)
	if err != nil {
		root.Send(pid, &attemptDone{batch: b, outcome: Outcome{ErrorClass: ErrorClassPayload, Err: fmt.Errorf("build body: %w", err)}, finished: now})
		return
	}
	b.BodyBytes = len(body)
	if len(s.Secrets) == 0 {
		a.log.Warn("endpoint has no signing secret; the attempt is unsigned")
	}
	header := http.Header{}
	header.Set("Content-Type", "application/json")
	header.Set(signer.HeaderName, signer.Sign(body, now, s.Secrets...))
	d := Delivery{URL: s.URL, Body: body, Header: header}
	pub, clk, rctx := a.cfg.Publisher, a.cfg.Clock, a.sh.ctx
	go func() {
		var o Outcome
		func() {
			defer func() {
				if r := recover(); r != nil {
					o = Outcome{ErrorClass: "panic", Err: errors.New("publisher panicked")}
				}
			}()
			o = pub.Publish(rctx, d)
		}()
		root.Send(pid, &attemptDone{batch: b, outcome: o, finished: clk.Now()})
	}()
}

func (a *endpointActor) attemptDone(_ actor.Context, m *attemptDone) {
	if a.stopped {
		return
	}
	if !a.ready {
		a.early = m // handled once the rebuild has adopted the batch
		return
	}
	if a.sh.getInflight() == m.batch {
		a.sh.setInflight(nil)
	}
	if cur := a.q.InFlight(); cur == nil || cur.ID != m.batch.ID {
		a.log.Warn("outcome of an unknown attempt ignored", "attempt", m.batch.ID)
		return
	}
	var errText string
	if m.outcome.Err != nil {
		errText = scrub(m.outcome.Err.Error(), a.sh.getSettings())
	}
	r := a.q.Finish(m.batch, m.outcome, errText, m.finished)
	if r.OK() {
		a.log.Debug("delivered", "attempt", r.ID, "events", len(r.Events), "status", r.StatusCode)
	} else {
		a.log.Warn("delivery attempt failed", "attempt", r.ID, "events", len(r.Events),
			"status", r.StatusCode, "class", r.ErrorClass, "err", r.Error)
	}
	a.persistAttempt(r)
}

// scrub removes the endpoint's secrets and its URL's path and query from
// an error text (chat webhook URLs carry tokens in the path).
func scrub(text string, s Settings) string {
	var olds []string
	if s.URL != "" {
		olds = append(olds, s.URL)
		if u, err := url.Parse(s.URL); err == nil {
			if p := u.EscapedPath(); len(p) > 1 {
				olds = append(olds, p)
			}
			if u.RawQuery != "" {
				olds = append(olds, u.RawQuery)
			}
		}
	}
	for _, sec := range s.Secrets {
		if sec != "" {
			olds = append(olds, sec)
		}
	}
	for _, o := range olds {
		text = strings.ReplaceAll(text, o, redacted)
	}
	return text
}

// storageFailed schedules the next try of what failed, with a capped
// doubling delay from the injected clock.
func (a *endpointActor) storageFailed(op string, err error) {
	a.failures++
	d := storageRetryDelay(a.failures)
	a.retryAt = a.now().Add(d)
	a.log.Warn("event log unavailable; will retry", "op", op, "err", err, "retry_in", d)
}

// storageRetryDelay is the delay before the n-th retry (n >= 1).
func storageRetryDelay(n int) time.Duration {
	d := StorageRetryMin
	for i := 1; i < n && d < StorageRetryMax; i++ {
		d *= 2
	}
	return min(d, StorageRetryMax)
}

// arm keeps the one timer set for the next thing to do: the storage retry
// if one is pending, else the earliest due event (none while a request is
// in flight: its outcome comes first).
func (a *endpointActor) arm(ctx actor.Context) {
	var at time.Time
	switch {
	case !a.retryAt.IsZero():
		at = a.retryAt
	case a.ready && a.q.InFlight() == nil:
		at, _ = a.q.NextDue()
	}
	if a.timer != nil && at.Equal(a.timerAt) {
		return
	}
	a.stopTimer()
	if at.IsZero() {
		return
	}
	gen := a.sh.nextGen()
	pid, root := ctx.Self(), ctx.ActorSystem().Root
	a.timerAt = at
	if d := at.Sub(a.now()); d > 0 {
		a.timer = a.cfg.Clock.AfterFunc(d, func() { root.Send(pid, &wake{gen: gen}) })
		return
	}
	a.timer = sentWake{}
	root.Send(pid, &wake{gen: gen})
}

// sentWake stands for a wake already sent.
type sentWake struct{}

func (sentWake) Stop() bool { return false }

func (a *endpointActor) stopTimer() {
	if a.timer != nil {
		a.timer.Stop()
	}
	a.timer, a.timerAt = nil, time.Time{}
	if a.sh != nil {
		a.sh.nextGen() // a wake already on its way is now stale
	}
}

func (a *endpointActor) status() *Status {
	st := Status{}
	if a.q != nil {
		st = a.q.Stats()
	}
	st.Ready = a.ready
	st.StorageRetryAt = a.retryAt
	return &st
}
