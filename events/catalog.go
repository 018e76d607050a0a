package events

import (
	"fmt"
	"slices"
	"sort"
)

// Categories of event types.
const (
	CategoryTailnetManagement       = "tailnetManagement"
	CategoryDeviceMisconfigurations = "deviceMisconfigurations"
	CategoryWebhookManagement       = "webhookManagement"
)

// Event types.
const (
	NodeCreated                    = "nodeCreated"
	NodeNeedsApproval              = "nodeNeedsApproval"
	NodeApproved                   = "nodeApproved"
	NodeKeyExpiringInOneDay        = "nodeKeyExpiringInOneDay"
	NodeKeyExpired                 = "nodeKeyExpired"
	NodeDeleted                    = "nodeDeleted"
	NodeNeedsSignature             = "nodeNeedsSignature"
	NodeSigned                     = "nodeSigned"
	PolicyUpdate                   = "policyUpdate"
	UserCreated                    = "userCreated"
	UserNeedsApproval              = "userNeedsApproval"
	UserApproved                   = "userApproved"
	UserSuspended                  = "userSuspended"
	UserRestored                   = "userRestored"
	UserDeleted                    = "userDeleted"
	UserRoleUpdated                = "userRoleUpdated"
	SubnetIPForwardingNotEnabled   = "subnetIPForwardingNotEnabled"
	ExitNodeIPForwardingNotEnabled = "exitNodeIPForwardingNotEnabled"
	Test                           = "test"
	WebhookUpdated                 = "webhookUpdated"
	WebhookDeleted                 = "webhookDeleted"
)

// Subscription values that stand for whole categories, including types
// added to the category later.
const (
	SubscribeTailnetManagement       = "categoryTailnetManagement"
	SubscribeDeviceMisconfigurations = "categoryDeviceMisconfigurations"
)

// TypeInfo describes one event type.
type TypeInfo struct {
	Type         string
	Category     string
	Subscribable bool     // may appear in an endpoint's subscriptions
	DataKeys     []string // keys of the data object, sorted
	message      func(d Data) string
}

var nodeKeys = []string{"actor", "deviceName", "managedBy", "nodeID", "url"}
var nodeExpiryKeys = []string{"actor", "deviceName", "expiration", "managedBy", "nodeID", "url"}
var userKeys = []string{"actor", "url", "user"}

func nodeMsg(format string) func(Data) string {
	return func(d Data) string { return fmt.Sprintf(format, d.DeviceName) }
}

func userMsg(format string) func(Data) string {
	return func(d Data) string { return fmt.Sprintf(format, d.User) }
}

func fixedMsg(m string) func(Data) string { return func(Data) string { return m } }

