package server

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/api"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/egress"
	"github.com/herald-webhooks/herald/eventlog"
	"github.com/herald-webhooks/herald/eventlog/embedded"
	"github.com/herald-webhooks/herald/internal/atomicfile"
	"github.com/herald-webhooks/herald/internal/randid"
	"github.com/herald-webhooks/herald/signer"
)

// Files in the data directory.
const (
	AdminKeyFile   = "admin.key"
	SecretsKeyFile = "secrets.key"
	LogDir         = "log"
)

// DefaultRequestTimeout bounds how long an API call waits for its actor.
const DefaultRequestTimeout = 30 * time.Second

// Config configures a Server. Zero values take the defaults that
// `herald serve` documents.
type Config struct {
	// DataDir holds the secrets key, the admin key file and (for the
	// embedded log) the log.
	DataDir string
	// Log is the event log; nil opens the embedded log in DataDir/log.
	// A log passed in is not closed by Close.
	Log   eventlog.Log
	Clock clock.Clock
	Retry endpoint.RetryPolicy
	Batch endpoint.BatchPolicy
	// AttemptTimeout bounds one delivery attempt.
	AttemptTimeout time.Duration
	// AllowPrivateEgress is development mode: deliveries and endpoint
	// URLs may point at loopback and private addresses, on any port.
	AllowPrivateEgress bool
	// EgressRootCAs are trusted for deliveries besides the system roots.
	EgressRootCAs []*x509.Certificate
	// EgressResolver resolves endpoint host names (nil: the system's).
	// Embedders with their own DNS, and tests, set it.
	EgressResolver egress.Resolver
	ConsoleURL     string
	Version        string
	RequestTimeout time.Duration
	Logger         *slog.Logger
}

// Server is a running Herald.
type Server struct {
	cfg      Config
	log      eventlog.Log
	ownsLog  bool
	sealer   *signer.Sealer
	egress   *egress.Client
	system   *actor.ActorSystem
	keys     *keyStore
	adminKey string
	logger   *slog.Logger

	mu         sync.Mutex
	tailnets   map[string]*actor.PID
	dirVersion int64
	endpoints  map[string]string // endpoint id → tailnet
	closed     bool
}

// New starts Herald on cfg: it replays the log, restarts every tailnet's
// actors (which resume their pending deliveries on schedule), and, on
// first start, creates the admin API key in DataDir/admin.key.
func New(ctx context.Context, cfg Config) (s *Server, err error) {
	if cfg.DataDir == "" {
		return nil, errors.New("server: no data directory")
	}
	if cfg.Clock == nil {
		cfg.Clock = clock.Real()
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = DefaultRequestTimeout
	}
	if cfg.Version == "" {
		cfg.Version = "dev"
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	s = &Server{cfg: cfg, logger: cfg.Logger, tailnets: map[string]*actor.PID{}, endpoints: map[string]string{}, dirVersion: -1}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.sealer, err = signer.LoadOrCreateKey(filepath.Join(cfg.DataDir, SecretsKeyFile)); err != nil {
		return nil, err
	}
	s.log = cfg.Log
	if s.log == nil {
		l, err := embedded.Open(filepath.Join(cfg.DataDir, LogDir), embedded.Options{Logger: cfg.Logger})
		if err != nil {
			return nil, fmt.Errorf("open the event log: %w", err)
		}
		s.log, s.ownsLog = l, true
	}
	if s.egress, err = egress.New(egress.Config{
		AllowPrivate:   cfg.AllowPrivateEgress,
		ExtraRootCAs:   cfg.EgressRootCAs,
		AttemptTimeout: cfg.AttemptTimeout,
		UserAgent:      "Herald/" + cfg.Version,
		Logger:         cfg.Logger,
		Resolver:       cfg.EgressResolver,
		Now:            cfg.Clock.Now,
	}); err != nil {
		return nil, err
	}
	s.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.Logger.With("lib", "protoactor")
	}))
	if s.keys, err = loadKeys(ctx, s.log); err != nil {
		return nil, err
	}
	if err := s.ensureAdminKey(ctx); err != nil {
		return nil, err
	}
	if err := s.startTailnets(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// AdminKey returns the admin key if this start created it, else "".
func (s *Server) AdminKey() string { return s.adminKey }

// AdminKeyPath is where the admin key was written on first start.
func (s *Server) AdminKeyPath() string { return filepath.Join(s.cfg.DataDir, AdminKeyFile) }

// Log returns the event log the server writes.
func (s *Server) Log() eventlog.Log { return s.log }

// ensureAdminKey creates the admin key on first start. The file is written
// before the key is logged: a crash in between leaves a file whose key does
// not work yet, and the next start makes a new one.
func (s *Server) ensureAdminKey(ctx context.Context) error {
	if s.keys.hasAdmin() {
		return nil
	}
	key, _, err := s.keys.createWith(ctx, "", "admin", s.cfg.Clock.Now(), func(key string) error {
		return atomicfile.Write(s.AdminKeyPath(), []byte(key+"\n"), 0o600)
	})
	if err != nil {
		return fmt.Errorf("create the admin API key: %w", err)
	}
	s.adminKey = key
	s.logger.Info("created the admin API key (valid for every tailnet)", "file", s.AdminKeyPath())
	return nil
}

type tailnetRegistered struct {
	Type string    `json:"type"`
	V    int       `json:"v"`
	Name string    `json:"name"`
	At   time.Time `json:"at"`
}

const (
	directoryStream      = "herald-directory"
	recTailnetRegistered = "tailnetRegistered"
)

func (s *Server) startTailnets(ctx context.Context) error {
	var names []string
	err := readStream(ctx, s.log, directoryStream, func(rec eventlog.Record) error {
		s.dirVersion = int64(rec.Version)
		if rec.Type != recTailnetRegistered {
			return nil
		}
		var r tailnetRegistered
		if err := json.Unmarshal(rec.Data, &r); err != nil {
			return fmt.Errorf("decode %s@%d: %w", directoryStream, rec.Version, err)
		}
		names = append(names, r.Name)
		return nil
	})
	if err != nil {
		return err
	}
	s.mu.Lock()
	for _, name := range names {
		if _, dup := s.tailnets[name]; !dup {
			s.spawnTailnetLocked(name)
		}
	}
	pids := make(map[string]*actor.PID, len(s.tailnets))
	for name, pid := range s.tailnets {
		pids[name] = pid
	}
	s.mu.Unlock()
	for name, pid := range pids {
		eps, err := request[*tailnet.EndpointsReply](s, pid, &tailnet.ListEndpoints{})
		if err == nil {
			err = eps.Err
		}
		if err != nil {
			return fmt.Errorf("start tailnet %s: %w", name, err)
		}
		s.mu.Lock()
		for _, ep := range eps.Endpoints {
			s.endpoints[ep.ID] = name
		}
		s.mu.Unlock()
	}
	s.logger.Info("tailnets started", "count", len(pids))
	return nil
}

func (s *Server) spawnTailnetLocked(name string) *actor.PID {
	pid := s.system.Root.Spawn(tailnet.Props(tailnet.Config{
		Name:   name,
		Log:    s.log,
		Clock:  s.cfg.Clock,
		Sealer: s.sealer,
		Endpoint: endpoint.Config{
			Log:       s.log,
			Clock:     s.cfg.Clock,
			Publisher: publisher{s.egress},
			Retry:     s.cfg.Retry,
			Batch:     s.cfg.Batch,
			Logger:    s.logger,
		},
		ValidateURL: func(raw string) error {
			_, err := egress.ValidateEndpointURL(raw, s.cfg.AllowPrivateEgress)
			return err
		},
		ConsoleURL: s.cfg.ConsoleURL,
		Logger:     s.logger,
	}))
	s.tailnets[name] = pid
	return pid
}

// tailnet returns the actor of a tailnet; with create, a tailnet seen for
// the first time is registered (durably) and started.
func (s *Server) tailnet(ctx context.Context, name string, create bool) (*actor.PID, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, eventlog.ErrClosed
	}
	if pid, ok := s.tailnets[name]; ok {
		return pid, nil
	}
	if !create {
		return nil, tailnet.ErrNotFound
	}
	if err := ValidTailnetName(name); err != nil {
		return nil, err
	}
	data, err := json.Marshal(tailnetRegistered{Type: recTailnetRegistered, V: 1, Name: name, At: s.cfg.Clock.Now().UTC()})
	if err != nil {
		return nil, err
	}
	res, err := s.log.Append(ctx, directoryStream, eventlog.ExpectedVersion(s.dirVersion), eventlog.Event{Type: recTailnetRegistered, Data: data})
	if err != nil {
		return nil, fmt.Errorf("register tailnet %s: %w", name, err)
	}
	s.dirVersion = int64(res.Version)
	s.logger.Info("new tailnet", "tailnet", name)
	return s.spawnTailnetLocked(name), nil
}

