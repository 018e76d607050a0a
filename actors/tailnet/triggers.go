package tailnet

import (
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
	maxNameBytes   = 512
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
			if _, err := time.Parse(time.RFC3339, n.Expiration); err != nil {
				return nil, invalidf("%s: node.expiration %q is not an RFC 3339 time", c.Kind, n.Expiration)
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
		return nil, invalidf("change: unknown kind %q (one of %s)", c.Kind, strings.Join(Kinds(), ", "))
	}
}

// node merges a change's node with what is known of it.
func (f *facts) node(c Change, adding bool) (Node, error) {
	if c.Node == nil || c.Node.ID == "" {
		return Node{}, invalidf("%s: node.id is required", c.Kind)
	}
	if err := checkLen(c.Kind, "node.id", c.Node.ID); err != nil {
		return Node{}, err
	}
	n, known := f.nodes[c.Node.ID]
	if adding {
		n = Node{ID: c.Node.ID}
	}
	mergeNode(&n, *c.Node)
	if !known && !adding && c.Node.Name == "" {
		return Node{}, invalidf("%s: node %q is not known to this tailnet; give node.name", c.Kind, c.Node.ID)
	}
	if n.Name == "" {
		return Node{}, invalidf("%s: node.name is required", c.Kind)
	}
	for field, v := range map[string]string{"node.name": n.Name, "node.user": n.User, "node.address": n.Address} {
		if err := checkLen(c.Kind, field, v); err != nil {
			return Node{}, err
		}
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
	if err := checkLen(c.Kind, "user.login", c.User.Login); err != nil {
		return User{}, err
	}
	u := f.users[c.User.Login]
	u.Login = c.User.Login
	if c.User.URL != "" {
		u.URL = c.User.URL
	}
	u.NeedsApproval = c.User.NeedsApproval
	return u, nil
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
