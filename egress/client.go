package egress

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// Defaults for Config fields left at zero.
const (
	DefaultAttemptTimeout      = 15 * time.Second
	DefaultMaxResponseBytes    = 64 << 10
	DefaultMaxIdleConns        = 4096
	DefaultMaxIdleConnsPerHost = 64
	DefaultIdleConnTimeout     = 90 * time.Second
	DefaultUserAgent           = "Herald"
)

// Fixed transport limits.
const (
	// maxResponseHeaderBytes caps the response headers an endpoint can make
	// us read (net/http's default is 10 MB).
	maxResponseHeaderBytes = 64 << 10
	// tcpKeepAlive is the keep-alive probe interval of pooled connections.
	tcpKeepAlive = 30 * time.Second
	// tlsSessionCacheSize is the number of TLS sessions kept for resumption,
	// shared by all endpoints.
	tlsSessionCacheSize = 4096
	// minDialShare is the least time one address of a multi-address name
	// gets to connect before the next is tried (as in net.Dialer).
	minDialShare = 2 * time.Second
	// contentTypeJSON is the Content-Type of every delivery unless the
	// request sets its own.
	contentTypeJSON = "application/json"
)

// Error classes: the short, stable word a Result carries in ErrorClass and
// the attempt log records. The empty string means success.
const (
	ClassURL      = "url"      // the URL is malformed or not https
	ClassDenied   = "denied"   // the egress policy refused the host, an address or the port
	ClassDNS      = "dns"      // the name did not resolve
	ClassConnect  = "connect"  // no TCP connection could be made
	ClassTLS      = "tls"      // the TLS handshake or certificate check failed
	ClassProtocol = "protocol" // the connection broke or the reply was not HTTP, before a status
	ClassTimeout  = "timeout"  // the attempt deadline passed, at any stage
	ClassCanceled = "canceled" // the caller's context was canceled (not the endpoint's fault)
	ClassRedirect = "redirect" // a 3xx status; redirects are never followed
	ClassStatus   = "status"   // any other non-2xx status
	ClassBody     = "body"     // a 2xx status, but reading the response body failed
)

// Resolver looks up the addresses of a host name. *net.Resolver is one.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Config configures a Client. The zero value is production-ready: strict
// policy, system roots, default limits.
type Config struct {
	// AllowPrivate is development mode (--allow-private-egress): private,
	// loopback and other non-public addresses and names are allowed, and
	// any port. https is still required. New logs a warning.
	AllowPrivate bool
	// ExtraRootCAs are trusted in addition to the system roots
	// (--egress-ca FILE; see LoadCertificates). New logs a warning.
	ExtraRootCAs []*x509.Certificate
	// AttemptTimeout bounds one delivery attempt end to end: resolution,
	// connect, TLS, request, response headers and body.
	AttemptTimeout time.Duration
	// MaxResponseBytes is how much of a response body is read; the rest is
	// never read (the connection is closed).
	MaxResponseBytes int64
	// Connection pool sizes, shared by all endpoints. MaxConnsPerHost 0
	// means no limit, so a slow endpoint never queues behind itself.
	MaxIdleConns        int
	MaxIdleConnsPerHost int
	MaxConnsPerHost     int
	IdleConnTimeout     time.Duration
	// UserAgent is sent on every request; DESIGN.md wants "Herald/<version>".
	UserAgent string
	// Logger receives the start-up warnings and a debug line per attempt.
	// Nil means slog.Default().
	Logger *slog.Logger
	// Resolver resolves endpoint host names; nil means net.DefaultResolver.
	Resolver Resolver
	// Now is the clock for Result.Started and Result.Duration; nil means
	// time.Now.
	Now func() time.Time

	// allowAnyPort lets tests reach loopback listeners on ephemeral ports
	// under the strict address policy.
	allowAnyPort bool
}

