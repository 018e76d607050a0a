package tailnet_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/clock"
	"github.com/herald-webhooks/herald/events"
	"github.com/herald-webhooks/herald/server"
)

const tn = "example.com"

func start(t *testing.T, dir string) *server.Server {
	t.Helper()
	srv, err := server.New(context.Background(), server.Config{
		DataDir:            dir,
		Clock:              clock.NewFake(time.Date(2026, 12, 3, 18, 4, 5, 0, time.UTC)),
		AllowPrivateEgress: true,
		Logger:             slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

// payloads returns the wire events of the notifications raised, by id,
// read back from the tailnet stream.
func payloads(t *testing.T, srv *server.Server) map[string]map[string]any {
	t.Helper()
	recs, err := srv.Log().ReadStream(context.Background(), tailnet.StreamName(tn), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]map[string]any{}
	for _, rec := range recs {
		if rec.Type != "notification" {
			continue
		}
		var n struct {
			EventID string `json:"eventId"`
			Payload []byte `json:"payload"`
		}
		if err := json.Unmarshal(rec.Data, &n); err != nil {
			t.Fatal(err)
		}
		var ev map[string]any
		if err := json.Unmarshal(n.Payload, &ev); err != nil {
			t.Fatalf("payload %q is not JSON: %v", n.Payload, err)
		}
		out[n.EventID] = ev
	}
	return out
}

func str(s string) *string { return &s }

// TestChangesRaiseTheRightNotifications drives every change kind through
// Ingest and checks the types raised and their data against the catalogue.
func TestChangesRaiseTheRightNotifications(t *testing.T) {
	srv := start(t, t.TempDir())
	ctx := context.Background()
	ep, _, err := srv.CreateEndpoint(ctx, tn, "mira@example.com", "https://hooks.example.com/", "", []string{events.SubscribeTailnetManagement, events.SubscribeDeviceMisconfigurations})
	if err != nil {
		t.Fatal(err)
	}
	node := &tailnet.Node{ID: "n1", Name: "build-07.tail5e2d.ts.net", User: "mira@example.com", Address: "100.101.7.42", NeedsApproval: true}
	steps := []struct {
		name   string
		change tailnet.Change
		want   []string
		check  func(t *testing.T, data map[string]any)
	}{
		{"node added needing approval", tailnet.Change{Kind: tailnet.KindNodeAdded, Actor: "mira@example.com", Node: node},
			[]string{events.NodeCreated, events.NodeNeedsApproval}, func(t *testing.T, d map[string]any) {
				if d["deviceName"] != node.Name || d["managedBy"] != "mira@example.com" || d["url"] != tailnet.DefaultConsoleURL+"/machines/100.101.7.42" {
					t.Errorf("node data %v", d)
				}
			}},
		{"node approved (known node, id only)", tailnet.Change{Kind: tailnet.KindNodeApproved, Actor: "admin@example.com", Node: &tailnet.Node{ID: "n1"}},
			[]string{events.NodeApproved}, func(t *testing.T, d map[string]any) {
				if d["deviceName"] != node.Name || d["actor"] != "admin@example.com" {
					t.Errorf("approved data %v, want the known device name and the approver", d)
				}
			}},
		{"key expiring", tailnet.Change{Kind: tailnet.KindNodeKeyExpiring, Node: &tailnet.Node{ID: "n1", Expiration: "2026-12-04T18:00:00Z"}},
			[]string{events.NodeKeyExpiringInOneDay}, func(t *testing.T, d map[string]any) {
				if d["actor"] != "expiring-node-key-marker" || d["expiration"] != "2026-12-04T18:00:00Z" {
					t.Errorf("expiry data %v", d)
				}
			}},
		{"subnet router misconfigured", tailnet.Change{Kind: tailnet.KindSubnetIPForwardingNotEnabled, Node: &tailnet.Node{ID: "n1"}},
			[]string{events.SubnetIPForwardingNotEnabled}, nil},
		{"node deleted", tailnet.Change{Kind: tailnet.KindNodeDeleted, Actor: "mira@example.com", Node: &tailnet.Node{ID: "n1"}},
			[]string{events.NodeDeleted}, nil},
		{"user added needing approval", tailnet.Change{Kind: tailnet.KindUserAdded, Actor: "mira@example.com", User: &tailnet.User{Login: "jonas@example.com", Roles: []string{"Member"}, NeedsApproval: true}},
			[]string{events.UserCreated, events.UserNeedsApproval}, func(t *testing.T, d map[string]any) {
				if d["user"] != "jonas@example.com" || d["url"] != tailnet.DefaultConsoleURL+"/users?q=jonas%40example.com" {
					t.Errorf("user data %v", d)
				}
			}},
		{"user role changed", tailnet.Change{Kind: tailnet.KindUserRoleChanged, Actor: "mira@example.com", User: &tailnet.User{Login: "jonas@example.com", Roles: []string{"Member", "Network admin"}}},
			[]string{events.UserRoleUpdated}, func(t *testing.T, d map[string]any) {
				old, _ := json.Marshal(d["oldRoles"])
				updated, _ := json.Marshal(d["newRoles"])
				if string(old) != `["Member"]` || string(updated) != `["Member","Network admin"]` {
					t.Errorf("roles: old %s new %s, want [Member] and [Member, Network admin]", old, updated)
				}
			}},
		{"user suspended", tailnet.Change{Kind: tailnet.KindUserSuspended, User: &tailnet.User{Login: "jonas@example.com"}},
			[]string{events.UserSuspended}, nil},
		{"policy saved first time", tailnet.Change{Kind: tailnet.KindPolicySaved, Actor: "mira@example.com", Policy: str(`{"acls": []}`)},
			[]string{events.PolicyUpdate}, func(t *testing.T, d map[string]any) {
				if d["oldPolicy"] != "" || d["newPolicy"] != `{"acls": []}` {
					t.Errorf("policy data %v", d)
				}
			}},
		{"policy saved again", tailnet.Change{Kind: tailnet.KindPolicySaved, Actor: "mira@example.com", Policy: str(`{"acls": [{"action": "accept"}]}`)},
			[]string{events.PolicyUpdate}, func(t *testing.T, d map[string]any) {
				if d["oldPolicy"] != `{"acls": []}` || d["newPolicy"] != `{"acls": [{"action": "accept"}]}` {
					t.Errorf("policy data %v, want the old text from the previous save", d)
				}
			}},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			raised, err := srv.Ingest(ctx, tn, []tailnet.Change{st.change})
			if err != nil {
				t.Fatalf("ingest: %v", err)
			}
			var types []string
			for _, r := range raised {
				types = append(types, r.Type)
				if !slices.Equal(r.Endpoints, []string{ep.ID}) {
					t.Errorf("%s queued for %v, want [%s]", r.Type, r.Endpoints, ep.ID)
				}
			}
			if !slices.Equal(types, st.want) {
				t.Fatalf("raised %v, want %v", types, st.want)
			}
			all := payloads(t, srv)
			for _, r := range raised {
				ev := all[r.ID]
				info, _ := events.Lookup(r.Type)
				data, _ := ev["data"].(map[string]any)
				var keys []string
				for k := range data {
					keys = append(keys, k)
				}
				slices.Sort(keys)
				if !slices.Equal(keys, info.DataKeys) {
					t.Errorf("%s data keys %v, want %v", r.Type, keys, info.DataKeys)
				}
				if ev["id"] != r.ID || ev["tailnet"] != tn || ev["version"] != float64(1) {
					t.Errorf("%s envelope %v", r.Type, ev)
				}
				if st.check != nil && r.Type == st.want[0] {
					st.check(t, data)
				}
			}
		})
	}
}

// TestFactsSurviveRestart: the facts triggers need (roles, policy text)
// are rebuilt from the log, so the first change after a restart still
// reports the right old values.
func TestFactsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	first := start(t, dir)
	if _, err := first.Ingest(ctx, tn, []tailnet.Change{
		{Kind: tailnet.KindUserAdded, User: &tailnet.User{Login: "jonas@example.com", Roles: []string{"Member"}}},
		{Kind: tailnet.KindPolicySaved, Policy: str("old policy")},
	}); err != nil {
		t.Fatal(err)
	}
	first.Close()

	second := start(t, dir)
	raised, err := second.Ingest(ctx, tn, []tailnet.Change{
		{Kind: tailnet.KindUserRoleChanged, User: &tailnet.User{Login: "jonas@example.com", Roles: []string{"Admin"}}},
		{Kind: tailnet.KindPolicySaved, Policy: str("new policy")},
	})
	if err != nil {
		t.Fatal(err)
	}
	all := payloads(t, second)
	roles := all[raised[0].ID]["data"].(map[string]any)
	policy := all[raised[1].ID]["data"].(map[string]any)
	if old, _ := json.Marshal(roles["oldRoles"]); string(old) != `["Member"]` {
		t.Errorf("oldRoles after restart %s, want [\"Member\"]", old)
	}
	if policy["oldPolicy"] != "old policy" {
		t.Errorf("oldPolicy after restart %q, want \"old policy\"", policy["oldPolicy"])
	}
}

