package server

import (
	"context"
	"fmt"

	"github.com/herald-webhooks/herald/actors/endpoint"
	"github.com/herald-webhooks/herald/actors/tailnet"
	"github.com/herald-webhooks/herald/api"
)

// ValidTailnetName checks a tailnet name (see tailnet.CanonicalName).
func ValidTailnetName(name string) error {
	_, err := tailnet.CanonicalName(name)
	return err
}

// Authenticate implements api.Backend.
func (s *Server) Authenticate(key string) (api.Principal, bool) { return s.keys.authenticate(key) }

// CreateAPIKey implements api.Backend.
func (s *Server) CreateAPIKey(ctx context.Context, tailnetName, description string) (string, string, error) {
	if tailnetName != "" {
		canon, err := tailnet.CanonicalName(tailnetName)
		if err != nil {
			return "", "", err
		}
		tailnetName = canon
	}
	if len(description) > maxKeyDescLen {
		return "", "", &tailnet.InvalidError{Msg: fmt.Sprintf("description is longer than %d bytes", maxKeyDescLen)}
	}
	key, id, err := s.keys.create(ctx, tailnetName, description, s.cfg.Clock.Now())
	if err != nil {
		return "", "", err
	}
	s.logger.Info("API key created", "key_id", id, "tailnet", tailnetName)
	return key, id, nil
}

// EndpointTailnet implements api.Backend.
func (s *Server) EndpointTailnet(endpointID string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	name, ok := s.endpoints[endpointID]
	return name, ok
}

// endpointCall asks a tailnet actor an endpoint request, and returns its
// reply and the tailnet's canonical name.
func (s *Server) endpointCall(tailnetName string, create bool, msg any) (*tailnet.EndpointReply, string, error) {
	pid, canon, err := s.tailnet(tailnetName, create)
	if err != nil {
		return nil, "", err
	}
	reply, err := request[*tailnet.EndpointReply](s, pid, msg)
	if err != nil {
		return nil, "", err
	}
	return reply, canon, reply.Err
}

// CreateEndpoint implements api.Backend.
func (s *Server) CreateEndpoint(ctx context.Context, tailnetName, actor, url, providerType string, subscriptions []string) (tailnet.Endpoint, string, error) {
	reply, canon, err := s.endpointCall(tailnetName, true, &tailnet.CreateEndpoint{Actor: actor, URL: url, ProviderType: providerType, Subscriptions: subscriptions})
	if err != nil {
		return tailnet.Endpoint{}, "", err
	}
	s.mu.Lock()
	s.endpoints[reply.Endpoint.ID] = canon
	s.mu.Unlock()
	return reply.Endpoint, reply.Secret, nil
}

// ListEndpoints implements api.Backend. A tailnet never used lists empty.
func (s *Server) ListEndpoints(ctx context.Context, tailnetName string) ([]tailnet.Endpoint, error) {
	pid, _, err := s.tailnet(tailnetName, false)
	if err == tailnet.ErrNotFound {
		return []tailnet.Endpoint{}, nil
	}
	if err != nil {
		return nil, err
	}
	reply, err := request[*tailnet.EndpointsReply](s, pid, &tailnet.ListEndpoints{})
	if err != nil {
		return nil, err
	}
	if reply.Endpoints == nil {
		reply.Endpoints = []tailnet.Endpoint{}
	}
	return reply.Endpoints, reply.Err
}

// GetEndpoint implements api.Backend.
func (s *Server) GetEndpoint(ctx context.Context, tailnetName, endpointID string) (tailnet.Endpoint, error) {
	reply, _, err := s.endpointCall(tailnetName, false, &tailnet.GetEndpoint{ID: endpointID})
	if err != nil {
		return tailnet.Endpoint{}, err
	}
	return reply.Endpoint, nil
}

// UpdateEndpoint implements api.Backend.
func (s *Server) UpdateEndpoint(ctx context.Context, tailnetName, endpointID, actor string, subscriptions []string) (tailnet.Endpoint, error) {
	reply, _, err := s.endpointCall(tailnetName, false, &tailnet.UpdateEndpoint{ID: endpointID, Actor: actor, Subscriptions: subscriptions})
	if err != nil {
		return tailnet.Endpoint{}, err
	}
	return reply.Endpoint, nil
}

// RotateSecret implements api.Backend.
func (s *Server) RotateSecret(ctx context.Context, tailnetName, endpointID, actor string) (tailnet.Endpoint, string, error) {
	reply, _, err := s.endpointCall(tailnetName, false, &tailnet.RotateSecret{ID: endpointID, Actor: actor})
	if err != nil {
		return tailnet.Endpoint{}, "", err
	}
	return reply.Endpoint, reply.Secret, nil
}

// TestEndpoint implements api.Backend.
func (s *Server) TestEndpoint(ctx context.Context, tailnetName, endpointID string) error {
	_, _, err := s.endpointCall(tailnetName, false, &tailnet.TestEndpoint{ID: endpointID})
	return err
}

// DeleteEndpoint implements api.Backend.
func (s *Server) DeleteEndpoint(ctx context.Context, tailnetName, endpointID, actor string) error {
	if _, _, err := s.endpointCall(tailnetName, false, &tailnet.DeleteEndpoint{ID: endpointID, Actor: actor}); err != nil {
		return err
	}
	s.mu.Lock()
	delete(s.endpoints, endpointID)
	s.mu.Unlock()
	return nil
}

// Ingest implements api.Backend.
func (s *Server) Ingest(ctx context.Context, tailnetName string, changes []tailnet.Change) ([]tailnet.Raised, error) {
	pid, _, err := s.tailnet(tailnetName, true)
	if err != nil {
		return nil, err
	}
	reply, err := request[*tailnet.IngestReply](s, pid, &tailnet.Ingest{Changes: changes})
	if err != nil {
		return nil, err
	}
	return reply.Raised, reply.Err
}

// DeliveryStatus implements api.Backend.
func (s *Server) DeliveryStatus(ctx context.Context, tailnetName, endpointID string) (any, error) {
	pid, _, err := s.tailnet(tailnetName, false)
	if err != nil {
		return nil, err
	}
	ref, err := request[*tailnet.EndpointActorReply](s, pid, &tailnet.EndpointActor{ID: endpointID})
	if err != nil {
		return nil, err
	}
	if ref.Err != nil {
		return nil, ref.Err
	}
	return request[*endpoint.Status](s, ref.PID, &endpoint.GetStatus{})
}
