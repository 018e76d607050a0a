package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"path"
	"runtime/debug"
	"strings"
	"time"

	"github.com/herald-webhooks/herald/actors/tailnet"
)

// Limits and defaults.
const (
	// DefaultMaxBodyBytes caps a request body when Options.MaxBodyBytes is 0.
	DefaultMaxBodyBytes int64 = 1 << 20
	// MaxChangesPerCall caps the changes one ingest call may carry.
	MaxChangesPerCall = tailnet.MaxChangesPerIngest
	// MaxKeyDescriptionLen caps an API key's description, in bytes.
	MaxKeyDescriptionLen = 256
	// RetryAfterSeconds is the Retry-After of a 503 (event log unavailable).
	RetryAfterSeconds = 5
	// DefaultVersion is reported by /api/v2/herald/version when
	// Options.Version is empty.
	DefaultVersion = "dev"
	// authRealm names the realm in WWW-Authenticate.
	authRealm = "herald"
)

// Options configure NewHandler.
type Options struct {
	// Logger receives one Debug record per request and the errors behind
	// 500 answers. Nil means slog.Default().
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies (413 above it); 0 means
	// DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Version is what /api/v2/herald/version reports.
	Version string
}

type handler struct {
	b       Backend
	log     *slog.Logger
	maxBody int64
	version string
	mux     *http.ServeMux
}

// NewHandler returns the admin API serving b. Every /api/v2 call needs an
// API key (HTTP Basic with the key as user name, or Bearer); /healthz does
// not.
func NewHandler(b Backend, opts Options) http.Handler {
	h := &handler{
		b:       b,
		log:     opts.Logger,
		maxBody: opts.MaxBodyBytes,
		version: opts.Version,
		mux:     http.NewServeMux(),
	}
	if h.log == nil {
		h.log = slog.Default()
	}
	if h.maxBody <= 0 {
		h.maxBody = DefaultMaxBodyBytes
	}
	if h.version == "" {
		h.version = DefaultVersion
	}

	m := h.mux
	// Tailscale API v2: webhooks.
	m.HandleFunc("GET /api/v2/tailnet/{tailnet}/webhooks", h.authed(h.listWebhooks))
	m.HandleFunc("POST /api/v2/tailnet/{tailnet}/webhooks", h.authed(h.createWebhook))
	m.HandleFunc("GET /api/v2/webhooks/{endpointId}", h.authed(h.getWebhook))
	m.HandleFunc("PATCH /api/v2/webhooks/{endpointId}", h.authed(h.updateWebhook))
	m.HandleFunc("DELETE /api/v2/webhooks/{endpointId}", h.authed(h.deleteWebhook))
	m.HandleFunc("POST /api/v2/webhooks/{endpointId}/rotate", h.authed(h.rotateWebhook))
	m.HandleFunc("POST /api/v2/webhooks/{endpointId}/test", h.authed(h.testWebhook))
	// Herald's additions.
	m.HandleFunc("GET /api/v2/webhooks/{endpointId}/status", h.authed(h.webhookStatus))
	m.HandleFunc("POST /api/v2/tailnet/{tailnet}/changes", h.authed(h.ingest))
	m.HandleFunc("POST /api/v2/herald/keys", h.authed(h.createKey))
	m.HandleFunc("GET /api/v2/herald/version", h.authed(h.getVersion))
	m.HandleFunc("GET /healthz", h.healthz)
	return h
}

// ServeHTTP logs the request, recovers from panics and turns the mux's own
// plain-text 404 and 405 answers into JSON.
func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler {
				panic(v)
			}
			h.log.Error("api: panic serving request",
				"method", r.Method, "path", r.URL.Path, "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			if !sw.wroteHeader {
				writeError(sw, http.StatusInternalServerError, msgInternal)
			}
		}
		h.log.Debug("api: request",
			"method", r.Method, "path", r.URL.Path, "status", sw.status(), "duration", time.Since(start))
	}()
	if p := r.URL.Path; p == "" || path.Clean(p) != p {
		// ServeMux would redirect to the cleaned path with an HTML body;
		// no API call has such a path.
		writeError(sw, http.StatusNotFound, "no such API call: check the method and path")
		return
	}
	var out http.ResponseWriter = sw
	if _, pattern := h.mux.Handler(r); pattern == "" {
		out = &muxErrorWriter{ResponseWriter: sw}
	}
	h.mux.ServeHTTP(out, r)
}

