package tailnet

import (
	"fmt"
	"maps"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/herald-webhooks/herald/events"
)

// Change kinds accepted by Ingest.
const (
	KindNodeAdded                      = "nodeAdded"
	KindNodeApproved                   = "nodeApproved"
	KindNodeDeleted                    = "nodeDeleted"
	KindNodeKeyExpiring                = "nodeKeyExpiring"
	KindNodeKeyExpired                 = "nodeKeyExpired"
	KindNodeNeedsSignature             = "nodeNeedsSignature"
	KindNodeSigned                     = "nodeSigned"
	KindSubnetIPForwardingNotEnabled   = "subnetIPForwardingNotEnabled"
	KindExitNodeIPForwardingNotEnabled = "exitNodeIPForwardingNotEnabled"
	KindUserAdded                      = "userAdded"
	KindUserApproved                   = "userApproved"
	KindUserSuspended                  = "userSuspended"
	KindUserRestored                   = "userRestored"
	KindUserDeleted                    = "userDeleted"
	KindUserRoleChanged                = "userRoleChanged"
	KindPolicySaved                    = "policySaved"
)

// Limits on what a change may carry.
const (
	MaxPolicyBytes = 256 << 10
	// maxNameBytes bounds every other string of a change: ids, names,
	// logins, addresses, links, roles, the actor.
	maxNameBytes = 512
	// maxRoles bounds the roles of a user.
	maxRoles = 64
)

// expiryActor is the actor Tailscale names on key-expiry events.
const expiryActor = "expiring-node-key-marker"

// nodeKinds maps node change kinds that raise one event of their own to it.
var nodeKinds = map[string]string{
	KindNodeApproved:                   events.NodeApproved,
	KindNodeDeleted:                    events.NodeDeleted,
	KindNodeKeyExpiring:                events.NodeKeyExpiringInOneDay,
	KindNodeKeyExpired:                 events.NodeKeyExpired,
	KindNodeNeedsSignature:             events.NodeNeedsSignature,
	KindNodeSigned:                     events.NodeSigned,
	KindSubnetIPForwardingNotEnabled:   events.SubnetIPForwardingNotEnabled,
	KindExitNodeIPForwardingNotEnabled: events.ExitNodeIPForwardingNotEnabled,
}

var userKinds = map[string]string{
	KindUserApproved:  events.UserApproved,
	KindUserSuspended: events.UserSuspended,
	KindUserRestored:  events.UserRestored,
	KindUserDeleted:   events.UserDeleted,
}

