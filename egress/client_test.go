package egress

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitTimeout bounds every wait for a condition in these tests.
const waitTimeout = 10 * time.Second

// staticResolver answers from a map; unknown names do not exist. Tests
// never touch a real resolver or any network but loopback.
type staticResolver struct {
	addrs map[string][]netip.Addr
	calls atomic.Int64
}

func newResolver(pairs ...string) *staticResolver {
	r := &staticResolver{addrs: map[string][]netip.Addr{}}
	for i := 0; i < len(pairs); i += 2 {
		r.addrs[pairs[i]] = append(r.addrs[pairs[i]], netip.MustParseAddr(pairs[i+1]))
	}
	return r
}

func (r *staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.calls.Add(1)
	addrs, ok := r.addrs[host]
	if !ok {
		return nil, &net.DNSError{Err: "no such host", Name: host, IsNotFound: true}
	}
	return addrs, nil
}

// recordingListener records the remote address of every accepted connection.
type recordingListener struct {
	net.Listener
	mu       sync.Mutex
	accepted []string
	changed  chan struct{} // closed and replaced on every accept
}

func newRecordingListener(ln net.Listener) *recordingListener {
	return &recordingListener{Listener: ln, changed: make(chan struct{})}
}

func (l *recordingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.mu.Lock()
		l.accepted = append(l.accepted, c.RemoteAddr().String())
		close(l.changed)
		l.changed = make(chan struct{})
		l.mu.Unlock()
	}
	return c, err
}

// assertNoConnections proves that nothing connected to l since the last
// call: it makes a probe connection and waits until l has accepted it.
// Accepts come in order, so any earlier connection was recorded first.
func assertNoConnections(t *testing.T, l *recordingListener) {
	t.Helper()
	probe, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatalf("probe dial: %v", err)
	}
	defer probe.Close()
	me := probe.LocalAddr().String()
	deadline := time.After(waitTimeout)
	for {
		l.mu.Lock()
		accepted, changed := append([]string(nil), l.accepted...), l.changed
		l.mu.Unlock()
		for _, a := range accepted {
			if a == me {
				l.mu.Lock()
				l.accepted = l.accepted[len(accepted):]
				l.mu.Unlock()
				if len(accepted) != 1 {
					t.Fatalf("listener accepted %v before the probe %s, want no connections", accepted[:len(accepted)-1], me)
				}
				return
			}
		}
		select {
		case <-changed:
		case <-deadline:
			t.Fatalf("probe connection %s not accepted within %v", me, waitTimeout)
		}
	}
}

// startServer starts an HTTPS server on loopback whose listener records
// connections. EnableHTTP2 is set when h2 is true. The server uses
// httptest's built-in certificate (for 127.0.0.1, ::1 and example.com).
func startServer(t testing.TB, h http.Handler, h2 bool) (*httptest.Server, *recordingListener) {
	return startServerTLS(t, h, h2, nil)
}

// startServerTLS is startServer with the server's own TLS configuration.
func startServerTLS(t testing.TB, h http.Handler, h2 bool, cfg *tls.Config) (*httptest.Server, *recordingListener) {
	t.Helper()
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = cfg
	rl := newRecordingListener(srv.Listener)
	srv.Listener = rl
	srv.EnableHTTP2 = h2
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // probes and refused handshakes
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv, rl
}

