// Package receiver is a development webhook receiver, the core of
// `herald receive`: it serves HTTPS with a fresh self-signed certificate,
// verifies the Tailscale-Webhook-Signature of every POST with package signer,
// prints each event of a valid batch as one compact JSON line and answers
// with a configurable status code.
//
// The certificate (ECDSA P-256, valid for localhost, 127.0.0.1, ::1 and the
// listen host) can be written to a PEM file so that a Herald started with
// `--egress-ca FILE` trusts the receiver.
//
// Answers: a valid batch gets the configured status (200 by default) after
// its events are printed; a bad or missing signature gets 401 with a
// one-line reason; a body that is not a JSON array of objects gets 400; a
// body over MaxBodyBytes gets 413; any method but POST gets 405.
package receiver