// TestBadChangesAreRefusedAndLogNothing: each bad change answers an
// InvalidError naming the problem, and the tailnet stream is unchanged.
func TestBadChangesAreRefusedAndLogNothing(t *testing.T) {
	srv := start(t, t.TempDir())
	ctx := context.Background()
	if _, err := srv.Ingest(ctx, tn, []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: str("p")}}); err != nil {
		t.Fatal(err)
	}
	before := len(payloads(t, srv))
	tooMany := make([]tailnet.Change, tailnet.MaxChangesPerIngest+1)
	for i := range tooMany {
		tooMany[i] = tailnet.Change{Kind: tailnet.KindPolicySaved, Policy: str("p")}
	}
	tests := []struct {
		name    string
		changes []tailnet.Change
		want    string
	}{
		{"no changes", nil, "at least one change"},
		{"unknown kind", []tailnet.Change{{Kind: "nodeExploded"}}, `unknown kind "nodeExploded"`},
		{"missing kind", []tailnet.Change{{}}, "kind is required"},
		{"node without id", []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{Name: "x"}}}, "node.id is required"},
		{"node without name", []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: "x"}}}, "node.name is required"},
		{"unknown node approved", []tailnet.Change{{Kind: tailnet.KindNodeApproved, Node: &tailnet.Node{ID: "ghost"}}}, `node "ghost" is not known`},
		{"expiry without expiration", []tailnet.Change{{Kind: tailnet.KindNodeKeyExpired, Node: &tailnet.Node{ID: "n", Name: "n"}}}, "node.expiration is required"},
		{"expiry not a time", []tailnet.Change{{Kind: tailnet.KindNodeKeyExpired, Node: &tailnet.Node{ID: "n", Name: "n", Expiration: "tomorrow"}}}, "not an RFC 3339 time"},
		{"user without login", []tailnet.Change{{Kind: tailnet.KindUserAdded, User: &tailnet.User{}}}, "user.login is required"},
		{"role change without roles", []tailnet.Change{{Kind: tailnet.KindUserRoleChanged, User: &tailnet.User{Login: "u"}}}, "user.roles is required"},
		{"policy missing", []tailnet.Change{{Kind: tailnet.KindPolicySaved}}, "policy is required"},
		{"policy too large", []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: str(strings.Repeat("x", tailnet.MaxPolicyBytes+1))}}, "more than the limit"},
		{"name too long", []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: "n", Name: strings.Repeat("n", 600)}}}, "longer than"},
		{"expiration not a time on any node change", []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: "n", Name: "n", Expiration: "tomorrow"}}}, "not an RFC 3339 time"},
		{"node change carrying a user", []tailnet.Change{{Kind: tailnet.KindNodeAdded, Node: &tailnet.Node{ID: "n", Name: "n"}, User: &tailnet.User{Login: "u"}}}, "carries no user"},
		{"user change carrying a policy", []tailnet.Change{{Kind: tailnet.KindUserAdded, User: &tailnet.User{Login: "u"}, Policy: str("p")}}, "carries no policy"},
		{"policy change carrying a node", []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: str("p"), Node: &tailnet.Node{ID: "n"}}}, "carries no node"},
		{"actor too long", []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: str("p"), Actor: strings.Repeat("a", 600)}}, "actor is longer than"},
		{"too many roles", []tailnet.Change{{Kind: tailnet.KindUserAdded, User: &tailnet.User{Login: "u", Roles: make([]string, 65)}}}, "more than the limit of 64"},
		{"role too long", []tailnet.Change{{Kind: tailnet.KindUserAdded, User: &tailnet.User{Login: "u", Roles: []string{strings.Repeat("r", 600)}}}}, "user.roles[0] is longer than"},
		{"long unknown kind is not echoed whole", []tailnet.Change{{Kind: strings.Repeat("k", 5000)}}, "…"},
		{"second change bad", []tailnet.Change{{Kind: tailnet.KindPolicySaved, Policy: str("ok")}, {Kind: "bogus"}}, "changes[1]"},
		{"too many changes", tooMany, "more than the limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := srv.Ingest(ctx, tn, tt.changes)
			var inv *tailnet.InvalidError
			if !errors.As(err, &inv) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want an InvalidError containing %q", err, tt.want)
			}
		})
	}
	if after := len(payloads(t, srv)); after != before {
		t.Errorf("tailnet stream has %d notifications after refused changes, want %d", after, before)
	}
}