// selfSignedCert returns a fresh self-signed certificate for 127.0.0.1,
// one that no client in these tests trusts.
func selfSignedCert(t testing.TB) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "untrusted"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// serverPort returns the port of srv.
func serverPort(t testing.TB, srv *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// newTestClient returns a client that trusts srv (if not nil), logs nowhere
// and resolves from r.
func newTestClient(t testing.TB, cfg Config, srv *httptest.Server, r Resolver) *Client {
	t.Helper()
	if srv != nil {
		cfg.ExtraRootCAs = []*x509.Certificate{srv.Certificate()}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.Resolver = r
	c, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// fakeClock is a clock that moves only when told to.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// releaseAtEnd closes ch, which handlers block on, when the test ends.
// Call it after starting the server: cleanups run last-in, first-out, so the
// handlers return before httptest.Server.Close waits for them.
func releaseAtEnd(t *testing.T, ch chan struct{}) {
	t.Cleanup(func() { close(ch) })
}

func TestPostDeliversExactBytes(t *testing.T) {
	// Bytes a JSON round trip would change: key order, spacing, escapes.
	body := []byte("[{\"z\":1,  \"a\":\"<\\u00e9>&\\/\",\"n\":1.50}]\n")
	clock := &fakeClock{now: time.Date(2026, 12, 3, 18, 0, 0, 0, time.UTC)}
	type seen struct {
		method, path, query string
		body                []byte
		header              http.Header
	}
	got := make(chan seen, 1)
	srv, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- seen{r.Method, r.URL.Path, r.URL.RawQuery, b, r.Header.Clone()}
		clock.Advance(3 * time.Second)
		io.WriteString(w, `{"ok":true}`)
	}), false)
	c := newTestClient(t, Config{AllowPrivate: true, UserAgent: "Herald/test", Now: clock.Now}, srv, nil)

	hdr := http.Header{"Tailscale-Webhook-Signature": {"t=1764784800,v1=abc"}}
	res := c.Post(context.Background(), Request{URL: srv.URL + "/hook?token=abc", Body: body, Header: hdr})
	if !res.OK() {
		t.Fatalf("Post: status %d, class %q, err %v; want OK", res.StatusCode, res.ErrorClass, res.Err)
	}
	s := <-got
	checks := []struct{ what, got, want string }{
		{"method", s.method, http.MethodPost},
		{"path", s.path, "/hook"},
		{"query", s.query, "token=abc"},
		{"body", string(s.body), string(body)},
		{"Content-Type", s.header.Get("Content-Type"), "application/json"},
		{"User-Agent", s.header.Get("User-Agent"), "Herald/test"},
		{"signature", s.header.Get("Tailscale-Webhook-Signature"), "t=1764784800,v1=abc"},
		{"Accept-Encoding", s.header.Get("Accept-Encoding"), ""},
		{"status", fmt.Sprint(res.StatusCode), "200"},
		{"class", res.ErrorClass, ""},
		{"response bytes", fmt.Sprint(res.ResponseBytes), "11"},
		{"truncated", fmt.Sprint(res.Truncated), "false"},
		{"remote", res.RemoteAddr.String(), srv.Listener.Addr().String()},
		{"started", res.Started.String(), "2026-12-03 18:00:00 +0000 UTC"},
		{"duration", res.Duration.String(), "3s"},
	}
	for _, ck := range checks {
		if ck.got != ck.want {
			t.Errorf("%s: got %q, want %q", ck.what, ck.got, ck.want)
		}
	}
	if hdr.Get("Content-Type") != "" || hdr.Get("User-Agent") != "" {
		t.Errorf("Post modified the caller's header: %v", hdr)
	}
}

func TestPostKeepsCallerContentType(t *testing.T) {
	got := make(chan string, 1)
	srv, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Get("Content-Type")
	}), false)
	c := newTestClient(t, Config{AllowPrivate: true}, srv, nil)
	const ct = "application/json; charset=UTF-8"
	res := c.Post(context.Background(), Request{URL: srv.URL, Body: []byte("{}"), Header: http.Header{"Content-Type": {ct}}})
	if !res.OK() {
		t.Fatalf("Post: %v", res.Err)
	}
	if g := <-got; g != ct {
		t.Errorf("Content-Type: got %q, want %q", g, ct)
	}
}

