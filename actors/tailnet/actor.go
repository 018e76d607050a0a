package tailnet

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/internal/randid"
	"github.com/herald-webhooks/herald/signer"
)

// Limits of a tailnet.
const (
	// MaxEndpoints is how many webhook endpoints one tailnet may have.
	MaxEndpoints = 100
	// MaxChangesPerIngest is how many changes one Ingest may carry.
	MaxChangesPerIngest = 1000
	// readPage is how many records a replay reads at a time.
	readPage = 4096
)

// DefaultConsoleURL is the admin console that event links point into.
const DefaultConsoleURL = "https://login.tailscale.com/admin"

// Config is what a tailnet actor needs.
type Config struct {
	Name   string
	Log    eventlog.Log
	Clock  clock.Clock
	Sealer *signer.Sealer
	// Endpoint is the template for the endpoint actors this tailnet
	// spawns; its Backlog is filled in here.
	Endpoint endpoint.Config
	// ValidateURL checks an endpoint URL (egress.ValidateEndpointURL) and
	// returns its canonical form, which is what is stored and shown.
	ValidateURL func(raw string) (string, error)
	// Register, if set, is called before the tailnet's first record is
	// appended, so that whoever starts tailnets on restart knows of this
	// one; a call that is refused writes nothing and registers nothing.
	Register   func(ctx context.Context) error
	ConsoleURL string
	Logger     *slog.Logger
}

// Requests a tailnet actor answers (send with RequestFuture, as pointers).
type (
	CreateEndpoint struct {
		Actor, URL, ProviderType string
		Subscriptions            []string
	}
	ListEndpoints  struct{}
	GetEndpoint    struct{ ID string }
	UpdateEndpoint struct {
		ID, Actor     string
		Subscriptions []string
	}
	RotateSecret   struct{ ID, Actor string }
	TestEndpoint   struct{ ID string }
	DeleteEndpoint struct{ ID, Actor string }
	Ingest         struct{ Changes []Change }
	// EndpointActor asks for the PID of an endpoint's actor.
	EndpointActor struct{ ID string }
)

// Replies.
type (
	EndpointReply struct {
		Endpoint Endpoint
		Secret   string // only from create and rotate
		Err      error
	}
	EndpointsReply struct {
		Endpoints []Endpoint
		Err       error
	}
	IngestReply struct {
		Raised []Raised
		Err    error
	}
	EndpointActorReply struct {
		PID *actor.PID
		Err error
	}
)

type endpointState struct {
	view           Endpoint
	sealedSecret   string
	createdVersion uint64
	deleted        bool
	deletedVersion uint64
	pid            *actor.PID
}

type tailnetActor struct {
	cfg       Config
	stream    string
	log       *slog.Logger
	loaded    bool
	version   int64 // version of the stream's last record; -1 when empty
	endpoints map[string]*endpointState
	order     []string // endpoint ids in creation order
	facts     *facts
}

