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
	registered map[string]bool // tailnets recorded in herald-directory
	dirVersion int64
	endpoints  map[string]string // endpoint id → tailnet
	closed     bool
}

// New starts Herald on cfg: it replays the log, restarts every tailnet's
// actors (which resume their pending deliveries on schedule), and, on
// first start, creates the admin API key in DataDir/admin.key.
func New(ctx context.Context, cfg Config) (*Server, error) {
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
	s := &Server{
		cfg: cfg, logger: cfg.Logger, dirVersion: -1,
		tailnets: map[string]*actor.PID{}, registered: map[string]bool{}, endpoints: map[string]string{},
	}
	if err := s.start(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

func (s *Server) start(ctx context.Context) error {
	cfg := s.cfg
	if err := prepareDataDir(cfg.DataDir, s.logger); err != nil {
		return err
	}
	s.log = cfg.Log
	if s.log == nil {
		l, err := embedded.Open(filepath.Join(cfg.DataDir, LogDir), embedded.Options{Logger: cfg.Logger})
		if err != nil {
			return fmt.Errorf("open the event log in %s: %w", filepath.Join(cfg.DataDir, LogDir), err)
		}
		s.log, s.ownsLog = l, true
	}
	dir, err := readDirectory(ctx, s.log)
	if err != nil {
		return err
	}
	s.dirVersion = dir.version
	if s.keys, err = loadKeys(ctx, s.log); err != nil {
		return err
	}
	if err := s.checkLogMatchesDataDir(dir); err != nil {
		return err
	}
	if err := s.openDataKey(ctx, dir); err != nil {
		return err
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
		return err
	}
	s.system = actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger {
		return cfg.Logger.With("lib", "protoactor")
	}))
	if err := s.ensureAdminKey(ctx); err != nil {
		return err
	}
	return s.startTailnets(ctx, dir.tailnets)
}

// prepareDataDir creates the data directory (0700), and warns when an
// existing one lets other users in: the log holds logins, policy files and
// key hashes.
func prepareDataDir(path string, logger *slog.Logger) error {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return fmt.Errorf("data directory %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("data directory %s: %w", path, err)
	}
	if !fi.IsDir() {
		return fmt.Errorf("data directory %s is not a directory", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		logger.Warn("the data directory is open to other users; the log in it holds logins, policy files and key hashes: chmod 700 it",
			"dir", path, "mode", fi.Mode().Perm().String())
	}
	return nil
}

// checkLogMatchesDataDir refuses a log that has lost its history: an
// admin key file says Herald ran here before, so an empty log means the
// log was deleted or replaced, and starting afresh would silently drop
// every endpoint and overwrite the admin key.
func (s *Server) checkLogMatchesDataDir(dir directory) error {
	if dir.version >= 0 || s.keys.version >= 0 {
		return nil
	}
	if _, err := os.Stat(s.AdminKeyPath()); err == nil {
		return fmt.Errorf("%s exists but the event log holds no API keys: the log was deleted or replaced; restore it, or remove %s to start afresh", s.AdminKeyPath(), s.AdminKeyPath())
	}
	return nil
}

// openDataKey opens the key that seals endpoint secrets, and makes sure it
// is the one the log's secrets were sealed with: a missing or different
// key would make every endpoint's secret unreadable, and new secrets
// sealed under it unreadable once the right key is back.
func (s *Server) openDataKey(ctx context.Context, dir directory) error {
	path := filepath.Join(s.cfg.DataDir, SecretsKeyFile)
	if dir.dataKeyID != "" {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("%s is missing, and the log's endpoint secrets are sealed with data key %s: restore that file", path, dir.dataKeyID)
		}
	}
	sealer, err := signer.LoadOrCreateKey(path)
	if err != nil {
		return err
	}
	s.sealer = sealer
	switch {
	case dir.dataKeyID == sealer.KeyID():
		return nil
	case dir.dataKeyID != "":
		return fmt.Errorf("%s holds data key %s, but the log's endpoint secrets are sealed with data key %s: restore the right file", path, sealer.KeyID(), dir.dataKeyID)
	}
	return s.appendDirectory(ctx, recDataKeyRegistered, dataKeyRegistered{Type: recDataKeyRegistered, V: 1, KeyID: sealer.KeyID(), At: s.cfg.Clock.Now().UTC()})
}

// AdminKey returns the admin key if this start created it, else "".
func (s *Server) AdminKey() string { return s.adminKey }

// AdminKeyPath is where the admin key was written on first start.
func (s *Server) AdminKeyPath() string { return filepath.Join(s.cfg.DataDir, AdminKeyFile) }

// Log returns the event log the server writes.
func (s *Server) Log() eventlog.Log { return s.log }