// TestDialRefusesDeniedAddresses drives the transport directly, without the
// URL check in Post, so that the dial-time check is what refuses.
func TestDialRefusesDeniedAddresses(t *testing.T) {
	srv, rl := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
	port := serverPort(t, srv)
	r := newResolver(
		"localhost", "127.0.0.1", "localhost", "::1",
		"hooks.example.com", "127.0.0.1",
		"mixed.example.com", "93.184.215.14", "mixed.example.com", "127.0.0.1",
		"mixed-first.example.com", "127.0.0.1", "mixed-first.example.com", "93.184.215.14",
		"mapped.example.com", "::ffff:127.0.0.1",
		"nat64.example.com", "64:ff9b::7f00:1",
		"zero.example.com", "0.0.0.0",
	)
	c := newTestClient(t, Config{allowAnyPort: true}, srv, r)
	tests := []struct {
		name     string
		host     string
		wantAddr string
	}{
		{"IPv4 loopback literal", "127.0.0.1", "127.0.0.1"},
		{"IPv6 loopback literal", "[::1]", "::1"},
		{"unspecified reaches loopback here", "0.0.0.0", "0.0.0.0"},
		{"mapped loopback literal", "[::ffff:127.0.0.1]", "::ffff:127.0.0.1"},
		{"localhost", "localhost", "127.0.0.1"},
		{"rebinding name", "hooks.example.com", "127.0.0.1"},
		{"public then loopback", "mixed.example.com", "127.0.0.1"},
		{"loopback then public", "mixed-first.example.com", "127.0.0.1"},
		{"name to mapped loopback", "mapped.example.com", "::ffff:127.0.0.1"},
		{"name to NAT64 loopback", "nat64.example.com", "64:ff9b::7f00:1"},
		{"name to unspecified", "zero.example.com", "0.0.0.0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(http.MethodPost, "https://"+tt.host+":"+port+"/", strings.NewReader("[]"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := c.http.Do(req)
			if err == nil {
				resp.Body.Close()
				t.Fatalf("request to %s succeeded with %s, want refused", tt.host, resp.Status)
			}
			var de *DeniedError
			if !errors.As(err, &de) {
				t.Fatalf("error %v (%T), want a *DeniedError", err, err)
			}
			if de.Addr != netip.MustParseAddr(tt.wantAddr) {
				t.Errorf("DeniedError.Addr: got %s, want %s", de.Addr, tt.wantAddr)
			}
			assertNoConnections(t, rl)
		})
	}
}

// TestControlHookRefuses dials with the client's net.Dialer, bypassing
// resolution and the pre-dial check: the socket hook alone must refuse.
func TestControlHookRefuses(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	rl := newRecordingListener(ln)
	t.Cleanup(func() { rl.Close() })
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()

	strict := newTestClient(t, Config{allowAnyPort: true}, nil, newResolver())
	_, err = strict.dialer.DialContext(context.Background(), "tcp", ln.Addr().String())
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("strict dial error %v, want a *DeniedError", err)
	}
	if want := "egress denied: loopback address 127.0.0.1"; de.Error() != want {
		t.Errorf("error: got %q, want %q", de.Error(), want)
	}
	assertNoConnections(t, rl)

	// The same dial in development mode connects: the hook is what refused.
	dev := newTestClient(t, Config{AllowPrivate: true}, nil, newResolver())
	conn, err := dev.dialer.DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("development-mode dial: %v", err)
	}
	conn.Close()
}

