package events

import (
	"encoding/json"
	"maps"
	"os"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/internal/shared"
)

type catalogFile struct {
	Categories map[string][]string `json:"categories"`
	Types      []struct {
		Type         string          `json:"type"`
		Category     string          `json:"category"`
		Subscribable bool            `json:"subscribable"`
		DataKeys     []string        `json:"dataKeys"`
		Example      json.RawMessage `json:"example"`
	} `json:"types"`
}

func loadCatalog(t *testing.T) catalogFile {
	t.Helper()
	raw, err := os.ReadFile(shared.TestdataPath(t, "events.json"))
	if err != nil {
		t.Fatal(err)
	}
	var c catalogFile
	if err := json.Unmarshal(raw, &c); err != nil {
		t.Fatalf("decode events.json: %v", err)
	}
	return c
}

// TestCatalogMatchesSharedFile checks every type of events.json against
// the catalogue: category, subscribability, data keys, and that New
// rebuilds each example event with the same message and data.
func TestCatalogMatchesSharedFile(t *testing.T) {
	c := loadCatalog(t)
	if got, want := len(Types()), len(c.Types); got != want {
		t.Errorf("catalogue has %d types, events.json %d", got, want)
	}
	for _, want := range c.Types {
		t.Run(want.Type, func(t *testing.T) {
			got, ok := Lookup(want.Type)
			if !ok {
				t.Fatalf("type %q missing from the catalogue", want.Type)
			}
			if got.Category != want.Category || got.Subscribable != want.Subscribable {
				t.Errorf("got category %q subscribable %v, want %q %v", got.Category, got.Subscribable, want.Category, want.Subscribable)
			}
			if !slices.Equal(got.DataKeys, want.DataKeys) {
				t.Errorf("got data keys %v, want %v", got.DataKeys, want.DataKeys)
			}
			var ex struct {
				Timestamp time.Time      `json:"timestamp"`
				Version   int            `json:"version"`
				Tailnet   string         `json:"tailnet"`
				Message   string         `json:"message"`
				Data      map[string]any `json:"data"`
			}
			if err := json.Unmarshal(want.Example, &ex); err != nil {
				t.Fatal(err)
			}
			var d Data
			if ex.Data != nil {
				raw, _ := json.Marshal(ex.Data)
				if err := json.Unmarshal(raw, &d); err != nil {
					t.Fatal(err)
				}
			}
			payload, err := New("ev_test", ex.Tailnet, want.Type, ex.Timestamp, d)
			if err != nil {
				t.Fatal(err)
			}
			var built map[string]any
			if err := json.Unmarshal(payload, &built); err != nil {
				t.Fatalf("payload is not JSON: %v", err)
			}
			if built["message"] != ex.Message {
				t.Errorf("got message %q, want %q", built["message"], ex.Message)
			}
			if built["timestamp"] != ex.Timestamp.Format(time.RFC3339Nano) || built["version"] != float64(1) || built["tailnet"] != ex.Tailnet || built["type"] != want.Type {
				t.Errorf("envelope %s does not match the example", payload)
			}
			builtData, _ := built["data"].(map[string]any)
			if want.DataKeys == nil {
				if _, present := built["data"]; present {
					t.Errorf("event %s has data; events.json says it is omitted", payload)
				}
				return
			}
			if keys := slices.Sorted(maps.Keys(builtData)); !slices.Equal(keys, want.DataKeys) {
				t.Errorf("got data keys %v, want %v", keys, want.DataKeys)
			}
			wantData, _ := json.Marshal(ex.Data)
			gotData, _ := json.Marshal(builtData)
			if string(gotData) != string(wantData) {
				t.Errorf("got data %s, want %s", gotData, wantData)
			}
		})
	}
}

func TestCategoriesMatchSharedFile(t *testing.T) {
	c := loadCatalog(t)
	for sub, want := range c.Categories {
		got := CategoryMembers(sub)
		sort.Strings(got)
		w := slices.Clone(want)
		sort.Strings(w)
		if !slices.Equal(got, w) {
			t.Errorf("%s: got %v, want %v", sub, got, w)
		}
		if !ValidSubscription(sub) {
			t.Errorf("%s is not a valid subscription", sub)
		}
	}
}

func TestSubscribed(t *testing.T) {
	tests := []struct {
		name string
		subs []string
		typ  string
		want bool
	}{
		{"exact type", []string{NodeCreated}, NodeCreated, true},
		{"other type", []string{NodeCreated}, NodeDeleted, false},
		{"category covers member", []string{SubscribeTailnetManagement}, PolicyUpdate, true},
		{"category does not cover other category", []string{SubscribeTailnetManagement}, SubnetIPForwardingNotEnabled, false},
		{"misconfiguration category", []string{SubscribeDeviceMisconfigurations}, ExitNodeIPForwardingNotEnabled, true},
		{"test is never subscribed", []string{SubscribeTailnetManagement, Test}, Test, false},
		{"webhookDeleted is never subscribed", []string{WebhookDeleted}, WebhookDeleted, false},
		{"no subscriptions", nil, NodeCreated, false},
		{"unknown type", []string{"nodeExploded"}, "nodeExploded", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Subscribed(tt.subs, tt.typ); got != tt.want {
				t.Errorf("Subscribed(%v, %q) = %v, want %v", tt.subs, tt.typ, got, tt.want)
			}
		})
	}
	for _, v := range []string{Test, WebhookUpdated, WebhookDeleted, "", "nodecreated", "category"} {
		if ValidSubscription(v) {
			t.Errorf("ValidSubscription(%q) = true, want false", v)
		}
	}
}

func TestBatchKeepsPayloadBytes(t *testing.T) {
	a := []byte(`{"b":1, "a":"<&>"}`)
	b := []byte(`{"z":[]}`)
	got := string(Batch([][]byte{a, b}))
	if want := `[{"b":1, "a":"<&>"},{"z":[]}]`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
	if got, want := BatchSize(len(a)+len(b), 2), len(Batch([][]byte{a, b})); got != want {
		t.Fatalf("BatchSize = %d, want %d", got, want)
	}
	if got := string(Batch(nil)); got != "[]" {
		t.Fatalf("empty batch %q, want []", got)
	}
}

func TestProviderBodies(t *testing.T) {
	p, err := New("ev1", "example.com", NodeCreated, time.Unix(0, 0), Data{DeviceName: "laptop", URL: "https://admin/machines/x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct{ provider, key string }{
		{ProviderSlack, "text"}, {ProviderMattermost, "text"}, {ProviderGoogleChat, "text"}, {ProviderDiscord, "content"},
	} {
		body, err := Body(tt.provider, [][]byte{p, p})
		if err != nil {
			t.Fatalf("%s: %v", tt.provider, err)
		}
		var m map[string]string
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatalf("%s: body %s is not a JSON object: %v", tt.provider, body, err)
		}
		if !strings.Contains(m[tt.key], "Node laptop created") || strings.Count(m[tt.key], "\n") != 1 {
			t.Errorf("%s: %s = %q, want two lines naming the node", tt.provider, tt.key, m[tt.key])
		}
	}
	if _, err := Body("pagerduty", [][]byte{p}); err == nil {
		t.Error("unknown provider type accepted")
	}
}
