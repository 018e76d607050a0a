package api_test

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"testing"
	"time"

	tailscale "tailscale.com/client/tailscale/v2"

	"github.com/herald-webhooks/herald/signer"
)

// deliveryDeadline bounds how long a test waits for a delivery to reach
// the loopback receiver.
const deliveryDeadline = 15 * time.Second

// TestOfficialClient drives every webhook call through Tailscale's own Go
// client, pointed at Herald.
func TestOfficialClient(t *testing.T) {
	rcv := newReceiver(t)
	h := newHarness(t, harnessOptions{receiver: rcv.ts})
	key := h.createKey(t, "example.com")
	base, err := url.Parse(h.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	c := &tailscale.Client{BaseURL: base, APIKey: key, Tailnet: "example.com", HTTP: h.ts.Client()}
	ctx := context.Background()
	hooks := c.Webhooks()

	subs := []tailscale.WebhookSubscriptionType{tailscale.WebhookNodeCreated, tailscale.WebhookCategoryDeviceMisconfigurations}
	created, err := hooks.Create(ctx, tailscale.CreateWebhookRequest{
		EndpointURL:   rcv.ts.URL + "/hook",
		ProviderType:  tailscale.WebhookEmptyProviderType,
		Subscriptions: subs,
	})
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	if created.Secret == nil || *created.Secret == "" {
		t.Fatalf("Create: got no secret, want one")
	}
	if created.EndpointID == "" || created.EndpointURL != rcv.ts.URL+"/hook" || !slices.Equal(created.Subscriptions, subs) {
		t.Errorf("Create: got %+v, want an id, url %s and subscriptions %v", created, rcv.ts.URL+"/hook", subs)
	}
	if created.CreatorLoginName != "test key for example.com" {
		t.Errorf("Create: creatorLoginName: got %q, want the key's description %q", created.CreatorLoginName, "test key for example.com")
	}
	if created.Created.IsZero() || created.LastModified.IsZero() {
		t.Errorf("Create: got created %v, lastModified %v, want both set", created.Created, created.LastModified)
	}

	list, err := hooks.List(ctx)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	if len(list) != 1 || list[0].EndpointID != created.EndpointID || list[0].Secret != nil {
		t.Errorf("List: got %+v, want only %s without a secret", list, created.EndpointID)
	}

	got, err := hooks.Get(ctx, created.EndpointID)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	want := *created
	want.Secret = nil
	if got.EndpointID != want.EndpointID || got.EndpointURL != want.EndpointURL || got.ProviderType != want.ProviderType ||
		!got.Created.Equal(want.Created) || !slices.Equal(got.Subscriptions, want.Subscriptions) || got.Secret != nil {
		t.Errorf("Get: got %+v, want %+v", got, want)
	}

	newSubs := []tailscale.WebhookSubscriptionType{tailscale.WebhookUserCreated, tailscale.WebhookNodeDeleted}
	updated, err := hooks.Update(ctx, created.EndpointID, newSubs)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if !slices.Equal(updated.Subscriptions, newSubs) || updated.Secret != nil {
		t.Errorf("Update: got subscriptions %v (secret %v), want %v and no secret", updated.Subscriptions, updated.Secret, newSubs)
	}
	if got, err := hooks.Get(ctx, created.EndpointID); err != nil || !slices.Equal(got.Subscriptions, newSubs) {
		t.Errorf("Get after Update: got %v, %v, want subscriptions %v", got, err, newSubs)
	}

	rotated, err := hooks.RotateSecret(ctx, created.EndpointID)
	if err != nil {
		t.Fatalf("RotateSecret: %v", err)
	}
	if rotated.Secret == nil || *rotated.Secret == "" || *rotated.Secret == *created.Secret {
		t.Errorf("RotateSecret: got secret %v, want a new one", rotated.Secret)
	}

	if err := hooks.Test(ctx, created.EndpointID); err != nil {
		t.Fatalf("Test: %v", err)
	}
	testEvent := rcv.waitFor(t, "test", deliveryDeadline)
	// The delivery after a rotation verifies with the new secret only.
	sb := rcv.signedBatchOf(t, testEvent["id"].(string))
	if err := signer.Verify(sb.header, sb.body, []string{*rotated.Secret}, time.Now(), time.Minute); err != nil {
		t.Errorf("test event after rotation: does not verify with the new secret: %v", err)
	}
	if err := signer.Verify(sb.header, sb.body, []string{*created.Secret}, time.Now(), time.Minute); err == nil {
		t.Errorf("test event after rotation: verifies with the old secret, want the new one only")
	}

	if err := hooks.Delete(ctx, created.EndpointID); err != nil {
		t.Fatalf("Delete: %v", err)
	}
	_, err = hooks.Get(ctx, created.EndpointID)
	if !tailscale.IsNotFound(err) {
		t.Fatalf("Get after Delete: got %v, want a 404 APIError", err)
	}
	var apiErr tailscale.APIError
	if !errors.As(err, &apiErr) || apiErr.Message != "webhook endpoint not found" {
		t.Errorf("Get after Delete: got %#v, want message %q", err, "webhook endpoint not found")
	}
	if list, err := hooks.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("List after Delete: got %v, %v, want none", list, err)
	}
}

// TestOfficialClientDefaultTailnet checks the client's "-" (the key's own
// tailnet) and that its errors carry Herald's status and message.
func TestOfficialClientDefaultTailnet(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	key := h.createKey(t, "example.com")
	base, err := url.Parse(h.ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	own := &tailscale.Client{BaseURL: base, APIKey: key, HTTP: h.ts.Client()} // Tailnet "" → "-"
	created, err := own.Webhooks().Create(ctx, tailscale.CreateWebhookRequest{
		EndpointURL:   "https://hooks.example.com/in",
		Subscriptions: []tailscale.WebhookSubscriptionType{},
	})
	if err != nil {
		t.Fatalf("Create with tailnet -: %v", err)
	}
	if len(created.Subscriptions) != 0 {
		t.Errorf("Create with no subscriptions: got %v, want none", created.Subscriptions)
	}
	if list := h.listWebhooks(t, "example.com"); len(list) != 1 || list[0].EndpointID != created.EndpointID {
		t.Errorf("list example.com: got %+v, want the endpoint made through -", list)
	}

	admin := &tailscale.Client{BaseURL: base, APIKey: h.admin, HTTP: h.ts.Client()}
	_, err = admin.Webhooks().List(ctx)
	var apiErr tailscale.APIError
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusBadRequest {
		t.Errorf("admin List with tailnet -: got %v, want a 400 APIError", err)
	}

	bad := &tailscale.Client{BaseURL: base, APIKey: "wrong", Tailnet: "example.com", HTTP: h.ts.Client()}
	_, err = bad.Webhooks().List(ctx)
	if !errors.As(err, &apiErr) || apiErr.Status != http.StatusUnauthorized {
		t.Errorf("List with a wrong key: got %v, want a 401 APIError", err)
	}
}
