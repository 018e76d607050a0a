// Package tailnet is the tailnet actor: one Proto.Actor actor per tailnet.
// It owns the tailnet's stream (tailnet-<name>) in the event log: the
// webhook endpoints registered there (their secrets sealed), the facts its
// triggers need (nodes, users, the policy file), and every notification
// raised. It turns each reported change into notifications, appends them to
// the stream before anything else happens, and fans each one out to the
// endpoint actors (its children) whose subscriptions match.
//
// Records of the stream (JSON, "type" and schema version "v"):
//
//	endpointCreated        id, url, providerType, subscriptions, sealedSecret, creator, at
//	endpointUpdated        id, subscriptions, actor, at
//	endpointSecretRotated  id, sealedSecret, actor, at
//	endpointDeleted        id, actor, at
//	change                 the change as reported (facts are the fold of these)
//	notification           eventId, eventType, targets (endpoint ids), payload (exact wire bytes)
package tailnet