var catalog = []TypeInfo{
	{NodeCreated, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s created")},
	{NodeNeedsApproval, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s needs approval")},
	{NodeApproved, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s approved")},
	{NodeKeyExpiringInOneDay, CategoryTailnetManagement, true, nodeExpiryKeys, nodeMsg("Node %s key expiring in less than one day")},
	{NodeKeyExpired, CategoryTailnetManagement, true, nodeExpiryKeys, nodeMsg("Node %s key expired")},
	{NodeDeleted, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s deleted")},
	{NodeNeedsSignature, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s needs a signature from a trusted node")},
	{NodeSigned, CategoryTailnetManagement, true, nodeKeys, nodeMsg("Node %s signed")},
	{PolicyUpdate, CategoryTailnetManagement, true, []string{"actor", "newPolicy", "oldPolicy", "url"}, fixedMsg("Tailnet policy file updated")},
	{UserCreated, CategoryTailnetManagement, true, userKeys, userMsg("User %s created")},
	{UserNeedsApproval, CategoryTailnetManagement, true, userKeys, userMsg("User %s needs approval")},
	{UserApproved, CategoryTailnetManagement, true, userKeys, userMsg("User %s approved")},
	{UserSuspended, CategoryTailnetManagement, true, userKeys, userMsg("User %s suspended")},
	{UserRestored, CategoryTailnetManagement, true, userKeys, userMsg("User %s restored")},
	{UserDeleted, CategoryTailnetManagement, true, userKeys, userMsg("User %s deleted")},
	{UserRoleUpdated, CategoryTailnetManagement, true, []string{"actor", "newRoles", "oldRoles", "url", "user"}, userMsg("User %s role changed")},
	{SubnetIPForwardingNotEnabled, CategoryDeviceMisconfigurations, true, nodeKeys, nodeMsg("Subnet router %s has IP forwarding disabled")},
	{ExitNodeIPForwardingNotEnabled, CategoryDeviceMisconfigurations, true, nodeKeys, nodeMsg("Exit node %s has IP forwarding disabled")},
	{Test, CategoryWebhookManagement, false, nil, fixedMsg("This is a test event")},
	{WebhookUpdated, CategoryWebhookManagement, false, []string{"actor", "endpointId"}, fixedMsg("Webhook endpoint updated")},
	{WebhookDeleted, CategoryWebhookManagement, false, []string{"actor", "endpointId"}, fixedMsg("Webhook endpoint deleted")},
}

var byType = func() map[string]*TypeInfo {
	m := make(map[string]*TypeInfo, len(catalog))
	for i := range catalog {
		m[catalog[i].Type] = &catalog[i]
	}
	return m
}()

var categoryOf = map[string]string{
	SubscribeTailnetManagement:       CategoryTailnetManagement,
	SubscribeDeviceMisconfigurations: CategoryDeviceMisconfigurations,
}

// Types returns every event type, in catalogue order.
func Types() []TypeInfo { return slices.Clone(catalog) }

// Lookup returns the description of an event type.
func Lookup(eventType string) (TypeInfo, bool) {
	ti, ok := byType[eventType]
	if !ok {
		return TypeInfo{}, false
	}
	return *ti, true
}

// CategoryMembers returns the event types a category subscription covers.
func CategoryMembers(subscription string) []string {
	cat, ok := categoryOf[subscription]
	if !ok {
		return nil
	}
	var out []string
	for _, ti := range catalog {
		if ti.Category == cat {
			out = append(out, ti.Type)
		}
	}
	return out
}

// ValidSubscription reports whether s may appear in an endpoint's
// subscriptions: a subscribable type or a category.
func ValidSubscription(s string) bool {
	if _, ok := categoryOf[s]; ok {
		return true
	}
	ti, ok := byType[s]
	return ok && ti.Subscribable
}

// SubscriptionValues returns every valid subscription value, sorted.
func SubscriptionValues() []string {
	var out []string
	for s := range categoryOf {
		out = append(out, s)
	}
	for _, ti := range catalog {
		if ti.Subscribable {
			out = append(out, ti.Type)
		}
	}
	sort.Strings(out)
	return out
}

// Subscribed reports whether an endpoint with these subscriptions gets
// events of eventType through its subscriptions. (test, webhookUpdated and
// webhookDeleted are never selected this way: they go to the endpoint
// concerned.)
func Subscribed(subscriptions []string, eventType string) bool {
	ti, ok := byType[eventType]
	if !ok || !ti.Subscribable {
		return false
	}
	for _, s := range subscriptions {
		if s == eventType || categoryOf[s] == ti.Category {
			return true
		}
	}
	return false
}

// Provider types: how a batch is shaped for its destination.
const (
	ProviderNone       = "" // Herald's (Tailscale's) JSON array of events
	ProviderSlack      = "slack"
	ProviderDiscord    = "discord"
	ProviderMattermost = "mattermost"
	ProviderGoogleChat = "googlechat"
)

// ValidProviderType reports whether p is a known provider type.
func ValidProviderType(p string) bool {
	switch p {
	case ProviderNone, ProviderSlack, ProviderDiscord, ProviderMattermost, ProviderGoogleChat:
		return true
	}
	return false
}
