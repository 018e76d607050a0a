// Package signer signs and verifies the Tailscale-Webhook-Signature header,
// generates webhook secrets and seals them at rest.
//
// It depends on the standard library only, so that receivers can import it
// without pulling in the rest of Herald.
//
// # Wire format
//
// Every delivery is a POST whose body is a JSON array of events. Herald signs
// the exact bytes it sends and puts the result in one header:
//
//	Tailscale-Webhook-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>
//
// The MAC is HMAC-SHA256 keyed with the bytes of the secret string (the whole
// string, "tskey-webhook-" prefix included) over the decimal timestamp, a
// full stop and the raw request body:
//
//	v1 = hex(HMAC-SHA256(key = secret, message = t + "." + body))
//
// Herald writes v1 in lower-case hex. Each attempt is signed afresh with the
// time of that attempt. While a secret is being rotated the header carries one
// v1 per live secret, in the order the sender passed them to [Sign]:
//
//	t=1700003600,v1=<mac with one secret>,v1=<mac with the other>
//
// # Verifying
//
// A receiver reads the raw body (before any JSON decoding), then calls
// [Verify] with the header value, the body, its secret(s) and the current
// time. Verify accepts the request when the timestamp is within the tolerance
// of now (|now - t| <= tolerance, compared in whole seconds, the edge
// included) and ANY v1 value matches the MAC computed with ANY of the given
// secrets. Signatures are hex-decoded before the constant-time comparison,
// so upper-case hex is accepted. Keys other than t and v1 (such as v0) are
// ignored. Everything else is rejected:
//
//   - an empty header, an element without "=", a missing, repeated, signed,
//     zero-padded or non-decimal t, or a v1 that is not 64 hex digits:
//     [ErrMalformedHeader];
//   - a header without any v1: [ErrNoSignature];
//   - a timestamp outside the tolerance: [ErrStale];
//   - no v1 matching any secret: [ErrMismatch];
//   - no secret, or an empty one: [ErrNoSecret].
//
// Error messages never contain a secret or a computed MAC, and never echo a
// signature from the header, so they are safe to log and to send back in a
// 401 answer.
//
// # Secrets
//
// [NewSecret] returns "tskey-webhook-" followed by [SecretRandomLen]
// characters drawn uniformly from [0-9A-Za-z] with crypto/rand (about 238
// bits).
//
// # Sealing at rest
//
// Secrets never appear in plaintext in Herald's event log. A [Sealer] holds a
// 32-byte data key that lives in its own file (see [LoadOrCreateKey]: 64 hex
// digits and a newline, mode 0600) and seals each secret with AES-256-GCM
// and a random 96-bit nonce. The sealed form is self-describing:
//
//	v1:<key id>:<base64url, unpadded, of nonce || ciphertext || tag>
//
// where the key id is 8 hex digits derived from the key with HMAC-SHA256, so
// that a secret sealed under another key is reported as such rather than as
// tampering. The additional data passed to Seal and Open binds a sealed
// secret to its endpoint id: a sealed value copied to another endpoint does
// not open.
package signer
