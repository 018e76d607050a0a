package api

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"

	"github.com/herald-webhooks/herald/actors/tailnet"
)

// ingestResponse answers POST /api/v2/tailnet/{tailnet}/changes.
type ingestResponse struct {
	Notifications []tailnet.Raised `json:"notifications"`
}

// createKeyRequest is the body of POST /api/v2/herald/keys.
type createKeyRequest struct {
	Tailnet     string `json:"tailnet"`
	Description string `json:"description"`
}

// createKeyResponse answers POST /api/v2/herald/keys. Key is shown once.
type createKeyResponse struct {
	ID      string `json:"id"`
	Key     string `json:"key"`
	Tailnet string `json:"tailnet"`
}

// ingest records tailnet changes. The body is one change object, or
// {"changes": [...]} with 1 to MaxChangesPerCall changes.
func (h *handler) ingest(w http.ResponseWriter, r *http.Request, p Principal) {
	tn, ok := h.tailnetOf(w, r, p)
	if !ok {
		return
	}
	data, ok := h.readBody(w, r)
	if !ok {
		return
	}
	changes, err := decodeChanges(data)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	raised, err := h.b.Ingest(r.Context(), tn, changes)
	if err != nil {
		h.fail(w, r, err, msgTailnetNotFound)
		return
	}
	out := ingestResponse{Notifications: make([]tailnet.Raised, 0, len(raised))}
	for _, n := range raised {
		if n.Endpoints == nil {
			n.Endpoints = []string{}
		}
		out.Notifications = append(out.Notifications, n)
	}
	writeJSON(w, http.StatusOK, out)
}

// decodeChanges decodes an ingest body: one change, or a batch. Its errors
// are safe to show and name the field (and, in a batch, the index).
func decodeChanges(data []byte) ([]tailnet.Change, error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		return nil, jsonError(err, "")
	}
	if _, batch := top["changes"]; !batch {
		var c tailnet.Change
		if err := decodeStrict(data, &c, ""); err != nil {
			return nil, err
		}
		return []tailnet.Change{c}, nil
	}
	var b struct {
		Changes []json.RawMessage `json:"changes"`
	}
	if err := decodeStrict(data, &b, ""); err != nil {
		return nil, err
	}
	switch {
	case len(b.Changes) == 0:
		return nil, fmt.Errorf("changes: at least one change is required")
	case len(b.Changes) > MaxChangesPerCall:
		return nil, fmt.Errorf("changes: %d changes, more than the limit of %d per call", len(b.Changes), MaxChangesPerCall)
	}
	out := make([]tailnet.Change, len(b.Changes))
	for i, raw := range b.Changes {
		if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			return nil, fmt.Errorf("changes[%d]: want a JSON object, got null", i)
		}
		if err := decodeStrict(raw, &out[i], fmt.Sprintf("changes[%d]", i)); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// createKey makes a tailnet-scoped API key. Only admin keys may.
func (h *handler) createKey(w http.ResponseWriter, r *http.Request, p Principal) {
	if p.Tailnet != "" {
		writeError(w, http.StatusForbidden, "an admin key is required to create API keys")
		return
	}
	var req createKeyRequest
	if !h.decodeBody(w, r, &req) {
		return
	}
	switch {
	case req.Tailnet == "":
		writeError(w, http.StatusBadRequest, "tailnet: required")
		return
	case req.Tailnet == ownTailnet:
		writeError(w, http.StatusBadRequest, `tailnet: name a tailnet ("-" is not a tailnet name)`)
		return
	case len(req.Description) > MaxKeyDescriptionLen:
		writeError(w, http.StatusBadRequest,
			fmt.Sprintf("description: longer than %d bytes", MaxKeyDescriptionLen))
		return
	}
	key, id, err := h.b.CreateAPIKey(r.Context(), req.Tailnet, req.Description)
	if err != nil {
		h.fail(w, r, err, msgTailnetNotFound)
		return
	}
	writeJSON(w, http.StatusOK, createKeyResponse{ID: id, Key: key, Tailnet: req.Tailnet})
}
