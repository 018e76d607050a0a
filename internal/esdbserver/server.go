package esdbserver

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	gossipapi "github.com/EventStore/EventStore-Client-Go/v4/protos/gossip"
	featuresapi "github.com/EventStore/EventStore-Client-Go/v4/protos/serverfeatures"
	"github.com/EventStore/EventStore-Client-Go/v4/protos/shared"
	api "github.com/EventStore/EventStore-Client-Go/v4/protos/streams"
	"github.com/google/uuid"
	"google.golang.org/grpc"
	"google.golang.org/grpc/keepalive"
)

const (
	// serverVersion is the EventStoreDB version the server claims.
	serverVersion = "24.10.0"
	// keepaliveMinTime is the shortest client ping interval the server
	// tolerates. grpc-go's default (5 minutes) makes it drop clients that
	// ping every 10 s, the EventStoreDB client's default, after ~31 s.
	keepaliveMinTime = time.Second
)

// Fault is a failure FailNextAppend injects into the next append.
type Fault int

const (
	// NoFault clears a pending fault.
	NoFault Fault = iota
	// FaultUnavailable answers the next append with Unavailable without
	// committing it: a failure whose outcome the client can know.
	FaultUnavailable
	// FaultLoseResponse commits the next append, then drops every
	// connection before the answer is sent: the client cannot know whether
	// the append happened.
	FaultLoseResponse
	// FaultStall holds the next append, uncommitted and unanswered, until
	// the client gives up on it: a server that hangs.
	FaultStall
)

// Server is an in-process EventStoreDB. Its data outlives Stop, so that
// Restart looks like a server restart with durable storage.
type Server struct {
	api.UnimplementedStreamsServer

	mu          sync.Mutex // guards the fields below
	store       *store
	fault       Fault
	appends     int           // append requests that reached the log (written or found)
	subs        int           // open subscriptions
	maxAppend   int           // bytes of data one append may carry; 0: no limit
	subsChanged chan struct{} // closed and replaced when subs changes

	lmu  sync.Mutex // guards the fields below
	addr string
	gs   *grpc.Server
	lis  *trackingListener
	done chan struct{} // closed when Serve returns
}

// New returns a stopped server holding a fresh database's system events.
func New() *Server {
	s := &Server{store: newStore(time.Now), subsChanged: make(chan struct{})}
	// A fresh EventStoreDB's $all starts with system events; clients must
	// cope with them, so this one has some too.
	s.store.append("$settings", expectation{kind: expectAny}, []proposed{{
		id: uuid.New(), typ: "$settings", contentType: "application/json",
		data: []byte(`{"$userStreamAcl":{},"$systemStreamAcl":{}}`),
	}})
	s.store.append("$$$settings", expectation{kind: expectAny}, []proposed{{
		id: uuid.New(), typ: "$metadata", contentType: "application/json",
		data: []byte(`{"$maxCount":1}`),
	}})
	return s
}

// Start starts a server on a loopback port for the test and stops it when
// the test ends. It returns the connection string the client takes.
func Start(t testing.TB) (connString string, srv *Server) {
	t.Helper()
	srv = New()
	if err := srv.Listen("127.0.0.1:0"); err != nil {
		t.Fatalf("esdbserver: %v", err)
	}
	t.Cleanup(srv.Stop)
	return srv.ConnString(), srv
}

// Listen serves on addr (host:port; port 0 picks one) until Stop.
func (s *Server) Listen(addr string) error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.gs != nil {
		return errors.New("esdbserver: already serving")
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen %v: %w", addr, err)
	}
	s.addr = l.Addr().String()
	s.lis = &trackingListener{Listener: l, conns: map[*trackedConn]struct{}{}}
	s.gs = grpc.NewServer(grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
		MinTime:             keepaliveMinTime,
		PermitWithoutStream: true,
	}))
	api.RegisterStreamsServer(s.gs, s)
	gossipapi.RegisterGossipServer(s.gs, gossipService{s: s})
	featuresapi.RegisterServerFeaturesServer(s.gs, featuresService{})
	s.done = make(chan struct{})
	go func(gs *grpc.Server, lis net.Listener, done chan struct{}) {
		defer close(done)
		_ = gs.Serve(lis) // returns when stopped
	}(s.gs, s.lis, s.done)
	return nil
}

// Addr is the address the server listens (or last listened) on.
func (s *Server) Addr() string {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.addr
}

// ConnString is an esdb:// connection string for the server.
func (s *Server) ConnString() string {
	return "esdb://" + s.Addr() + "?tls=false"
}

// Stop closes the listener and every connection, ending open
// subscriptions. It keeps the data. It uses grpc's Stop, not GracefulStop,
// which would wait for subscriptions that never end.
func (s *Server) Stop() {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.gs == nil {
		return
	}
	s.gs.Stop()
	<-s.done
	s.gs, s.lis, s.done = nil, nil, nil
}