// TestPostRefusesRebinding is the DNS-rebinding case end to end: the name
// looks public and passes URL validation, but resolves to loopback.
func TestPostRefusesRebinding(t *testing.T) {
	srv, rl := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
	port := serverPort(t, srv)
	tests := []struct {
		name    string
		addrs   []string
		wantMsg string
	}{
		{"loopback", []string{"127.0.0.1"}, "post to hooks.example.com: egress denied: hooks.example.com resolves to loopback address 127.0.0.1"},
		{"public and loopback", []string{"93.184.215.14", "127.0.0.1"}, "post to hooks.example.com: egress denied: hooks.example.com resolves to loopback address 127.0.0.1"},
		{"public and metadata", []string{"93.184.215.14", "169.254.169.254"}, "post to hooks.example.com: egress denied: hooks.example.com resolves to metadata-service link-local address 169.254.169.254"},
		{"public and CGNAT", []string{"2606:4700::1", "100.100.100.100"}, "post to hooks.example.com: egress denied: hooks.example.com resolves to CGNAT address 100.100.100.100"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var pairs []string
			for _, a := range tt.addrs {
				pairs = append(pairs, "hooks.example.com", a)
			}
			c := newTestClient(t, Config{allowAnyPort: true}, srv, newResolver(pairs...))
			res := c.Post(context.Background(), Request{URL: "https://hooks.example.com:" + port + "/secret", Body: []byte("[]")})
			if res.ErrorClass != ClassDenied {
				t.Fatalf("class: got %q (%v), want %q", res.ErrorClass, res.Err, ClassDenied)
			}
			var de *DeniedError
			if !errors.As(res.Err, &de) {
				t.Fatalf("error %v, want a *DeniedError", res.Err)
			}
			if res.Err.Error() != tt.wantMsg {
				t.Errorf("error: got %q, want %q", res.Err, tt.wantMsg)
			}
			if res.OK() || res.StatusCode != 0 || res.RemoteAddr.IsValid() {
				t.Errorf("result %+v, want no status and no remote address", res)
			}
			assertNoConnections(t, rl)
		})
	}
}

func TestPostRefusesDeniedLiteralBeforeDialing(t *testing.T) {
	srv, rl := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
	r := newResolver()
	c := newTestClient(t, Config{allowAnyPort: true}, srv, r)
	u := strings.Replace(srv.URL, "127.0.0.1", "0x7f.1", 1)
	res := c.Post(context.Background(), Request{URL: u, Body: []byte("[]")})
	var de *DeniedError
	if res.ErrorClass != ClassDenied || !errors.As(res.Err, &de) {
		t.Fatalf("class %q, err %v; want %q with a *DeniedError", res.ErrorClass, res.Err, ClassDenied)
	}
	if want := "url host 0x7f.1 is the loopback address 127.0.0.1"; res.Err.Error() != want {
		t.Errorf("error: got %q, want %q", res.Err, want)
	}
	assertNoConnections(t, rl)
}

func TestPostRefusesPortsUnderStrictPolicy(t *testing.T) {
	r := newResolver("hooks.example.com", "93.184.215.14")
	c := newTestClient(t, Config{}, nil, r)
	res := c.Post(context.Background(), Request{URL: "https://hooks.example.com:8443/secret", Body: []byte("[]")})
	if res.ErrorClass != ClassDenied {
		t.Fatalf("class: got %q (%v), want %q", res.ErrorClass, res.Err, ClassDenied)
	}
	if want := "url port 8443 is not allowed (use 443 or 80)"; res.Err.Error() != want {
		t.Errorf("error: got %q, want %q", res.Err, want)
	}
	if n := r.calls.Load(); n != 0 {
		t.Errorf("resolver calls: got %d, want 0", n)
	}

	// The transport refuses too, before resolving.
	_, err := c.dialContext(context.Background(), "tcp", "hooks.example.com:8443")
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("dial error %v, want a *DeniedError", err)
	}
	if want := "egress denied: hooks.example.com: port 8443 is not allowed (use 443 or 80)"; err.Error() != want {
		t.Errorf("dial error: got %q, want %q", err, want)
	}
	if n := r.calls.Load(); n != 0 {
		t.Errorf("resolver calls after dial: got %d, want 0", n)
	}
}