// Props returns the props of a tailnet actor. Its endpoint actors are
// supervised as the endpoint package says: restarted on failure (they
// rebuild from the log), a bounded number of times.
func Props(cfg Config) *actor.Props {
	if cfg.ConsoleURL == "" {
		cfg.ConsoleURL = DefaultConsoleURL
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return actor.PropsFromProducer(func() actor.Actor {
		return &tailnetActor{cfg: cfg, stream: StreamName(cfg.Name), log: cfg.Logger.With("tailnet", cfg.Name)}
	}, actor.WithSupervisor(endpoint.SupervisorStrategy()))
}

func (a *tailnetActor) Receive(ctx actor.Context) {
	switch msg := ctx.Message().(type) {
	case *actor.Started:
		if err := a.load(ctx); err != nil {
			a.log.Error("tailnet replay failed; will retry on the next request", "err", err)
		}
		return
	case *actor.Stopping, *actor.Stopped, *actor.Restarting:
		return
	case *actor.Terminated:
		for _, ep := range a.endpoints {
			if ep.pid != nil && ep.pid.Equal(msg.Who) {
				ep.pid = nil
			}
		}
		return
	}
	if err := a.load(ctx); err != nil {
		a.respondErr(ctx, err)
		return
	}
	switch msg := ctx.Message().(type) {
	case *CreateEndpoint:
		ep, secret, err := a.create(ctx, msg)
		ctx.Respond(&EndpointReply{Endpoint: ep, Secret: secret, Err: err})
	case *ListEndpoints:
		var out []Endpoint
		for _, id := range a.order {
			if ep := a.endpoints[id]; !ep.deleted {
				out = append(out, cloneView(ep.view))
			}
		}
		ctx.Respond(&EndpointsReply{Endpoints: out})
	case *GetEndpoint:
		ep, err := a.live(msg.ID)
		if err != nil {
			ctx.Respond(&EndpointReply{Err: err})
			return
		}
		ctx.Respond(&EndpointReply{Endpoint: cloneView(ep.view)})
	case *UpdateEndpoint:
		ep, err := a.update(ctx, msg)
		ctx.Respond(&EndpointReply{Endpoint: ep, Err: err})
	case *RotateSecret:
		ep, secret, err := a.rotate(ctx, msg)
		ctx.Respond(&EndpointReply{Endpoint: ep, Secret: secret, Err: err})
	case *TestEndpoint:
		ctx.Respond(&EndpointReply{Err: a.test(ctx, msg)})
	case *DeleteEndpoint:
		ctx.Respond(&EndpointReply{Err: a.delete(ctx, msg)})
	case *Ingest:
		raised, err := a.ingest(ctx, msg.Changes)
		ctx.Respond(&IngestReply{Raised: raised, Err: err})
	case *EndpointActor:
		ep, ok := a.endpoints[msg.ID]
		if !ok || ep.pid == nil {
			ctx.Respond(&EndpointActorReply{Err: ErrNotFound})
			return
		}
		ctx.Respond(&EndpointActorReply{PID: ep.pid})
	default:
		a.log.Warn("tailnet actor got a message nobody handles", "type", fmt.Sprintf("%T", msg))
	}
}

func (a *tailnetActor) respondErr(ctx actor.Context, err error) {
	if ctx.Sender() == nil {
		return
	}
	switch ctx.Message().(type) {
	case *Ingest:
		ctx.Respond(&IngestReply{Err: err})
	case *ListEndpoints:
		ctx.Respond(&EndpointsReply{Err: err})
	case *EndpointActor:
		ctx.Respond(&EndpointActorReply{Err: err})
	default:
		ctx.Respond(&EndpointReply{Err: err})
	}
}

// load rebuilds the tailnet's state from its stream (once, or again after
// a failed append left the state in doubt) and starts its endpoint actors.
// A reload keeps the endpoint actors already running, and hands them any
// notification it finds past the version it knew: an append whose outcome
// was unknown may have been written after all.
func (a *tailnetActor) load(ctx actor.Context) error {
	if a.loaded {
		return nil
	}
	running := map[string]*actor.PID{}
	for id, ep := range a.endpoints {
		if ep.pid != nil {
			running[id] = ep.pid
		}
	}
	known, reloading := a.version, a.endpoints != nil
	a.version = -1
	a.endpoints = map[string]*endpointState{}
	a.order = nil
	a.facts = newFacts()
	late := map[string][]endpoint.Notification{}
	err := eventlog.ForEachInStream(context.Background(), a.cfg.Log, a.stream, 0, readPage, func(rec eventlog.Record) error {
		if err := a.apply(rec); err != nil {
			return err
		}
		if !reloading || int64(rec.Version) <= known || rec.Type != recNotification {
			return nil
		}
		n, err := decode[notificationRecord](rec)
		if err != nil {
			return err
		}
		for _, id := range n.Targets {
			late[id] = append(late[id], endpoint.Notification{EventID: n.EventID, TailnetVersion: rec.Version, Payload: n.Payload})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("replay %s: %w", a.stream, err)
	}
	a.loaded = true
	for _, id := range a.order {
		ep := a.endpoints[id]
		ep.pid = running[id]
		switch {
		case ep.pid == nil:
			if err := a.spawn(ctx, ep); err != nil {
				a.log.Error("cannot start endpoint actor", "endpoint", id, "err", err)
			}
		case reloading:
			// Settings (a secret, a deletion) may have changed in the
			// append whose outcome was in doubt.
			if settings, err := a.settings(ep); err == nil {
				ctx.Send(ep.pid, &endpoint.UpdateSettings{Settings: settings})
			}
		}
		if ep.pid != nil && len(late[id]) > 0 {
			ctx.Send(ep.pid, &endpoint.Notify{Notifications: late[id]})
		}
	}
	return nil
}

// apply folds one record of the stream into the state; replay and live
// appends both go through it, so what is logged is what is known.
func (a *tailnetActor) apply(rec eventlog.Record) error {
	a.version = int64(rec.Version)
	switch rec.Type {
	case recEndpointCreated:
		r, err := decode[endpointCreated](rec)
		if err != nil {
			return err
		}
		if _, dup := a.endpoints[r.ID]; !dup {
			a.order = append(a.order, r.ID)
		}
		a.endpoints[r.ID] = &endpointState{
			view: Endpoint{
				ID: r.ID, URL: r.URL, ProviderType: r.ProviderType, CreatorLoginName: r.Creator,
				Created: r.At, LastModified: r.At, Subscriptions: r.Subscriptions,
			},
			sealedSecret:   r.SealedSecret,
			createdVersion: rec.Version,
		}
	case recEndpointUpdated:
		r, err := decode[endpointUpdated](rec)
		if err != nil {
			return err
		}
		if ep := a.endpoints[r.ID]; ep != nil {
			ep.view.Subscriptions, ep.view.LastModified = r.Subscriptions, r.At
		}
	case recEndpointSecretRotated:
		r, err := decode[endpointSecretRotated](rec)
		if err != nil {
			return err
		}
		if ep := a.endpoints[r.ID]; ep != nil {
			ep.sealedSecret, ep.view.LastModified = r.SealedSecret, r.At
		}
	case recEndpointDeleted:
		r, err := decode[endpointDeleted](rec)
		if err != nil {
			return err
		}
		if ep := a.endpoints[r.ID]; ep != nil {
			ep.deleted, ep.deletedVersion = true, rec.Version
		}
	case recChange:
		r, err := decode[changeRecord](rec)
		if err != nil {
			return err
		}
		a.facts.apply(r.Change)
	case recNotification:
		// Delivery state lives in the endpoint streams.
	default:
		// A record type from a newer Herald: skip it, never fail replay.
	}
	return nil
}

// pending is what an operation wants appended: records, and which of
// them are notifications to hand to endpoint actors afterwards.
type pending struct {
	events        []eventlog.Event
	notifications []pendingNotification
}

type pendingNotification struct {
	index   int // position among events
	eventID string
	typ     string
	targets []string
	payload []byte
}

func (p *pending) add(typ string, v any) error {
	ev, err := encode(typ, v)
	if err != nil {
		return err
	}
	p.events = append(p.events, ev)
	return nil
}

// notify adds a notification of eventType for targets.
func (p *pending) notify(tailnetName, eventType string, data events.Data, targets []string, now time.Time) error {
	id, err := newID("ev_", eventIDLength)
	if err != nil {
		return err
	}
	payload, err := events.New(id, tailnetName, eventType, now, data)
	if err != nil {
		return err
	}
	if targets == nil {
		targets = []string{}
	}
	p.notifications = append(p.notifications, pendingNotification{
		index: len(p.events), eventID: id, typ: eventType, targets: targets, payload: payload,
	})
	return p.add(recNotification, notificationRecord{
		Type: recNotification, V: schemaVersion, EventID: id, EventType: eventType, Targets: targets, Payload: payload,
	})
}

// commit appends p, folds it into the state, and hands its notifications
// to the endpoint actors: persist, then change state, then act.
func (a *tailnetActor) commit(ctx actor.Context, p *pending) ([]Raised, error) {
	if a.version < 0 && a.cfg.Register != nil {
		if err := a.cfg.Register(context.Background()); err != nil {
			return nil, err
		}
	}
	res, err := a.cfg.Log.Append(context.Background(), a.stream, eventlog.ExpectedVersion(a.version), p.events...)
	if err != nil {
		var wrong *eventlog.WrongVersionError
		if errors.As(err, &wrong) {
			// Someone else wrote to our stream: our state is stale.
			a.log.Error("tailnet stream changed under the actor; reloading", "err", err)
		}
		a.loaded = false
		return nil, err
	}
	first := res.Version + 1 - uint64(len(p.events))
	for i, ev := range p.events {
		if err := a.apply(eventlog.Record{Stream: a.stream, Version: first + uint64(i), Type: ev.Type, Data: ev.Data}); err != nil {
			a.loaded = false
			return nil, err
		}
	}
	raised := make([]Raised, 0, len(p.notifications))
	byEndpoint := map[string][]endpoint.Notification{}
	var targetsInOrder []string
	for _, n := range p.notifications {
		raised = append(raised, Raised{ID: n.eventID, Type: n.typ, Endpoints: n.targets})
		for _, id := range n.targets {
			if _, seen := byEndpoint[id]; !seen {
				targetsInOrder = append(targetsInOrder, id)
			}
			byEndpoint[id] = append(byEndpoint[id], endpoint.Notification{
				EventID: n.eventID, TailnetVersion: first + uint64(n.index), Payload: n.payload,
			})
		}
	}
	for _, id := range targetsInOrder {
		if ep := a.endpoints[id]; ep != nil && ep.pid != nil {
			ctx.Send(ep.pid, &endpoint.Notify{Notifications: byEndpoint[id]})
		}
	}
	return raised, nil
}

func (a *tailnetActor) live(id string) (*endpointState, error) {
	ep, ok := a.endpoints[id]
	if !ok || ep.deleted {
		return nil, ErrNotFound
	}
	return ep, nil
}

func (a *tailnetActor) liveCount() int {
	n := 0
	for _, ep := range a.endpoints {
		if !ep.deleted {
			n++
		}
	}
	return n
}

func (a *tailnetActor) create(ctx actor.Context, m *CreateEndpoint) (Endpoint, string, error) {
	canonURL, err := a.cfg.ValidateURL(m.URL)
	if err != nil {
		return Endpoint{}, "", &InvalidError{Msg: "endpointUrl: " + err.Error()}
	}
	if !events.ValidProviderType(m.ProviderType) {
		return Endpoint{}, "", invalidf("providerType: unknown provider type %s (one of \"\", slack, discord, mattermost, googlechat)", Quote(m.ProviderType))
	}
	subs, err := checkSubscriptions(m.Subscriptions)
	if err != nil {
		return Endpoint{}, "", err
	}
	if a.liveCount() >= MaxEndpoints {
		return Endpoint{}, "", invalidf("tailnet %s already has %d webhook endpoints, the limit", a.cfg.Name, MaxEndpoints)
	}
	id, err := newID("", endpointIDLength)
	if err != nil {
		return Endpoint{}, "", err
	}
	secret, err := signer.NewSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	sealed, err := a.cfg.Sealer.Seal(secret, []byte(id))
	if err != nil {
		return Endpoint{}, "", err
	}
	var p pending
	if err := p.add(recEndpointCreated, endpointCreated{
		Type: recEndpointCreated, V: schemaVersion, ID: id, URL: canonURL, ProviderType: m.ProviderType,
		Subscriptions: subs, SealedSecret: sealed, Creator: m.Actor, At: a.cfg.Clock.Now().UTC(),
	}); err != nil {
		return Endpoint{}, "", err
	}
	if _, err := a.commit(ctx, &p); err != nil {
		return Endpoint{}, "", err
	}
	ep := a.endpoints[id]
	if err := a.spawn(ctx, ep); err != nil {
		a.log.Error("cannot start endpoint actor", "endpoint", id, "err", err)
	}
	a.log.Info("webhook endpoint created", "endpoint", id, "creator", m.Actor)
	return cloneView(ep.view), secret, nil
}

func (a *tailnetActor) update(ctx actor.Context, m *UpdateEndpoint) (Endpoint, error) {
	ep, err := a.live(m.ID)
	if err != nil {
		return Endpoint{}, err
	}
	subs, err := checkSubscriptions(m.Subscriptions)
	if err != nil {
		return Endpoint{}, err
	}
	now := a.cfg.Clock.Now().UTC()
	var p pending
	if err := p.add(recEndpointUpdated, endpointUpdated{Type: recEndpointUpdated, V: schemaVersion, ID: m.ID, Subscriptions: subs, Actor: m.Actor, At: now}); err != nil {
		return Endpoint{}, err
	}
	if err := p.notify(a.cfg.Name, events.WebhookUpdated, events.Data{EndpointID: m.ID, Actor: m.Actor}, []string{m.ID}, now); err != nil {
		return Endpoint{}, err
	}
	if _, err := a.commit(ctx, &p); err != nil {
		return Endpoint{}, err
	}
	return cloneView(ep.view), nil
}

func (a *tailnetActor) rotate(ctx actor.Context, m *RotateSecret) (Endpoint, string, error) {
	ep, err := a.live(m.ID)
	if err != nil {
		return Endpoint{}, "", err
	}
	secret, err := signer.NewSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	sealed, err := a.cfg.Sealer.Seal(secret, []byte(m.ID))
	if err != nil {
		return Endpoint{}, "", err
	}
	now := a.cfg.Clock.Now().UTC()
	var p pending
	if err := p.add(recEndpointSecretRotated, endpointSecretRotated{Type: recEndpointSecretRotated, V: schemaVersion, ID: m.ID, SealedSecret: sealed, Actor: m.Actor, At: now}); err != nil {
		return Endpoint{}, "", err
	}
	if _, err := a.commit(ctx, &p); err != nil {
		return Endpoint{}, "", err
	}
	// The new secret signs every attempt from now on, pending ones too.
	if ep.pid != nil {
		settings, err := a.settings(ep)
		if err != nil {
			return Endpoint{}, "", err
		}
		ctx.Send(ep.pid, &endpoint.UpdateSettings{Settings: settings})
	}
	a.log.Info("webhook secret rotated", "endpoint", m.ID, "actor", m.Actor)
	return cloneView(ep.view), secret, nil
}

func (a *tailnetActor) test(ctx actor.Context, m *TestEndpoint) error {
	if _, err := a.live(m.ID); err != nil {
		return err
	}
	var p pending
	if err := p.notify(a.cfg.Name, events.Test, events.Data{}, []string{m.ID}, a.cfg.Clock.Now()); err != nil {
		return err
	}
	_, err := a.commit(ctx, &p)
	return err
}

func (a *tailnetActor) delete(ctx actor.Context, m *DeleteEndpoint) error {
	ep, err := a.live(m.ID)
	if err != nil {
		return err
	}
	now := a.cfg.Clock.Now().UTC()
	var p pending
	// webhookDeleted comes first so that it is raised while the endpoint
	// still exists; the endpoint actor delivers it, then retires.
	if err := p.notify(a.cfg.Name, events.WebhookDeleted, events.Data{EndpointID: m.ID, Actor: m.Actor}, []string{m.ID}, now); err != nil {
		return err
	}
	if err := p.add(recEndpointDeleted, endpointDeleted{Type: recEndpointDeleted, V: schemaVersion, ID: m.ID, Actor: m.Actor, At: now}); err != nil {
		return err
	}
	if _, err := a.commit(ctx, &p); err != nil {
		return err
	}
	if ep.pid != nil {
		settings, err := a.settings(ep)
		if err != nil {
			return err
		}
		ctx.Send(ep.pid, &endpoint.UpdateSettings{Settings: settings})
	}
	a.log.Info("webhook endpoint deleted", "endpoint", m.ID, "actor", m.Actor)
	return nil
}

func (a *tailnetActor) ingest(ctx actor.Context, changes []Change) ([]Raised, error) {
	if len(changes) == 0 {
		return nil, invalidf("changes: at least one change is required")
	}
	if len(changes) > MaxChangesPerIngest {
		return nil, invalidf("changes: %d changes, more than the limit of %d per call", len(changes), MaxChangesPerIngest)
	}
	// Later changes of one call see the facts earlier ones establish, so
	// plan against a scratch copy; the real facts change only once the
	// records are in the log.
	scratch := a.facts
	if len(changes) > 1 {
		scratch = a.facts.clone()
	}
	now := a.cfg.Clock.Now()
	var p pending
	for i, c := range changes {
		raises, err := scratch.plan(c, a.cfg.ConsoleURL)
		if err != nil {
			var inv *InvalidError
			if len(changes) > 1 && errors.As(err, &inv) {
				return nil, invalidf("changes[%d]: %s", i, inv.Msg)
			}
			return nil, err
		}
		if err := p.add(recChange, changeRecord{Type: recChange, V: schemaVersion, Change: c, At: now.UTC()}); err != nil {
			return nil, err
		}
		for _, r := range raises {
			if err := p.notify(a.cfg.Name, r.eventType, r.data, a.subscribers(r.eventType), now); err != nil {
				return nil, err
			}
		}
		if len(changes) > 1 {
			scratch.apply(c)
		}
	}
	return a.commit(ctx, &p)
}

func (a *tailnetActor) subscribers(eventType string) []string {
	var out []string
	for _, id := range a.order {
		if ep := a.endpoints[id]; !ep.deleted && events.Subscribed(ep.view.Subscriptions, eventType) {
			out = append(out, id)
		}
	}
	return out
}

// settings is what an endpoint actor needs, its secret unsealed.
func (a *tailnetActor) settings(ep *endpointState) (endpoint.Settings, error) {
	secret, err := a.cfg.Sealer.Open(ep.sealedSecret, []byte(ep.view.ID))
	if err != nil {
		return endpoint.Settings{}, fmt.Errorf("unseal the secret of endpoint %s: %w", ep.view.ID, err)
	}
	return endpoint.Settings{
		ID: ep.view.ID, Tailnet: a.cfg.Name, URL: ep.view.URL, ProviderType: ep.view.ProviderType,
		Secrets: []string{secret}, CreatedVersion: ep.createdVersion,
		Deleted: ep.deleted, DeletedVersion: ep.deletedVersion,
	}, nil
}

func (a *tailnetActor) spawn(ctx actor.Context, ep *endpointState) error {
	settings, err := a.settings(ep)
	if err != nil {
		return err
	}
	cfg := a.cfg.Endpoint
	cfg.Backlog = Backlog(a.cfg.Log, a.stream)
	pid, err := ctx.SpawnNamed(endpoint.Props(cfg, settings), "endpoint-"+ep.view.ID)
	if err != nil {
		return err
	}
	ep.pid = pid
	return nil
}

// Backlog returns the function with which an endpoint actor finds the
// notifications for it that a tailnet stream holds after a version.
func Backlog(log eventlog.Log, stream string) func(ctx context.Context, endpointID string, after uint64) ([]endpoint.Notification, error) {
	return func(ctx context.Context, endpointID string, after uint64) ([]endpoint.Notification, error) {
		var out []endpoint.Notification
		err := eventlog.ForEachInStream(ctx, log, stream, after+1, readPage, func(rec eventlog.Record) error {
			if rec.Type != recNotification {
				return nil
			}
			n, err := decode[notificationRecord](rec)
			if err != nil {
				return err
			}
			if slices.Contains(n.Targets, endpointID) {
				out = append(out, endpoint.Notification{EventID: n.EventID, TailnetVersion: rec.Version, Payload: n.Payload})
			}
			return nil
		})
		return out, err
	}
}

func checkSubscriptions(subs []string) ([]string, error) {
	out := make([]string, 0, len(subs))
	for _, s := range subs {
		if !events.ValidSubscription(s) {
			return nil, invalidf("subscriptions: unknown subscription %s", Quote(s))
		}
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out, nil
}

func cloneView(e Endpoint) Endpoint {
	e.Subscriptions = slices.Clone(e.Subscriptions)
	if e.Subscriptions == nil {
		e.Subscriptions = []string{}
	}
	return e
}

// ID lengths, in characters.
const (
	endpointIDLength = 16
	eventIDLength    = 24
)

func newID(prefix string, n int) (string, error) {
	s, err := randid.String(n)
	return prefix + s, err
}