// Request is one delivery attempt.
type Request struct {
	// URL is the endpoint URL; it is checked by the same rules as
	// ValidateEndpointURL on every call.
	URL string
	// Body is sent byte for byte.
	Body []byte
	// Header is added to the request. Content-Type defaults to
	// application/json; User-Agent is always Config.UserAgent.
	Header http.Header
}

// Result is the outcome of one attempt, shaped for the attempt log.
type Result struct {
	// StatusCode is the response status, 0 if none was received.
	StatusCode int
	// Err is nil exactly when the attempt succeeded. Its message names the
	// host but never the URL's path, query or user info.
	Err error
	// ErrorClass is one of the Class constants, "" on success.
	ErrorClass string
	// ResponseBytes is how many response body bytes were read (at most
	// Config.MaxResponseBytes); Truncated is set when there were more.
	ResponseBytes int64
	Truncated     bool
	// RemoteAddr is the address the request went to, if a connection was made.
	RemoteAddr netip.AddrPort
	// Started and Duration are read from Config.Now.
	Started  time.Time
	Duration time.Duration
}

// OK reports whether the endpoint accepted the delivery: a 2xx status and a
// response read without error.
func (r Result) OK() bool {
	return r.Err == nil && r.StatusCode >= 200 && r.StatusCode <= 299
}

// StatusError is the Result.Err of an attempt answered with a non-2xx status.
type StatusError struct {
	Host       string
	StatusCode int
}

func (e *StatusError) Error() string {
	if e.StatusCode >= 300 && e.StatusCode <= 399 {
		return fmt.Sprintf("%s answered %d %s (redirects are not followed)", e.Host, e.StatusCode, http.StatusText(e.StatusCode))
	}
	return fmt.Sprintf("%s answered %d %s", e.Host, e.StatusCode, http.StatusText(e.StatusCode))
}

// stageError marks an error with the stage of the dial that failed.
type stageError struct {
	class string
	err   error
}

func (e *stageError) Error() string { return e.err.Error() }
func (e *stageError) Unwrap() error { return e.err }