func TestPostDoesNotFollowRedirects(t *testing.T) {
	for _, code := range []int{http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			var requests atomic.Int64
			srv, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				requests.Add(1)
				if r.URL.Path == "/hook" {
					http.Redirect(w, r, "/elsewhere", code)
				}
			}), false)
			c := newTestClient(t, Config{AllowPrivate: true}, srv, nil)
			res := c.Post(context.Background(), Request{URL: srv.URL + "/hook", Body: []byte("[]")})
			if res.StatusCode != code || res.ErrorClass != ClassRedirect || res.OK() {
				t.Errorf("result: status %d, class %q, OK %v; want %d, %q, false", res.StatusCode, res.ErrorClass, res.OK(), code, ClassRedirect)
			}
			var se *StatusError
			if !errors.As(res.Err, &se) || se.StatusCode != code {
				t.Errorf("error %v, want a *StatusError with %d", res.Err, code)
			}
			if n := requests.Load(); n != 1 {
				t.Errorf("server requests: got %d, want 1", n)
			}
		})
	}
}

func TestPostCapsResponseBody(t *testing.T) {
	const limit = 64 << 10
	tests := []struct {
		name      string
		size      int
		hang      bool // keep the response open after writing
		wantBytes int64
		wantTrunc bool
	}{
		{"small", 100, false, 100, false},
		{"exactly the cap", limit, false, limit, false},
		{"10 MiB then hang", 10 << 20, true, limit, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				chunk := bytes.Repeat([]byte("x"), 32<<10)
				for sent := 0; sent < tt.size; sent += len(chunk) {
					if _, err := w.Write(chunk[:min(len(chunk), tt.size-sent)]); err != nil {
						return
					}
				}
				if tt.hang {
					w.(http.Flusher).Flush()
					<-release
				}
			}), false)
			releaseAtEnd(t, release)
			// A long deadline: if the client read past the cap it would
			// block on the hanging body and fail with "timeout".
			c := newTestClient(t, Config{AllowPrivate: true, MaxResponseBytes: limit, AttemptTimeout: time.Minute}, srv, nil)
			res := c.Post(context.Background(), Request{URL: srv.URL, Body: []byte("[]")})
			if !res.OK() {
				t.Fatalf("Post: class %q, err %v; want OK", res.ErrorClass, res.Err)
			}
			if res.ResponseBytes != tt.wantBytes || res.Truncated != tt.wantTrunc {
				t.Errorf("response bytes %d, truncated %v; want %d, %v", res.ResponseBytes, res.Truncated, tt.wantBytes, tt.wantTrunc)
			}
		})
	}
}

func TestPostAttemptTimeout(t *testing.T) {
	const timeout = 200 * time.Millisecond
	tests := []struct {
		name    string
		handler func(release chan struct{}) http.HandlerFunc
	}{
		{"before response headers", func(release chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				<-release
			}
		}},
		{"while reading the body", func(release chan struct{}) http.HandlerFunc {
			return func(w http.ResponseWriter, r *http.Request) {
				io.WriteString(w, "partial")
				w.(http.Flusher).Flush()
				<-release
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			release := make(chan struct{})
			srv, _ := startServer(t, tt.handler(release), false)
			releaseAtEnd(t, release)
			c := newTestClient(t, Config{AllowPrivate: true, AttemptTimeout: timeout}, srv, nil)
			res := c.Post(context.Background(), Request{URL: srv.URL, Body: []byte("[]")})
			if res.ErrorClass != ClassTimeout || res.OK() {
				t.Errorf("class %q (err %v), OK %v; want %q, false", res.ErrorClass, res.Err, res.OK(), ClassTimeout)
			}
		})
	}

	t.Run("during TLS handshake", func(t *testing.T) {
		// A listener that accepts, never speaks, and reports when the
		// client hangs up.
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		hungUp := make(chan struct{})
		go func() {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
			io.Copy(io.Discard, conn) // the ClientHello, then EOF when the client gives up
			close(hungUp)
		}()
		c := newTestClient(t, Config{AllowPrivate: true, AttemptTimeout: timeout}, nil, nil)
		res := c.Post(context.Background(), Request{URL: "https://" + ln.Addr().String() + "/", Body: []byte("[]")})
		if res.ErrorClass != ClassTimeout {
			t.Errorf("class %q (err %v), want %q", res.ErrorClass, res.Err, ClassTimeout)
		}
		// net/http finishes dials in the background after the request
		// gave up; the handshake must not outlive the attempt timeout
		// by much, or a silent endpoint would pin a goroutine and a socket.
		select {
		case <-hungUp:
		case <-time.After(waitTimeout):
			t.Fatalf("client still connected %v after the attempt timed out, want the handshake abandoned", waitTimeout)
		}
	})
}