// Kinds returns every change kind Ingest accepts, sorted.
func Kinds() []string {
	out := []string{KindNodeAdded, KindUserAdded, KindUserRoleChanged, KindPolicySaved}
	for k := range nodeKinds {
		out = append(out, k)
	}
	for k := range userKinds {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// facts is what the triggers know of a tailnet: the fold of its changes.
type facts struct {
	nodes  map[string]Node
	users  map[string]User
	policy string
}

func newFacts() *facts {
	return &facts{nodes: map[string]Node{}, users: map[string]User{}}
}

// raise is one notification a change calls for.
type raise struct {
	eventType string
	data      events.Data
}

// plan checks a change against the facts and returns the notifications
// it raises, changing nothing.
func (f *facts) plan(c Change, consoleURL string) ([]raise, error) {
	if err := checkShape(c); err != nil {
		return nil, err
	}
	switch {
	case c.Kind == KindNodeAdded:
		n, err := f.node(c, true)
		if err != nil {
			return nil, err
		}
		out := []raise{{events.NodeCreated, nodeData(n, c.Actor, consoleURL)}}
		if n.NeedsApproval {
			out = append(out, raise{events.NodeNeedsApproval, nodeData(n, c.Actor, consoleURL)})
		}
		return out, nil
	case nodeKinds[c.Kind] != "":
		n, err := f.node(c, false)
		if err != nil {
			return nil, err
		}
		d := nodeData(n, c.Actor, consoleURL)
		if c.Kind == KindNodeKeyExpiring || c.Kind == KindNodeKeyExpired {
			if n.Expiration == "" {
				return nil, invalidf("%s: node.expiration is required", c.Kind)
			}
			d.Actor, d.Expiration = expiryActor, n.Expiration
		}
		return []raise{{nodeKinds[c.Kind], d}}, nil
	case c.Kind == KindUserAdded:
		u, err := f.user(c)
		if err != nil {
			return nil, err
		}
		out := []raise{{events.UserCreated, userData(u, c.Actor, consoleURL)}}
		if u.NeedsApproval {
			out = append(out, raise{events.UserNeedsApproval, userData(u, c.Actor, consoleURL)})
		}
		return out, nil
	case userKinds[c.Kind] != "":
		u, err := f.user(c)
		if err != nil {
			return nil, err
		}
		return []raise{{userKinds[c.Kind], userData(u, c.Actor, consoleURL)}}, nil
	case c.Kind == KindUserRoleChanged:
		u, err := f.user(c)
		if err != nil {
			return nil, err
		}
		if c.User.Roles == nil {
			return nil, invalidf("%s: user.roles is required (an empty list removes every role)", c.Kind)
		}
		d := userData(u, c.Actor, consoleURL)
		d.OldRoles = slices.Clone(f.users[u.Login].Roles)
		d.NewRoles = slices.Clone(c.User.Roles)
		return []raise{{events.UserRoleUpdated, d}}, nil
	case c.Kind == KindPolicySaved:
		if c.Policy == nil {
			return nil, invalidf("%s: policy is required", c.Kind)
		}
		if len(*c.Policy) > MaxPolicyBytes {
			return nil, invalidf("%s: policy is %d bytes, more than the limit of %d", c.Kind, len(*c.Policy), MaxPolicyBytes)
		}
		old, updated := f.policy, *c.Policy
		return []raise{{events.PolicyUpdate, events.Data{
			Actor: c.Actor, URL: consoleURL + "/acls", OldPolicy: &old, NewPolicy: &updated,
		}}}, nil
	case c.Kind == "":
		return nil, invalidf("change: kind is required (one of %s)", strings.Join(Kinds(), ", "))
	default:
		return nil, invalidf("change: unknown kind %s (one of %s)", Quote(c.Kind), strings.Join(Kinds(), ", "))
	}
}

// node merges a change's node with what is known of it.
func (f *facts) node(c Change, adding bool) (Node, error) {
	if c.Node == nil || c.Node.ID == "" {
		return Node{}, invalidf("%s: node.id is required", c.Kind)
	}
	n, known := f.nodes[c.Node.ID]
	if adding {
		n = Node{ID: c.Node.ID}
	}
	mergeNode(&n, *c.Node)
	if !known && !adding && c.Node.Name == "" {
		return Node{}, invalidf("%s: node %s is not known to this tailnet; give node.name", c.Kind, Quote(c.Node.ID))
	}
	if n.Name == "" {
		return Node{}, invalidf("%s: node.name is required", c.Kind)
	}
	return n, nil
}

func mergeNode(n *Node, from Node) {
	if from.Name != "" {
		n.Name = from.Name
	}
	if from.User != "" {
		n.User = from.User
	}
	if from.Address != "" {
		n.Address = from.Address
	}
	if from.URL != "" {
		n.URL = from.URL
	}
	if from.Expiration != "" {
		n.Expiration = from.Expiration
	}
	n.NeedsApproval = from.NeedsApproval
}

func (f *facts) user(c Change) (User, error) {
	if c.User == nil || c.User.Login == "" {
		return User{}, invalidf("%s: user.login is required", c.Kind)
	}
	u := f.users[c.User.Login]
	u.Login = c.User.Login
	if c.User.URL != "" {
		u.URL = c.User.URL
	}
	u.NeedsApproval = c.User.NeedsApproval
	return u, nil
}

// checkShape checks what a change carries, before any fact is consulted:
// the parts its kind needs and no others, each string within its limit.
func checkShape(c Change) error {
	isNode := c.Kind == KindNodeAdded || nodeKinds[c.Kind] != ""
	isUser := c.Kind == KindUserAdded || c.Kind == KindUserRoleChanged || userKinds[c.Kind] != ""
	if !isNode && !isUser && c.Kind != KindPolicySaved {
		return nil // plan names the unknown or missing kind
	}
	if c.Node != nil && !isNode {
		return invalidf("%s: a %s change carries no node", c.Kind, c.Kind)
	}
	if c.User != nil && !isUser {
		return invalidf("%s: a %s change carries no user", c.Kind, c.Kind)
	}
	if c.Policy != nil && c.Kind != KindPolicySaved {
		return invalidf("%s: a %s change carries no policy", c.Kind, c.Kind)
	}
	fields := map[string]string{"actor": c.Actor}
	if n := c.Node; n != nil {
		for k, v := range map[string]string{"node.id": n.ID, "node.name": n.Name, "node.user": n.User, "node.address": n.Address, "node.url": n.URL} {
			fields[k] = v
		}
		if n.Expiration != "" {
			if _, err := time.Parse(time.RFC3339, n.Expiration); err != nil {
				return invalidf("%s: node.expiration %s is not an RFC 3339 time", c.Kind, Quote(n.Expiration))
			}
		}
	}
	if u := c.User; u != nil {
		fields["user.login"], fields["user.url"] = u.Login, u.URL
		if len(u.Roles) > maxRoles {
			return invalidf("%s: user.roles has %d roles, more than the limit of %d", c.Kind, len(u.Roles), maxRoles)
		}
		for i, r := range u.Roles {
			if err := checkLen(c.Kind, fmt.Sprintf("user.roles[%d]", i), r); err != nil {
				return err
			}
		}
	}
	for _, k := range slices.Sorted(maps.Keys(fields)) {
		if err := checkLen(c.Kind, k, fields[k]); err != nil {
			return err
		}
	}
	return nil
}

func checkLen(kind, field, v string) error {
	if len(v) > maxNameBytes {
		return invalidf("%s: %s is longer than %d bytes", kind, field, maxNameBytes)
	}
	return nil
}

// apply folds a change that was logged into the facts.
func (f *facts) apply(c Change) {
	switch {
	case c.Node != nil && (c.Kind == KindNodeAdded || nodeKinds[c.Kind] != ""):
		if c.Kind == KindNodeDeleted {
			delete(f.nodes, c.Node.ID)
			return
		}
		n := f.nodes[c.Node.ID]
		if c.Kind == KindNodeAdded {
			n = Node{ID: c.Node.ID}
		}
		mergeNode(&n, *c.Node)
		if c.Kind == KindNodeApproved {
			n.NeedsApproval = false
		}
		f.nodes[c.Node.ID] = n
	case c.User != nil:
		if c.Kind == KindUserDeleted {
			delete(f.users, c.User.Login)
			return
		}
		u := f.users[c.User.Login]
		u.Login = c.User.Login
		if c.User.URL != "" {
			u.URL = c.User.URL
		}
		if c.Kind == KindUserAdded || c.Kind == KindUserRoleChanged {
			u.Roles = slices.Clone(c.User.Roles)
		}
		f.users[c.User.Login] = u
	case c.Kind == KindPolicySaved && c.Policy != nil:
		f.policy = *c.Policy
	}
}

func nodeData(n Node, actor, consoleURL string) events.Data {
	link := n.URL
	if link == "" {
		where := n.Address
		if where == "" {
			where = n.ID
		}
		link = consoleURL + "/machines/" + url.PathEscape(where)
	}
	return events.Data{NodeID: n.ID, DeviceName: n.Name, ManagedBy: n.User, Actor: actor, URL: link}
}

func userData(u User, actor, consoleURL string) events.Data {
	link := u.URL
	if link == "" {
		link = consoleURL + "/users?q=" + url.QueryEscape(u.Login)
	}
	return events.Data{User: u.Login, Actor: actor, URL: link}
}

func (f *facts) clone() *facts {
	c := &facts{nodes: make(map[string]Node, len(f.nodes)), users: make(map[string]User, len(f.users)), policy: f.policy}
	for k, v := range f.nodes {
		c.nodes[k] = v
	}
	for k, v := range f.users {
		v.Roles = slices.Clone(v.Roles)
		c.users[k] = v
	}
	return c
}
