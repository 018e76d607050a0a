package signer

import (
	"crypto/rand"
	"fmt"
	"strings"
)

const (
	// SecretPrefix starts every secret Herald generates.
	SecretPrefix = "tskey-webhook-"
	// SecretRandomLen is the number of random base62 characters after the
	// prefix: 40 × log2(62) ≈ 238 bits.
	SecretRandomLen = 40

	secretAlphabet = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// secretByteLimit is the largest multiple of len(secretAlphabet) that
	// fits a byte (62 × 4 = 248): random bytes at or above it are dropped so
	// that every character is equally likely.
	secretByteLimit = 256 - 256%len(secretAlphabet)
)

// NewSecret returns a new webhook secret: SecretPrefix followed by
// SecretRandomLen characters drawn uniformly from [0-9A-Za-z] with
// crypto/rand.
func NewSecret() (string, error) {
	out := make([]byte, 0, len(SecretPrefix)+SecretRandomLen)
	out = append(out, SecretPrefix...)
	// 48 bytes give 40 accepted ones with probability > 99.9%; loop for the rest.
	var buf [SecretRandomLen + SecretRandomLen/5]byte
	for len(out) < cap(out) {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("read random bytes: %w", err)
		}
		for _, b := range buf {
			if int(b) >= secretByteLimit {
				continue
			}
			out = append(out, secretAlphabet[int(b)%len(secretAlphabet)])
			if len(out) == cap(out) {
				break
			}
		}
	}
	clear(buf[:])
	return string(out), nil
}

// ValidSecretFormat reports whether s has the form NewSecret produces:
// SecretPrefix followed by exactly SecretRandomLen characters of [0-9A-Za-z].
// Verify does not require it: any non-empty secret verifies.
func ValidSecretFormat(s string) bool {
	rest, ok := strings.CutPrefix(s, SecretPrefix)
	if !ok || len(rest) != SecretRandomLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		if !strings.Contains(secretAlphabet, rest[i:i+1]) {
			return false
		}
	}
	return true
}