// Client delivers webhooks. It is safe for concurrent use; every endpoint
// shares one transport and connection pool.
type Client struct {
	http      *http.Client
	transport *http.Transport
	dialer    *net.Dialer
	resolver  Resolver
	policy    AddressPolicy
	urlRules  urlRules
	timeout   time.Duration
	maxBody   int64
	userAgent string
	now       func() time.Time
	log       *slog.Logger
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if cfg.AttemptTimeout < 0 || cfg.MaxResponseBytes < 0 || cfg.MaxIdleConns < 0 ||
		cfg.MaxIdleConnsPerHost < 0 || cfg.MaxConnsPerHost < 0 || cfg.IdleConnTimeout < 0 {
		return nil, errors.New("egress config: limits and timeouts must not be negative")
	}
	c := &Client{
		resolver:  cfg.Resolver,
		policy:    AddressPolicy{AllowPrivate: cfg.AllowPrivate},
		timeout:   orDefault(cfg.AttemptTimeout, DefaultAttemptTimeout),
		maxBody:   orDefault(cfg.MaxResponseBytes, DefaultMaxResponseBytes),
		userAgent: orDefault(cfg.UserAgent, DefaultUserAgent),
		now:       cfg.Now,
		log:       cfg.Logger,
	}
	c.urlRules = urlRules{policy: c.policy, anyPort: cfg.AllowPrivate || cfg.allowAnyPort}
	if c.resolver == nil {
		c.resolver = net.DefaultResolver
	}
	if c.now == nil {
		c.now = time.Now
	}
	if c.log == nil {
		c.log = slog.Default()
	}

	roots, err := x509.SystemCertPool()
	if err != nil {
		if len(cfg.ExtraRootCAs) == 0 {
			return nil, fmt.Errorf("egress: load system roots: %w", err)
		}
		roots = x509.NewCertPool()
	}
	for _, cert := range cfg.ExtraRootCAs {
		roots.AddCert(cert)
	}

	c.dialer = &net.Dialer{
		KeepAlive:      tcpKeepAlive,
		ControlContext: c.control,
	}
	c.transport = &http.Transport{
		Proxy:       nil, // never from the environment
		DialContext: c.dialContext,
		TLSClientConfig: &tls.Config{
			MinVersion:         tls.VersionTLS12,
			RootCAs:            roots,
			ClientSessionCache: tls.NewLRUClientSessionCache(tlsSessionCacheSize),
		},
		ForceAttemptHTTP2:   true,
		MaxIdleConns:        orDefault(cfg.MaxIdleConns, DefaultMaxIdleConns),
		MaxIdleConnsPerHost: orDefault(cfg.MaxIdleConnsPerHost, DefaultMaxIdleConnsPerHost),
		MaxConnsPerHost:     cfg.MaxConnsPerHost,
		IdleConnTimeout:     orDefault(cfg.IdleConnTimeout, DefaultIdleConnTimeout),
		// net/http dials and handshakes on a context detached from the
		// request, so an abandoned attempt's dial would otherwise outlive
		// it; dialContext and this timeout bound it to AttemptTimeout.
		TLSHandshakeTimeout:    c.timeout,
		MaxResponseHeaderBytes: maxResponseHeaderBytes,
		// Bodies are discarded, so compression would only cost CPU and
		// invite decompression bombs.
		DisableCompression: true,
	}
	c.http = &http.Client{
		Transport: c.transport,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}

	if cfg.AllowPrivate {
		c.log.Warn("egress: development mode, deliveries to private, loopback and link-local addresses and to any port are allowed")
	}
	if cfg.allowAnyPort {
		c.log.Warn("egress: deliveries to any port are allowed (test knob)")
	}
	if len(cfg.ExtraRootCAs) > 0 {
		c.log.Warn("egress: trusting extra root certificates", "count", len(cfg.ExtraRootCAs))
	}
	return c, nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// LoadCertificates reads the PEM certificates in file, for
// Config.ExtraRootCAs (--egress-ca FILE).
func LoadCertificates(file string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read certificates: %w", err)
	}
	var certs []*x509.Certificate
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parse certificate in %s: %w", file, err)
		}
		certs = append(certs, cert)
	}
	if len(certs) == 0 {
		return nil, fmt.Errorf("no PEM certificates in %s", file)
	}
	return certs, nil
}

// CloseIdleConnections closes the pooled connections that are not in use.
func (c *Client) CloseIdleConnections() {
	c.transport.CloseIdleConnections()
}

// Post makes one delivery attempt: it checks the URL, POSTs req.Body within
// Config.AttemptTimeout, does not follow redirects, and reads at most
// Config.MaxResponseBytes of the response. It never panics on endpoint
// behaviour and always returns a Result; see Result.OK.
func (c *Client) Post(ctx context.Context, req Request) (res Result) {
	res.Started = c.now()
	defer func() { res.Duration = c.now().Sub(res.Started) }()

	u, err := c.urlRules.validate(req.URL)
	if err != nil {
		res.Err, res.ErrorClass = err, ClassURL
		if errors.As(err, new(*DeniedError)) {
			res.ErrorClass = ClassDenied
		}
		return res
	}
	hostname := u.Hostname()

	actx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	tr := new(attemptTrace)
	hreq, err := http.NewRequestWithContext(httptrace.WithClientTrace(actx, tr.clientTrace()),
		http.MethodPost, u.String(), bytes.NewReader(req.Body))
	if err != nil {
		res.Err, res.ErrorClass = fmt.Errorf("post to %s: %w", hostname, scrubURL(err)), ClassURL
		return res
	}
	if req.Header != nil {
		hreq.Header = req.Header.Clone()
	}
	if hreq.Header.Get("Content-Type") == "" {
		hreq.Header.Set("Content-Type", contentTypeJSON)
	}
	hreq.Header.Set("User-Agent", c.userAgent)

	resp, err := c.http.Do(hreq)
	res.RemoteAddr = tr.remoteAddr()
	if err != nil {
		res.Err = fmt.Errorf("post to %s: %w", hostname, scrubURL(err))
		res.ErrorClass = classify(ctx, actx, err, tr.tlsFailed())
		c.logAttempt(ctx, hostname, &res)
		return res
	}
	res.StatusCode = resp.StatusCode
	n, readErr := io.Copy(io.Discard, io.LimitReader(resp.Body, c.maxBody+1))
	resp.Body.Close()
	if n > c.maxBody {
		n, res.Truncated = c.maxBody, true
	}
	res.ResponseBytes = n

	switch {
	case resp.StatusCode >= 300 && resp.StatusCode <= 399:
		res.Err, res.ErrorClass = &StatusError{Host: hostname, StatusCode: resp.StatusCode}, ClassRedirect
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		res.Err, res.ErrorClass = &StatusError{Host: hostname, StatusCode: resp.StatusCode}, ClassStatus
	case readErr != nil:
		res.Err = fmt.Errorf("read response from %s: %w", hostname, readErr)
		res.ErrorClass = classify(ctx, actx, readErr, false)
		if res.ErrorClass == ClassProtocol {
			res.ErrorClass = ClassBody
		}
	}
	c.logAttempt(ctx, hostname, &res)
	return res
}

