package tailnet

import (
	"errors"
	"fmt"
	"time"
)

// Endpoint is a webhook endpoint as the admin API shows it. The signing
// secret is never part of it; it is returned only by create and rotate.
type Endpoint struct {
	ID               string    `json:"endpointId"`
	URL              string    `json:"endpointUrl"`
	ProviderType     string    `json:"providerType"`
	CreatorLoginName string    `json:"creatorLoginName"`
	Created          time.Time `json:"created"`
	LastModified     time.Time `json:"lastModified"`
	Subscriptions    []string  `json:"subscriptions"`
}

// Change is one thing that happened in a tailnet, as a coordination server
// reports it. Kind selects which fields matter; see docs/api.md.
type Change struct {
	Kind   string  `json:"kind"`
	Actor  string  `json:"actor,omitempty"` // login name of who made the change
	Node   *Node   `json:"node,omitempty"`
	User   *User   `json:"user,omitempty"`
	Policy *string `json:"policy,omitempty"`
}

// Node is what Herald keeps of a node (device). Fields left empty in a
// change keep their known values.
type Node struct {
	ID            string `json:"id"`
	Name          string `json:"name,omitempty"`    // MagicDNS name, e.g. build-07.tail5e2d.ts.net
	User          string `json:"user,omitempty"`    // login name of the owner (managedBy)
	Address       string `json:"address,omitempty"` // Tailscale IP, used for the admin console link
	NeedsApproval bool   `json:"needsApproval,omitempty"`
	Expiration    string `json:"expiration,omitempty"` // key expiry, RFC 3339 (key expiry changes)
	URL           string `json:"url,omitempty"`        // admin console link; derived when empty
}

// User is what Herald keeps of a user.
type User struct {
	Login         string   `json:"login"`
	Roles         []string `json:"roles,omitempty"`
	NeedsApproval bool     `json:"needsApproval,omitempty"`
	URL           string   `json:"url,omitempty"`
}

// Raised describes a notification that a change raised.
type Raised struct {
	ID        string   `json:"id"`
	Type      string   `json:"type"`
	Endpoints []string `json:"endpoints"` // endpoints it is queued for
}

// Errors the API maps to HTTP statuses.
var (
	// ErrNotFound: no such endpoint in this tailnet (404).
	ErrNotFound = errors.New("not found")
)

// InvalidError is a request that cannot be carried out as given (400).
// Its message is safe to show the caller.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalidf(format string, args ...any) error {
	return &InvalidError{Msg: fmt.Sprintf(format, args...)}
}
