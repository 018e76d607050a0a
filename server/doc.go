// Package server assembles a running Herald: it opens the event log, the
// secrets key and the egress client, starts the actor system with one
// tailnet actor per tailnet (each with its endpoint actors), keeps the API
// keys, and offers the operations the admin API serves (it implements
// api.Backend). A coordination server that embeds Herald uses it directly;
// `herald serve` puts the api package in front of it.
//
// Besides the tailnet and endpoint streams it owns two streams:
//
//	herald-directory  tailnetRegistered{name}: every tailnet ever used,
//	                  so that a restart starts their actors (and their
//	                  pending deliveries) without scanning the whole log.
//	herald-keys       apiKeyCreated{id, hash, tailnet, description}: API
//	                  keys, stored as SHA-256 hashes only.
package server