func (c *Client) logAttempt(ctx context.Context, host string, res *Result) {
	if !c.log.Enabled(ctx, slog.LevelDebug) {
		return
	}
	c.log.LogAttrs(ctx, slog.LevelDebug, "egress attempt",
		slog.String("host", host),
		slog.Int("status", res.StatusCode),
		slog.String("class", res.ErrorClass),
		slog.Int64("response_bytes", res.ResponseBytes),
		slog.Duration("duration", c.now().Sub(res.Started)),
	)
}

// scrubURL drops the *url.Error layer, whose message repeats the whole URL
// (path and query may carry secrets, e.g. Slack webhook tokens).
func scrubURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

// classify maps a transport error to an error class. parent is the
// caller's context, attempt the per-attempt one derived from it.
func classify(parent, attempt context.Context, err error, tlsFailed bool) string {
	var (
		denied *DeniedError
		stage  *stageError
		netErr net.Error
	)
	switch {
	case errors.As(err, &denied):
		return ClassDenied
	case errors.Is(parent.Err(), context.Canceled):
		return ClassCanceled
	case attempt.Err() != nil, errors.Is(err, context.DeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ClassTimeout
	case errors.Is(err, context.Canceled):
		return ClassCanceled
	case errors.As(err, &stage):
		return stage.class
	case tlsFailed || isTLSError(err):
		return ClassTLS
	default:
		return ClassProtocol
	}
}

func isTLSError(err error) bool {
	var (
		recordErr  tls.RecordHeaderError
		alertErr   tls.AlertError
		verifyErr  *tls.CertificateVerificationError
		unknownCA  x509.UnknownAuthorityError
		hostErr    x509.HostnameError
		invalidErr x509.CertificateInvalidError
	)
	return errors.As(err, &recordErr) || errors.As(err, &alertErr) || errors.As(err, &verifyErr) ||
		errors.As(err, &unknownCA) || errors.As(err, &hostErr) || errors.As(err, &invalidErr)
}

// attemptTrace records what httptrace reports about one attempt. The
// transport may call it from its dial goroutine, even after Post returned.
type attemptTrace struct {
	mu     sync.Mutex
	remote netip.AddrPort
	tlsErr bool
}

func (t *attemptTrace) clientTrace() *httptrace.ClientTrace {
	return &httptrace.ClientTrace{
		GotConn: func(info httptrace.GotConnInfo) {
			if tcp, ok := info.Conn.RemoteAddr().(*net.TCPAddr); ok {
				t.mu.Lock()
				t.remote = tcp.AddrPort()
				t.mu.Unlock()
			}
		},
		TLSHandshakeDone: func(_ tls.ConnectionState, err error) {
			if err != nil {
				t.mu.Lock()
				t.tlsErr = true
				t.mu.Unlock()
			}
		},
	}
}

func (t *attemptTrace) remoteAddr() netip.AddrPort {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.remote
}

func (t *attemptTrace) tlsFailed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.tlsErr
}