func TestPostIgnoresEnvironmentProxy(t *testing.T) {
	proxyLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	proxy := newRecordingListener(proxyLn)
	t.Cleanup(func() { proxy.Close() })
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	proxyURL := "http://" + proxyLn.Addr().String()
	for _, k := range []string{"HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"} {
		t.Setenv(k, proxyURL)
	}
	t.Setenv("NO_PROXY", "")
	t.Setenv("no_proxy", "")

	srv, _ := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
	// A name, not 127.0.0.1: net/http never proxies loopback literals, so
	// only a name shows whether the environment is read.
	c := newTestClient(t, Config{AllowPrivate: true}, srv, newResolver("example.com", "127.0.0.1"))
	if c.transport.Proxy != nil {
		t.Errorf("transport.Proxy is set, want nil")
	}
	res := c.Post(context.Background(), Request{URL: "https://example.com:" + serverPort(t, srv) + "/", Body: []byte("[]")})
	if !res.OK() {
		t.Fatalf("Post: class %q, err %v; want OK", res.ErrorClass, res.Err)
	}
	assertNoConnections(t, proxy)
}

func TestPostConcurrent(t *testing.T) {
	for _, h2 := range []bool{false, true} {
		t.Run(map[bool]string{false: "http1", true: "http2"}[h2], func(t *testing.T) {
			testPostConcurrent(t, h2)
		})
	}
}

