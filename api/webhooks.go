package api

import (
	"net/http"

	"github.com/herald-webhooks/herald/actors/tailnet"
)

// webhook is the Webhook JSON of Tailscale's API. Secret is set only by
// create and rotate.
type webhook struct {
	tailnet.Endpoint
	Secret string `json:"secret,omitempty"`
}

func toWebhook(e tailnet.Endpoint, secret string) webhook {
	if e.Subscriptions == nil {
		e.Subscriptions = []string{}
	}
	return webhook{Endpoint: e, Secret: secret}
}

// createWebhookRequest is the body of POST /api/v2/tailnet/{tailnet}/webhooks.
type createWebhookRequest struct {
	EndpointURL   *string   `json:"endpointUrl"`
	ProviderType  string    `json:"providerType"`
	Subscriptions *[]string `json:"subscriptions"`
}

// updateWebhookRequest is the body of PATCH /api/v2/webhooks/{endpointId}.
type updateWebhookRequest struct {
	Subscriptions *[]string `json:"subscriptions"`
}

const msgSubscriptionsRequired = "subscriptions: required (a list of event types; it may be empty)"

func (h *handler) listWebhooks(w http.ResponseWriter, r *http.Request, p Principal) {
	tn, ok := h.tailnetOf(w, r, p)
	if !ok {
		return
	}
	eps, err := h.b.ListEndpoints(r.Context(), tn)
	if err != nil {
		h.fail(w, r, err, msgTailnetNotFound)
		return
	}
	out := make([]webhook, 0, len(eps))
	for _, e := range eps {
		out = append(out, toWebhook(e, ""))
	}
	writeJSON(w, http.StatusOK, map[string][]webhook{"webhooks": out})
}

func (h *handler) createWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	tn, ok := h.tailnetOf(w, r, p)
	if !ok {
		return
	}
	var req createWebhookRequest
	if !h.decodeBody(w, r, &req) {
		return
	}
	switch {
	case req.EndpointURL == nil || *req.EndpointURL == "":
		writeError(w, http.StatusBadRequest, "endpointUrl: required")
		return
	case req.Subscriptions == nil || *req.Subscriptions == nil:
		writeError(w, http.StatusBadRequest, msgSubscriptionsRequired)
		return
	}
	e, secret, err := h.b.CreateEndpoint(r.Context(), tn, p.Name, *req.EndpointURL, req.ProviderType, *req.Subscriptions)
	if err != nil {
		h.fail(w, r, err, msgTailnetNotFound)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e, secret))
}

func (h *handler) getWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	e, err := h.b.GetEndpoint(r.Context(), tn, id)
	if err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e, ""))
}

func (h *handler) updateWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	var req updateWebhookRequest
	if !h.decodeBody(w, r, &req) {
		return
	}
	if req.Subscriptions == nil || *req.Subscriptions == nil {
		writeError(w, http.StatusBadRequest, msgSubscriptionsRequired)
		return
	}
	e, err := h.b.UpdateEndpoint(r.Context(), tn, id, p.Name, *req.Subscriptions)
	if err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e, ""))
}

func (h *handler) deleteWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	if err := h.b.DeleteEndpoint(r.Context(), tn, id, p.Name); err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeEmpty(w, http.StatusOK)
}

func (h *handler) rotateWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	e, secret, err := h.b.RotateSecret(r.Context(), tn, id, p.Name)
	if err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeJSON(w, http.StatusOK, toWebhook(e, secret))
}

func (h *handler) testWebhook(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	if err := h.b.TestEndpoint(r.Context(), tn, id); err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeEmpty(w, http.StatusAccepted)
}

func (h *handler) webhookStatus(w http.ResponseWriter, r *http.Request, p Principal) {
	id, tn, ok := h.endpointOf(w, r, p)
	if !ok {
		return
	}
	st, err := h.b.DeliveryStatus(r.Context(), tn, id)
	if err != nil {
		h.fail(w, r, err, msgEndpointNotFound)
		return
	}
	writeJSON(w, http.StatusOK, st)
}
