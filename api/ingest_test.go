package api_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"
)

type raisedJSON struct {
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Endpoints []string `json:"endpoints"`
}

type ingestJSON struct {
	Notifications []raisedJSON `json:"notifications"`
}

// TestIngest checks that ingested changes answer with the notifications
// they raised, each naming the endpoints it is queued for, and that those
// notifications reach a subscribed endpoint.
func TestIngest(t *testing.T) {
	rcv := newReceiver(t)
	h := newHarness(t, harnessOptions{receiver: rcv.ts})
	key := h.createKey(t, "example.com")
	ep := h.createWebhook(t, key, "example.com", rcv.ts.URL+"/hook", "nodeCreated", "nodeApproved")

	// One change: nodeAdded that needs approval raises nodeCreated and
	// nodeNeedsApproval; the endpoint subscribes to the first only.
	res := h.call(t, "POST", "/api/v2/tailnet/example.com/changes", key,
		`{"kind":"nodeAdded","actor":"alice@example.com","node":{"id":"n1","name":"build-07.tail5e2d.ts.net","user":"alice@example.com","address":"100.101.102.103","needsApproval":true}}`)
	if res.status != http.StatusOK {
		t.Fatalf("ingest nodeAdded: got %d %s, want 200", res.status, res.body)
	}
	if !strings.Contains(string(res.body), `"endpoints":[]`) {
		t.Errorf("ingest nodeAdded: got %s, want the unsubscribed notification to list \"endpoints\":[]", res.body)
	}
	var one ingestJSON
	decodeInto(t, res.body, &one)
	if got := types(one); !slices.Equal(got, []string{"nodeCreated", "nodeNeedsApproval"}) {
		t.Fatalf("ingest nodeAdded: got types %v, want [nodeCreated nodeNeedsApproval]", got)
	}
	created, approval := one.Notifications[0], one.Notifications[1]
	if created.ID == "" || approval.ID == "" || created.ID == approval.ID {
		t.Errorf("ingest nodeAdded: got ids %q and %q, want two distinct ids", created.ID, approval.ID)
	}
	if !slices.Equal(created.Endpoints, []string{ep.EndpointID}) {
		t.Errorf("nodeCreated endpoints: got %v, want [%s]", created.Endpoints, ep.EndpointID)
	}
	if len(approval.Endpoints) != 0 {
		t.Errorf("nodeNeedsApproval endpoints: got %v, want none", approval.Endpoints)
	}
	ev := rcv.waitFor(t, "nodeCreated", deliveryDeadline)
	if ev["id"] != created.ID {
		t.Errorf("delivered nodeCreated: got id %v, want %s (the id the API answered)", ev["id"], created.ID)
	}

	// A batch, through "-" (the key's own tailnet).
	var batch ingestJSON
	h.mustJSON(t, "POST", "/api/v2/tailnet/-/changes", key,
		`{"changes":[{"kind":"nodeApproved","node":{"id":"n1"}},{"kind":"userAdded","user":{"login":"bob@example.com","roles":["member"]}}]}`,
		http.StatusOK, &batch)
	if got := types(batch); !slices.Equal(got, []string{"nodeApproved", "userCreated"}) {
		t.Fatalf("ingest batch: got types %v, want [nodeApproved userCreated]", got)
	}
	if !slices.Equal(batch.Notifications[0].Endpoints, []string{ep.EndpointID}) || len(batch.Notifications[1].Endpoints) != 0 {
		t.Errorf("ingest batch: got %+v, want nodeApproved for %s and userCreated for none", batch.Notifications, ep.EndpointID)
	}
}

func types(r ingestJSON) []string {
	var out []string
	for _, n := range r.Notifications {
		out = append(out, n.Type)
	}
	return out
}