// Restart stops the server and serves again on the same address, with the
// same data.
func (s *Server) Restart() error {
	s.Stop()
	return s.Listen(s.Addr())
}

// DropConnections closes every client connection and keeps listening, as a
// network failure would. It returns the number of connections closed.
func (s *Server) DropConnections() int {
	s.lmu.Lock()
	lis := s.lis
	s.lmu.Unlock()
	if lis == nil {
		return 0
	}
	return lis.dropAll()
}

// FailNextAppend makes the next append fail with f.
func (s *Server) FailNextAppend(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fault = f
}

// SetMaxAppendSize limits the data bytes one append may carry, as
// EventStoreDB's MaxAppendSize does (its default is 1 MiB; this server's
// is no limit). Appends over it fail with InvalidArgument.
func (s *Server) SetMaxAppendSize(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.maxAppend = n
}

// Appends is the number of append requests that reached the log: those
// that wrote events and those that found them already written.
func (s *Server) Appends() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.appends
}

// Subscriptions is the number of open subscriptions.
func (s *Server) Subscriptions() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.subs
}

// WaitSubscriptions blocks until exactly n subscriptions are open or ctx
// is done.
func (s *Server) WaitSubscriptions(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		subs, changed := s.subs, s.subsChanged
		s.mu.Unlock()
		if subs == n {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d subscriptions (have %d): %w", n, subs, ctx.Err())
		case <-changed:
		}
	}
}

func (s *Server) subscriptionOpened() { s.addSubscriptions(1) }
func (s *Server) subscriptionClosed() { s.addSubscriptions(-1) }

func (s *Server) addSubscriptions(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.subs += n
	close(s.subsChanged)
	s.subsChanged = make(chan struct{})
}

// gossipService answers Gossip/Read with a one-node cluster whose leader
// is this server, so that multi-host and esdb+discover:// connection
// strings find it.
type gossipService struct {
	gossipapi.UnimplementedGossipServer
	s *Server
}

func (g gossipService) Read(context.Context, *shared.Empty) (*gossipapi.ClusterInfo, error) {
	host, portText, err := net.SplitHostPort(g.s.Addr())
	if err != nil {
		return nil, fmt.Errorf("gossip: %w", err)
	}
	port, err := strconv.ParseUint(portText, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gossip: port %q: %w", portText, err)
	}
	return &gossipapi.ClusterInfo{Members: []*gossipapi.MemberInfo{{
		InstanceId:   uuidProto(uuid.NewSHA1(uuid.NameSpaceURL, []byte(g.s.Addr())), false),
		TimeStamp:    time.Now().UnixNano() / nanosecondsPerTick,
		State:        gossipapi.MemberInfo_Leader,
		IsAlive:      true,
		HttpEndPoint: &gossipapi.EndPoint{Address: host, Port: uint32(port)},
	}}}, nil
}

// featuresService answers ServerFeatures/GetSupportedMethods. It does not
// list BatchAppend or persistent subscriptions, which it does not serve.
type featuresService struct {
	featuresapi.UnimplementedServerFeaturesServer
}

func (featuresService) GetSupportedMethods(context.Context, *shared.Empty) (*featuresapi.SupportedMethods, error) {
	const streams = "event_store.client.streams.streams"
	var methods []*featuresapi.SupportedMethod
	for _, m := range []string{"read", "append", "delete"} {
		methods = append(methods, &featuresapi.SupportedMethod{MethodName: m, ServiceName: streams})
	}
	methods = append(methods,
		&featuresapi.SupportedMethod{MethodName: "read", ServiceName: "event_store.client.gossip.gossip"},
		&featuresapi.SupportedMethod{MethodName: "getsupportedmethods", ServiceName: "event_store.client.server_features.serverfeatures"},
	)
	return &featuresapi.SupportedMethods{Methods: methods, EventStoreServerVersion: serverVersion}, nil
}

// trackingListener remembers the connections it accepted so that they can
// be dropped.
type trackingListener struct {
	net.Listener
	mu    sync.Mutex
	conns map[*trackedConn]struct{}
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	tc := &trackedConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[tc] = struct{}{}
	l.mu.Unlock()
	return tc, nil
}

func (l *trackingListener) dropAll() int {
	l.mu.Lock()
	conns := make([]*trackedConn, 0, len(l.conns))
	for c := range l.conns {
		conns = append(conns, c)
	}
	l.mu.Unlock()
	for _, c := range conns {
		_ = c.Close()
	}
	return len(conns)
}

type trackedConn struct {
	net.Conn
	l    *trackingListener
	once sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.l.mu.Lock()
		delete(c.l.conns, c)
		c.l.mu.Unlock()
	})
	return c.Conn.Close()
}