// TestEndpointLimit: a tailnet holds at most MaxEndpoints endpoints.
func TestEndpointLimit(t *testing.T) {
	srv := start(t, t.TempDir())
	ctx := context.Background()
	for i := range tailnet.MaxEndpoints {
		if _, _, err := srv.CreateEndpoint(ctx, tn, "a", "https://hooks.example.com/", "", nil); err != nil {
			t.Fatalf("endpoint %d: %v", i, err)
		}
	}
	_, _, err := srv.CreateEndpoint(ctx, tn, "a", "https://hooks.example.com/", "", nil)
	var inv *tailnet.InvalidError
	if !errors.As(err, &inv) || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("endpoint %d: got %v, want an InvalidError about the limit", tailnet.MaxEndpoints+1, err)
	}
}

func TestCanonicalName(t *testing.T) {
	tests := []struct {
		in, want string
		bad      string
	}{
		{in: "example.com", want: "example.com"},
		{in: "Example.COM", want: "example.com"},
		{in: "alice@example.com", want: "alice@example.com"},
		{in: "tail1234.ts.net", want: "tail1234.ts.net"},
		{in: "a", want: "a"},
		{in: "", bad: "empty"},
		{in: "-", bad: "start and end"},
		{in: "..", bad: "start and end"},
		{in: ".a", bad: "start and end"},
		{in: "a.", bad: "start and end"},
		{in: "a..b", bad: "empty label"},
		{in: "a/b", bad: "has '/'"},
		{in: "caf\u00e9", bad: "has 'é'"},
		{in: "a\x00b", bad: "has '\\x00'"},
		{in: "\xff", bad: "not valid UTF-8"},
		{in: strings.Repeat("a", 254), bad: "longer than 253"},
	}
	for _, tt := range tests {
		got, err := tailnet.CanonicalName(tt.in)
		switch {
		case tt.bad == "" && (err != nil || got != tt.want):
			t.Errorf("CanonicalName(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		case tt.bad != "" && (err == nil || !strings.Contains(err.Error(), tt.bad)):
			t.Errorf("CanonicalName(%q) = %q, %v; want an error containing %q", tt.in, got, err, tt.bad)
		}
	}
}