// request asks an actor and waits for its typed reply.
func request[T any](s *Server, pid *actor.PID, msg any) (T, error) {
	var zero T
	res, err := s.system.Root.RequestFuture(pid, msg, s.cfg.RequestTimeout).Result()
	if err != nil {
		return zero, fmt.Errorf("%w: actor did not answer: %v", eventlog.ErrUnavailable, err)
	}
	reply, ok := res.(T)
	if !ok {
		return zero, fmt.Errorf("actor answered %T, want %T", res, zero)
	}
	return reply, nil
}

// Close stops the actors (in-flight deliveries are abandoned unlogged, to
// be repeated after restart) and closes what New opened.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	pids := make([]*actor.PID, 0, len(s.tailnets))
	for _, pid := range s.tailnets {
		pids = append(pids, pid)
	}
	s.mu.Unlock()
	if s.system != nil {
		for _, pid := range pids {
			_ = s.system.Root.StopFuture(pid).Wait()
		}
		s.system.Shutdown()
	}
	if s.egress != nil {
		s.egress.CloseIdleConnections()
	}
	if s.ownsLog && s.log != nil {
		return s.log.Close()
	}
	return nil
}

// publisher adapts the egress client to the endpoint actors.
type publisher struct{ c *egress.Client }

func (p publisher) Publish(ctx context.Context, d endpoint.Delivery) endpoint.Outcome {
	r := p.c.Post(ctx, egress.Request{URL: d.URL, Body: d.Body, Header: d.Header})
	return endpoint.Outcome{StatusCode: r.StatusCode, ErrorClass: r.ErrorClass, Err: r.Err, ResponseBytes: r.ResponseBytes}
}

// readStream calls fn for every record of a stream, in order.
func readStream(ctx context.Context, log eventlog.Log, stream string, fn func(eventlog.Record) error) error {
	const page = 4096
	for from := uint64(0); ; {
		recs, err := log.ReadStream(ctx, stream, from, page)
		if err != nil {
			return fmt.Errorf("read %s: %w", stream, err)
		}
		for _, rec := range recs {
			if err := fn(rec); err != nil {
				return err
			}
		}
		if len(recs) < page {
			return nil
		}
		from = recs[len(recs)-1].Version + 1
	}
}

func randomString(n int) (string, error) { return randid.String(n) }

var _ api.Backend = (*Server)(nil)