// dialContext is the transport's only way out. It checks the port, resolves
// the host itself, refuses the connection if any resolved address is
// denied, and dials only the addresses it checked; the dialer's control
// hook checks each socket address once more.
func (c *Client) dialContext(ctx context.Context, network, address string) (net.Conn, error) {
	// The transport's dial context carries no deadline (it outlives the
	// request that started it); give it one.
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	hostname, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, &DeniedError{Host: address, Reason: "unparseable dial address"}
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, &DeniedError{Host: hostname, Reason: fmt.Sprintf("invalid port %q", portText)}
	}
	if reason, denied := c.portDenied(uint16(port)); denied {
		return nil, &DeniedError{Host: hostname, Reason: reason}
	}

	addrs, err := c.resolve(ctx, network, hostname)
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if reason, denied := c.policy.Denied(a); denied {
			return nil, &DeniedError{Host: hostname, Addr: a, Reason: reason}
		}
	}

	var firstErr error
	for i, a := range addrs {
		conn, err := c.dialOne(ctx, network, netip.AddrPortFrom(a, uint16(port)), len(addrs)-i)
		if err == nil {
			return conn, nil
		}
		var denied *DeniedError
		if errors.As(err, &denied) {
			denied.Host = hostname
			return nil, denied
		}
		if firstErr == nil {
			firstErr = err
		}
		if ctx.Err() != nil {
			break
		}
	}
	return nil, &stageError{class: ClassConnect, err: fmt.Errorf("connect to %s: %w", hostname, firstErr)}
}

// dialOne dials one checked address, giving it a fair share of the time
// left when more addresses remain to be tried.
func (c *Client) dialOne(ctx context.Context, network string, ap netip.AddrPort, remaining int) (net.Conn, error) {
	if deadline, ok := ctx.Deadline(); ok && remaining > 1 {
		left := time.Until(deadline)
		share := max(left/time.Duration(remaining), min(minDialShare, left))
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, share)
		defer cancel()
	}
	return c.dialer.DialContext(ctx, network, ap.String())
}

// resolve returns the addresses of hostname: the literal itself, or what
// the resolver returns for a name.
func (c *Client) resolve(ctx context.Context, network, hostname string) ([]netip.Addr, error) {
	if a, err := netip.ParseAddr(hostname); err == nil {
		return []netip.Addr{a}, nil
	}
	ipNetwork := "ip"
	switch network {
	case "tcp4":
		ipNetwork = "ip4"
	case "tcp6":
		ipNetwork = "ip6"
	}
	addrs, err := c.resolver.LookupNetIP(ctx, ipNetwork, hostname)
	if err != nil {
		return nil, &stageError{class: ClassDNS, err: fmt.Errorf("resolve %s: %w", hostname, err)}
	}
	if len(addrs) == 0 {
		return nil, &stageError{class: ClassDNS, err: fmt.Errorf("resolve %s: no addresses", hostname)}
	}
	return addrs, nil
}

// control runs on every socket before it connects, with the address
// actually being dialled. It is the last line: whatever produced the
// address, a denied one is never connected to.
func (c *Client) control(_ context.Context, _, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return &DeniedError{Host: address, Reason: "unparseable socket address"}
	}
	if reason, denied := c.policy.Denied(ap.Addr()); denied {
		return &DeniedError{Addr: ap.Addr(), Reason: reason}
	}
	if reason, denied := c.portDenied(ap.Port()); denied {
		return &DeniedError{Host: ap.Addr().String(), Reason: reason}
	}
	return nil
}

func (c *Client) portDenied(port uint16) (string, bool) {
	if c.urlRules.anyPort || port == httpsPort || port == httpPort {
		return "", false
	}
	return fmt.Sprintf("port %d is not allowed (use %d or %d)", port, httpsPort, httpPort), true
}