// ensureAdminKey creates the admin key on first start, and a new one when
// the file has gone (the old key stays valid: only its hash is kept, so it
// cannot be written out again). The file is written before the key is
// logged: a crash in between leaves a file whose key does not work yet,
// and the next start makes a new one.
func (s *Server) ensureAdminKey(ctx context.Context) error {
	hasAdmin := s.keys.hasAdmin()
	if hasAdmin {
		if _, err := os.Stat(s.AdminKeyPath()); err == nil {
			return nil
		}
		s.logger.Warn("the admin key file is missing; creating a new admin key (keys made before stay valid)", "file", s.AdminKeyPath())
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

type dataKeyRegistered struct {
	Type  string    `json:"type"`
	V     int       `json:"v"`
	KeyID string    `json:"keyId"`
	At    time.Time `json:"at"`
}

const (
	directoryStream      = "herald-directory"
	recTailnetRegistered = "tailnetRegistered"
	recDataKeyRegistered = "dataKeyRegistered"
)

// directory is what the herald-directory stream says.
type directory struct {
	version   int64
	tailnets  []string
	dataKeyID string
}

func readDirectory(ctx context.Context, log eventlog.Log) (directory, error) {
	dir := directory{version: -1}
	err := readStream(ctx, log, directoryStream, func(rec eventlog.Record) error {
		dir.version = int64(rec.Version)
		switch rec.Type {
		case recTailnetRegistered:
			var r tailnetRegistered
			if err := json.Unmarshal(rec.Data, &r); err != nil {
				return fmt.Errorf("decode %s@%d: %w", directoryStream, rec.Version, err)
			}
			dir.tailnets = append(dir.tailnets, r.Name)
		case recDataKeyRegistered:
			var r dataKeyRegistered
			if err := json.Unmarshal(rec.Data, &r); err != nil {
				return fmt.Errorf("decode %s@%d: %w", directoryStream, rec.Version, err)
			}
			dir.dataKeyID = r.KeyID
		}
		return nil
	})
	return dir, err
}

// appendDirectory appends one record to herald-directory.
func (s *Server) appendDirectory(ctx context.Context, typ string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	res, err := s.log.Append(ctx, directoryStream, eventlog.ExpectedVersion(s.dirVersion), eventlog.Event{Type: typ, Data: data})
	if err != nil {
		return fmt.Errorf("append to %s: %w", directoryStream, err)
	}
	s.dirVersion = int64(res.Version)
	return nil
}

func (s *Server) startTailnets(ctx context.Context, names []string) error {
	s.mu.Lock()
	for _, name := range names {
		s.registered[name] = true
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
		ValidateURL: func(raw string) (string, error) {
			u, err := egress.ValidateEndpointURL(raw, s.cfg.AllowPrivateEgress)
			if err != nil {
				return "", err
			}
			return u.String(), nil
		},
		Register:   func(ctx context.Context) error { return s.register(ctx, name) },
		ConsoleURL: s.cfg.ConsoleURL,
		Logger:     s.logger,
	}))
	s.tailnets[name] = pid
	return pid
}

// tailnet returns the actor of a tailnet, and the tailnet's canonical
// name (tailnet.CanonicalName). With create, a tailnet seen for the first
// time gets an actor; it is registered in the directory (so that a restart
// starts it) only when its first record is about to be written, so a
// refused call leaves nothing behind.
func (s *Server) tailnet(name string, create bool) (*actor.PID, string, error) {
	canon, err := tailnet.CanonicalName(name)
	if err != nil {
		return nil, "", err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, "", eventlog.ErrClosed
	}
	if pid, ok := s.tailnets[canon]; ok {
		return pid, canon, nil
	}
	if !create {
		return nil, "", tailnet.ErrNotFound
	}
	return s.spawnTailnetLocked(canon), canon, nil
}

// register records a tailnet in the directory, once, before its stream's
// first record.
func (s *Server) register(ctx context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.registered[name] {
		return nil
	}
	if err := s.appendDirectory(ctx, recTailnetRegistered, tailnetRegistered{Type: recTailnetRegistered, V: 1, Name: name, At: s.cfg.Clock.Now().UTC()}); err != nil {
		return fmt.Errorf("register tailnet %s: %w", name, err)
	}
	s.registered[name] = true
	s.logger.Info("new tailnet", "tailnet", name)
	return nil
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
	if err := eventlog.ForEachInStream(ctx, log, stream, 0, readPage, fn); err != nil {
		return fmt.Errorf("read %s: %w", stream, err)
	}
	return nil
}

// readPage is how many records a stream read takes at a time.
const readPage = 4096

var _ api.Backend = (*Server)(nil)
