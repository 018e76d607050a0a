// Package api is Herald's admin HTTP API: the seven webhook calls of
// Tailscale's API v2, wire-compatible with the official Go client
// (tailscale.com/client/tailscale/v2), and Herald's own additions (ingest
// of tailnet changes, API keys, delivery status). It serves a [Backend];
// docs/api.md describes every call.
package api
