package api

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/eventlog"
)

// Messages of answers that must not vary with what exists.
const (
	msgEndpointNotFound = "webhook endpoint not found"
	msgTailnetNotFound  = "tailnet not found"
	msgInternal         = "internal error"
	msgUnavailable      = "temporarily unavailable (the event log cannot be written); try again later"
)

// errorBody is the JSON of every error answer. The official client reads
// "message" (and "data", which Herald never sets); the status is the HTTP
// status.
type errorBody struct {
	Message string `json:"message"`
}

// writeJSON answers with v as JSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		// Only Herald's own types are written here; this cannot happen.
		status, body = http.StatusInternalServerError, []byte(`{"message":"internal error"}`)
	}
	body = append(body, '\n')
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	// Answers may carry signing secrets; nothing is to be cached.
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

// writeError answers {"message": msg} with status.
func writeError(w http.ResponseWriter, status int, msg string) {
	writeJSON(w, status, errorBody{Message: msg})
}

// writeEmpty answers status with no body.
func writeEmpty(w http.ResponseWriter, status int) {
	w.Header().Set("Content-Length", "0")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
}

// fail answers a Backend error: *tailnet.InvalidError → 400 with its
// message, tailnet.ErrNotFound → 404 with notFound, a wrapped
// eventlog.ErrUnavailable or eventlog.ErrClosed → 503 with Retry-After,
// anything else → 500 (logged; its text is never shown).
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error, notFound string) {
	var invalid *tailnet.InvalidError
	switch {
	case errors.As(err, &invalid):
		writeError(w, http.StatusBadRequest, invalid.Msg)
	case errors.Is(err, tailnet.ErrNotFound):
		writeError(w, http.StatusNotFound, notFound)
	case errors.Is(err, eventlog.ErrUnavailable), errors.Is(err, eventlog.ErrClosed):
		// ErrClosed: Herald is shutting down; another instance (or this
		// one, restarted) can take the retry.
		h.log.Warn("api: event log unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		w.Header().Set("Retry-After", strconv.Itoa(RetryAfterSeconds))
		writeError(w, http.StatusServiceUnavailable, msgUnavailable)
	case r.Context().Err() != nil && errors.Is(err, context.Cause(r.Context())):
		// The caller went away; nobody reads this answer.
		h.log.Debug("api: request canceled", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusServiceUnavailable, "request canceled")
	default:
		h.log.Error("api: backend error", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, msgInternal)
	}
}
