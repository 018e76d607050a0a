package api

import (
	"context"

	"github.com/herald-webhooks/herald/actors/tailnet"
)

// Principal is who an API key speaks for.
type Principal struct {
	KeyID   string
	Name    string // the key's description; stands as the actor of changes made with it
	Tailnet string // "" for an admin key, valid for every tailnet
}

// CanAccess reports whether p may act on tailnet.
func (p Principal) CanAccess(tailnetName string) bool {
	return p.Tailnet == "" || p.Tailnet == tailnetName
}

// Backend is what the API serves: a running Herald (*server.Server).
// Errors: *tailnet.InvalidError → 400, tailnet.ErrNotFound → 404,
// errors wrapping eventlog.ErrUnavailable → 503, others → 500.
type Backend interface {
	// Authenticate checks an API key (constant time) and says whom it
	// speaks for.
	Authenticate(key string) (Principal, bool)
	// CreateAPIKey makes a key for one tailnet ("" = every tailnet) and
	// returns it once; only its hash is kept.
	CreateAPIKey(ctx context.Context, tailnetName, description string) (key string, id string, err error)

	// EndpointTailnet says which tailnet an endpoint belongs to.
	EndpointTailnet(endpointID string) (string, bool)

	CreateEndpoint(ctx context.Context, tailnetName, actor, url, providerType string, subscriptions []string) (tailnet.Endpoint, string, error)
	ListEndpoints(ctx context.Context, tailnetName string) ([]tailnet.Endpoint, error)
	GetEndpoint(ctx context.Context, tailnetName, endpointID string) (tailnet.Endpoint, error)
	UpdateEndpoint(ctx context.Context, tailnetName, endpointID, actor string, subscriptions []string) (tailnet.Endpoint, error)
	RotateSecret(ctx context.Context, tailnetName, endpointID, actor string) (tailnet.Endpoint, string, error)
	TestEndpoint(ctx context.Context, tailnetName, endpointID string) error
	DeleteEndpoint(ctx context.Context, tailnetName, endpointID, actor string) error

	// Ingest records changes in a tailnet (creating the tailnet on first
	// use) and raises their notifications; it returns once they are durable.
	Ingest(ctx context.Context, tailnetName string, changes []tailnet.Change) ([]tailnet.Raised, error)

	// DeliveryStatus reports an endpoint's delivery state.
	DeliveryStatus(ctx context.Context, tailnetName, endpointID string) (any, error)
}