func testPostConcurrent(t *testing.T, h2 bool) {
	const n = 200
	var mu sync.Mutex
	seen := map[string]int{}
	protos := map[string]int{}
	srv, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		seen[string(b)]++
		protos[r.Proto]++
		mu.Unlock()
	}), h2)
	c := newTestClient(t, Config{AllowPrivate: true}, srv, nil)

	var wg sync.WaitGroup
	results := make([]Result, n)
	for i := range n {
		wg.Go(func() {
			results[i] = c.Post(context.Background(), Request{URL: srv.URL, Body: fmt.Appendf(nil, `[{"i":%d}]`, i)})
		})
	}
	wg.Wait()
	for i, res := range results {
		if !res.OK() {
			t.Errorf("post %d: class %q, err %v; want OK", i, res.ErrorClass, res.Err)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != n {
		t.Errorf("distinct bodies received: got %d, want %d", len(seen), n)
	}
	for b, count := range seen {
		if count != 1 {
			t.Errorf("body %s received %d times, want 1", b, count)
		}
	}
	wantProto := map[bool]string{false: "HTTP/1.1", true: "HTTP/2.0"}[h2]
	if protos[wantProto] != n {
		t.Errorf("protocols seen: got %v, want %d × %s", protos, n, wantProto)
	}
}

// TestSlowEndpointDoesNotDelayOthers: with many deliveries stuck on a
// hanging endpoint, a delivery to another endpoint still goes through.
func TestSlowEndpointDoesNotDelayOthers(t *testing.T) {
	const stuck = 50
	release := make(chan struct{})
	arrived := make(chan struct{}, stuck)
	slow, _ := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		arrived <- struct{}{}
		<-release
	}), false)
	fast, _ := startServer(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false)
	c := newTestClient(t, Config{AllowPrivate: true, AttemptTimeout: time.Minute}, slow, nil)
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)       // second: the stuck posts finish
	releaseAtEnd(t, release) // first: the slow handlers return

	for range stuck {
		wg.Go(func() { c.Post(context.Background(), Request{URL: slow.URL, Body: []byte("[]")}) })
	}
	deadline := time.After(waitTimeout)
	for range stuck {
		select {
		case <-arrived:
		case <-deadline:
			t.Fatalf("slow endpoint did not receive %d requests within %v", stuck, waitTimeout)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if res := c.Post(ctx, Request{URL: fast.URL, Body: []byte("[]")}); !res.OK() {
		t.Errorf("delivery to the fast endpoint with %d stuck on the slow one: class %q, err %v; want OK", stuck, res.ErrorClass, res.Err)
	}
}

func TestPostErrorClasses(t *testing.T) {
	trusted, _ := startServer(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/500":
			w.WriteHeader(http.StatusInternalServerError)
		case "/404":
			w.WriteHeader(http.StatusNotFound)
		case "/close":
			conn, _, _ := w.(http.Hijacker).Hijack()
			conn.Close()
		case "/short":
			conn, buf, _ := w.(http.Hijacker).Hijack()
			buf.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\nshort")
			buf.Flush()
			conn.Close()
		}
	}), false)
	untrusted, _ := startServerTLS(t, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), false,
		&tls.Config{Certificates: []tls.Certificate{selfSignedCert(t)}})
	closedLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := closedLn.Addr().String()
	closedLn.Close()

	port := serverPort(t, trusted)
	r := newResolver("example.com", "127.0.0.1", "wrong-name.example.net", "127.0.0.1")
	c := newTestClient(t, Config{AllowPrivate: true}, trusted, r)
	canceled, cancel := context.WithCancel(context.Background())
	cancel()

	tests := []struct {
		name       string
		ctx        context.Context
		url        string
		wantClass  string
		wantStatus int
	}{
		{"not https", context.Background(), "http://example.com/", ClassURL, 0},
		{"unknown name", context.Background(), "https://nowhere.example.org:" + port + "/", ClassDNS, 0},
		{"nothing listening", context.Background(), "https://" + closedAddr + "/", ClassConnect, 0},
		{"untrusted certificate", context.Background(), untrusted.URL, ClassTLS, 0},
		{"certificate for another name", context.Background(), "https://wrong-name.example.net:" + port + "/", ClassTLS, 0},
		{"connection closed before a status", context.Background(), trusted.URL + "/close", ClassProtocol, 0},
		{"server error", context.Background(), trusted.URL + "/500", ClassStatus, 500},
		{"not found", context.Background(), trusted.URL + "/404", ClassStatus, 404},
		{"2xx with a broken body", context.Background(), trusted.URL + "/short", ClassBody, 200},
		{"caller canceled", canceled, trusted.URL + "/", ClassCanceled, 0},
		{"name by the trusted certificate", context.Background(), "https://example.com:" + port + "/", "", 200},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := c.Post(tt.ctx, Request{URL: tt.url, Body: []byte("[]")})
			if res.ErrorClass != tt.wantClass || res.StatusCode != tt.wantStatus {
				t.Errorf("class %q, status %d (err %v); want %q, %d", res.ErrorClass, res.StatusCode, res.Err, tt.wantClass, tt.wantStatus)
			}
			if ok := tt.wantClass == ""; res.OK() != ok || (res.Err == nil) != ok {
				t.Errorf("OK %v, err %v; want OK %v", res.OK(), res.Err, ok)
			}
		})
	}
}

