package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/herald-webhooks/herald/signer"
)

// handler verifies and prints deliveries.
type handler struct {
	secrets     []string
	secretsFile string
	status      int
	tolerance   time.Duration
	now         func() time.Time
	logger      *slog.Logger

	mu  sync.Mutex // serialises writes so a batch's lines stay together
	out io.Writer
}

// NewHandler returns the receiver's HTTP handler for cfg (defaults applied
// as in Run; Listen and CertOut are ignored), for use with any server, such
// as an httptest.Server in another package's tests.
func NewHandler(cfg Config) (http.Handler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	return &handler{
		secrets:     cfg.Secrets,
		secretsFile: cfg.SecretsFile,
		status:      cfg.Status,
		tolerance:   cfg.Tolerance,
		now:         cfg.Now,
		logger:      cfg.Logger,
		out:         cfg.Out,
	}, nil
}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		h.reject(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("method %s not allowed, want POST", r.Method))
		return
	}
	if r.ContentLength > MaxBodyBytes {
		h.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body of %d bytes exceeds %d", r.ContentLength, MaxBodyBytes))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		if _, ok := errors.AsType[*http.MaxBytesError](err); ok {
			h.reject(w, r, http.StatusRequestEntityTooLarge, fmt.Sprintf("body exceeds %d bytes", MaxBodyBytes))
			return
		}
		h.reject(w, r, http.StatusBadRequest, fmt.Sprintf("read body: %v", err))
		return
	}

	headers := r.Header.Values(signer.HeaderName)
	switch {
	case len(headers) == 0:
		h.reject(w, r, http.StatusUnauthorized, "missing "+signer.HeaderName+" header")
		return
	case len(headers) > 1:
		h.reject(w, r, http.StatusUnauthorized, fmt.Sprintf("%d %s headers, want one", len(headers), signer.HeaderName))
		return
	}
	secrets, err := h.currentSecrets()
	if err != nil {
		h.reject(w, r, http.StatusUnauthorized, err.Error())
		return
	}
	if err := signer.Verify(headers[0], body, secrets, h.now(), h.tolerance); err != nil {
		h.reject(w, r, http.StatusUnauthorized, err.Error())
		return
	}

	lines, n, err := compactEvents(body)
	if err != nil {
		h.reject(w, r, http.StatusBadRequest, err.Error())
		return
	}
	h.mu.Lock()
	_, err = h.out.Write(lines)
	h.mu.Unlock()
	if err != nil {
		h.logger.Error("cannot print events", "err", err)
		http.Error(w, "cannot record events", http.StatusInternalServerError)
		return
	}
	h.logger.Info("delivery", "events", n, "bytes", len(body), "status", h.status, "remote", r.RemoteAddr)
	w.WriteHeader(h.status)
}

// reject answers code with a one-line reason and logs it. Reasons come from
// signer errors and our own messages, none of which carry a secret or MAC.
func (h *handler) reject(w http.ResponseWriter, r *http.Request, code int, reason string) {
	reason = strings.ReplaceAll(reason, "\n", " ")
	h.logger.Warn("rejected delivery", "status", code, "reason", reason, "remote", r.RemoteAddr,
		"method", r.Method, "path", r.URL.Path)
	http.Error(w, reason, code)
}

// compactEvents checks that body is a JSON array of objects and returns
// every object compacted on its own line, and their number.
func compactEvents(body []byte) ([]byte, int, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '[' {
		return nil, 0, errors.New("body is not a JSON array")
	}
	var events []json.RawMessage
	if err := json.Unmarshal(body, &events); err != nil {
		return nil, 0, fmt.Errorf("body is not a JSON array: %v", err)
	}
	var out bytes.Buffer
	out.Grow(len(body) + len(events))
	for i, ev := range events {
		if t := bytes.TrimLeft(ev, " \t\r\n"); len(t) == 0 || t[0] != '{' {
			return nil, 0, fmt.Errorf("event %d is not a JSON object", i)
		}
		if err := json.Compact(&out, ev); err != nil {
			return nil, 0, fmt.Errorf("event %d: %v", i, err)
		}
		out.WriteByte('\n')
	}
	return out.Bytes(), len(events), nil
}

// currentSecrets returns the configured secrets plus those in the secrets
// file, read afresh.
func (h *handler) currentSecrets() ([]string, error) {
	if h.secretsFile == "" {
		return h.secrets, nil
	}
	raw, err := os.ReadFile(h.secretsFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		// The path stays in the receiver's own log, not in the answer.
		h.logger.Error("cannot read the secrets file", "file", h.secretsFile, "err", err)
		return nil, errors.New("no secret: the receiver cannot read its secrets file")
	}
	secrets := append([]string(nil), h.secrets...)
	for _, line := range strings.Split(string(raw), "\n") {
		if line = strings.TrimSpace(line); line != "" {
			secrets = append(secrets, line)
		}
	}
	if len(secrets) == 0 {
		return nil, errors.New("no secret yet: the receiver's secrets file is missing or empty")
	}
	return secrets, nil
}