// statusWriter remembers the status code for the request log.
type statusWriter struct {
	http.ResponseWriter
	code        int
	wroteHeader bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wroteHeader {
		w.code = code
		w.wroteHeader = true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	return w.ResponseWriter.Write(p)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (w *statusWriter) status() int {
	if !w.wroteHeader {
		return http.StatusOK
	}
	return w.code
}

// muxErrorWriter wraps the ServeMux's own answers (no pattern matched):
// its 404 and 405 get a JSON body; anything else (a redirect to a cleaned
// path) passes through.
type muxErrorWriter struct {
	http.ResponseWriter
	replaced bool
}

func (w *muxErrorWriter) WriteHeader(code int) {
	switch code {
	case http.StatusNotFound:
		w.replaced = true
		writeError(w.ResponseWriter, code, "no such API call: check the method and path")
	case http.StatusMethodNotAllowed:
		w.replaced = true
		allow := w.Header().Get("Allow")
		writeError(w.ResponseWriter, code, "method not allowed; allowed: "+allow)
	default:
		w.ResponseWriter.WriteHeader(code)
	}
}

func (w *muxErrorWriter) Write(p []byte) (int, error) {
	if w.replaced {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}

// authed wraps a handler that needs an API key.
func (h *handler) authed(fn func(http.ResponseWriter, *http.Request, Principal)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key, ok := apiKey(r)
		if !ok {
			unauthorized(w, "API key required: HTTP Basic with the key as user name, or Authorization: Bearer <key>")
			return
		}
		p, ok := h.b.Authenticate(key)
		if !ok {
			unauthorized(w, "invalid API key")
			return
		}
		fn(w, r, p)
	}
}

// apiKey reads the key from HTTP Basic (user name; the password is
// ignored) or from a Bearer token.
func apiKey(r *http.Request) (string, bool) {
	if user, _, ok := r.BasicAuth(); ok {
		return user, user != ""
	}
	auth := r.Header.Get("Authorization")
	scheme, token, found := strings.Cut(auth, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

func unauthorized(w http.ResponseWriter, msg string) {
	w.Header().Set("WWW-Authenticate", `Basic realm="`+authRealm+`", Bearer realm="`+authRealm+`"`)
	writeError(w, http.StatusUnauthorized, msg)
}

// ownTailnet is the path value that stands for the key's own tailnet.
const ownTailnet = "-"

// tailnetOf resolves the {tailnet} path value for p. It answers the
// request itself (400 or 404) and returns false when p may not use it.
func (h *handler) tailnetOf(w http.ResponseWriter, r *http.Request, p Principal) (string, bool) {
	name := r.PathValue("tailnet")
	if name == ownTailnet {
		if p.Tailnet == "" {
			writeError(w, http.StatusBadRequest,
				`tailnet: "-" means the key's own tailnet, and an admin key has none: name a tailnet in the path`)
			return "", false
		}
		return p.Tailnet, true
	}
	name, err := tailnet.CanonicalName(name)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return "", false
	}
	if !p.CanAccess(name) {
		// The same answer whether or not the tailnet exists.
		writeError(w, http.StatusNotFound, msgTailnetNotFound)
		return "", false
	}
	return name, true
}

// endpointOf resolves the {endpointId} path value to the endpoint's
// tailnet, answering 404 (the same for a missing endpoint and for one in a
// tailnet p may not use) when it cannot.
func (h *handler) endpointOf(w http.ResponseWriter, r *http.Request, p Principal) (id, tailnetName string, ok bool) {
	id = r.PathValue("endpointId")
	tn, found := h.b.EndpointTailnet(id)
	if !found || !p.CanAccess(tn) {
		writeError(w, http.StatusNotFound, msgEndpointNotFound)
		return "", "", false
	}
	return id, tn, true
}

func (h *handler) healthz(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write([]byte("ok"))
}

func (h *handler) getVersion(w http.ResponseWriter, _ *http.Request, _ Principal) {
	writeJSON(w, http.StatusOK, map[string]string{"version": h.version})
}