func TestResultOK(t *testing.T) {
	tests := []struct {
		name string
		res  Result
		want bool
	}{
		{"200", Result{StatusCode: 200}, true},
		{"204", Result{StatusCode: 204}, true},
		{"299", Result{StatusCode: 299}, true},
		{"199", Result{StatusCode: 199}, false},
		{"300", Result{StatusCode: 300}, false},
		{"404", Result{StatusCode: 404}, false},
		{"no status", Result{}, false},
		{"200 with body error", Result{StatusCode: 200, Err: io.ErrUnexpectedEOF, ErrorClass: ClassBody}, false},
	}
	for _, tt := range tests {
		if got := tt.res.OK(); got != tt.want {
			t.Errorf("%s: OK() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestNewWarnsWhenWidened(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"strict", Config{}, nil},
		{"development mode", Config{AllowPrivate: true}, []string{"development mode"}},
		{"extra roots", Config{ExtraRootCAs: []*x509.Certificate{{Raw: []byte{0}}}}, []string{"extra root certificates"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			tt.cfg.Logger = slog.New(slog.NewTextHandler(&buf, nil))
			if _, err := New(tt.cfg); err != nil {
				t.Fatalf("New: %v", err)
			}
			out := buf.String()
			if len(tt.want) == 0 && out != "" {
				t.Errorf("log: got %q, want nothing", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, "level=WARN") || !strings.Contains(out, w) {
					t.Errorf("log: got %q, want a warning containing %q", out, w)
				}
			}
		})
	}
}

func TestNewRejectsNegativeLimits(t *testing.T) {
	for _, cfg := range []Config{{AttemptTimeout: -1}, {MaxResponseBytes: -1}, {MaxIdleConns: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): got no error, want one", cfg)
		}
	}
}

func TestLoadCertificates(t *testing.T) {
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	pemBytes := append([]byte("# comment\n"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: []byte{1}})...)
	pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})...)
	if err := os.WriteFile(good, pemBytes, 0o600); err != nil {
		t.Fatal(err)
	}
	empty := filepath.Join(dir, "empty.pem")
	if err := os.WriteFile(empty, []byte("nothing here\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	certs, err := LoadCertificates(good)
	if err != nil || len(certs) != 1 || !certs[0].Equal(srv.Certificate()) {
		t.Errorf("LoadCertificates(good): got %d certs, err %v; want the server certificate", len(certs), err)
	}
	for _, bad := range []string{empty, filepath.Join(dir, "missing.pem")} {
		if _, err := LoadCertificates(bad); err == nil {
			t.Errorf("LoadCertificates(%s): got no error, want one", bad)
		}
	}

	// The loaded certificate is trusted for delivery.
	c := newTestClient(t, Config{AllowPrivate: true, ExtraRootCAs: certs}, nil, nil)
	if res := c.Post(context.Background(), Request{URL: srv.URL, Body: []byte("[]")}); res.StatusCode != http.StatusNotFound {
		t.Errorf("Post with loaded CA: status %d, err %v; want 404", res.StatusCode, res.Err)
	}
}

func TestDeniedErrorMessage(t *testing.T) {
	tests := []struct {
		name string
		err  *DeniedError
		want string
	}{
		{"address only", &DeniedError{Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback address 127.0.0.1"}, "egress denied: loopback address 127.0.0.1"},
		{"literal host", &DeniedError{Host: "127.0.0.1", Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback address 127.0.0.1"}, "egress denied: loopback address 127.0.0.1"},
		{"resolved name", &DeniedError{Host: "h.example.com", Addr: netip.MustParseAddr("10.0.0.1"), Reason: "private address 10.0.0.1"}, "egress denied: h.example.com resolves to private address 10.0.0.1"},
		{"name", &DeniedError{Host: "printer.local", Reason: "a link-local multicast DNS name (.local, RFC 6762)"}, "egress denied: printer.local: a link-local multicast DNS name (.local, RFC 6762)"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func BenchmarkPost(b *testing.B) {
	body := bytes.Repeat([]byte("x"), 1<<10)
	for _, h2 := range []bool{false, true} {
		name := "http1"
		if h2 {
			name = "http2"
		}
		b.Run(name, func(b *testing.B) {
			srv, _ := startServer(b, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				io.Copy(io.Discard, r.Body)
			}), h2)
			c := newTestClient(b, Config{AllowPrivate: true}, srv, nil)
			b.SetBytes(int64(len(body)))
			b.SetParallelism(32) // 64 goroutines on 2 cores, as in NOTES.md
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if res := c.Post(context.Background(), Request{URL: srv.URL, Body: body}); !res.OK() {
						b.Errorf("Post: class %q, err %v", res.ErrorClass, res.Err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
		})
	}
}
