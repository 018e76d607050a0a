package signer

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// HeaderName is the HTTP header that carries the signature.
const HeaderName = "Tailscale-Webhook-Signature"

const (
	// MACSize is the size in bytes of one v1 signature (HMAC-SHA256).
	MACSize = sha256.Size
	// MaxSignatures is the most v1 values Verify accepts in one header.
	MaxSignatures = 16
	// MaxHeaderLen is the longest header value Verify parses.
	MaxHeaderLen = 4096
	// maxTimestampDigits bounds t: 19 digits hold any int64.
	maxTimestampDigits = 19
)

// Errors returned by Verify, wrapped with a reason; test them with errors.Is.
var (
	// ErrMalformedHeader means the header cannot be parsed.
	ErrMalformedHeader = errors.New("malformed signature header")
	// ErrNoSignature means the header carries no v1 signature.
	ErrNoSignature = errors.New("no v1 signature in header")
	// ErrStale means the signed timestamp is outside the tolerance.
	ErrStale = errors.New("signature timestamp outside tolerance")
	// ErrMismatch means no v1 signature matches any secret.
	ErrMismatch = errors.New("signature mismatch")
	// ErrNoSecret means the verifier was given no secret or an empty one.
	ErrNoSecret = errors.New("no secret to verify with")
)

// Sign returns the Tailscale-Webhook-Signature header value for body sent at
// now: the timestamp now.Unix() and one v1 per secret, in the order given.
// Sign the exact bytes that are sent. Secrets must be non-empty (Verify
// refuses empty secrets); with no secrets the header carries no v1.
func Sign(body []byte, now time.Time, secrets ...string) string {
	var tsBuf [maxTimestampDigits + 1]byte
	ts := strconv.AppendInt(tsBuf[:0], now.Unix(), 10)

	var b strings.Builder
	b.Grow(len("t=") + len(ts) + len(secrets)*len(",v1=") + len(secrets)*hex.EncodedLen(MACSize))
	b.WriteString("t=")
	b.Write(ts)
	var sum [MACSize]byte
	var hexSum [2 * MACSize]byte
	for _, secret := range secrets {
		mac := computeMAC(secret, ts, body, sum[:0])
		hex.Encode(hexSum[:], mac)
		b.WriteString(",v1=")
		b.Write(hexSum[:])
	}
	return b.String()
}

// computeMAC appends HMAC-SHA256(secret, ts + "." + body) to dst.
func computeMAC(secret string, ts, body, dst []byte) []byte {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(ts)
	m.Write([]byte{'.'})
	m.Write(body)
	return m.Sum(dst)
}

// parsedHeader is a header that passed the syntax checks.
type parsedHeader struct {
	ts   []byte // the t value exactly as sent (canonical decimal)
	unix int64
	sigs [][MACSize]byte
}

// parseHeader parses a header value strictly. Error messages name positions,
// never values, so that no signature is echoed.
func parseHeader(header string) (parsedHeader, error) {
	var p parsedHeader
	if strings.TrimSpace(header) == "" {
		return p, fmt.Errorf("%w: empty", ErrMalformedHeader)
	}
	if len(header) > MaxHeaderLen {
		return p, fmt.Errorf("%w: %d bytes, limit %d", ErrMalformedHeader, len(header), MaxHeaderLen)
	}
	seenT := false
	for i, elem := range strings.Split(header, ",") {
		elem = strings.Trim(elem, " \t")
		key, value, ok := strings.Cut(elem, "=")
		if !ok || key == "" {
			return p, fmt.Errorf("%w: element %d is not key=value", ErrMalformedHeader, i+1)
		}
		switch key {
		case "t":
			if seenT {
				return p, fmt.Errorf("%w: t given more than once", ErrMalformedHeader)
			}
			seenT = true
			unix, err := parseTimestamp(value)
			if err != nil {
				return p, err
			}
			p.ts, p.unix = []byte(value), unix
		case "v1":
			if len(p.sigs) == MaxSignatures {
				return p, fmt.Errorf("%w: more than %d v1 signatures", ErrMalformedHeader, MaxSignatures)
			}
			if len(value) != hex.EncodedLen(MACSize) {
				return p, fmt.Errorf("%w: v1 signature %d has %d characters, want %d hex digits",
					ErrMalformedHeader, len(p.sigs)+1, len(value), hex.EncodedLen(MACSize))
			}
			var sig [MACSize]byte
			if _, err := hex.Decode(sig[:], []byte(value)); err != nil {
				return p, fmt.Errorf("%w: v1 signature %d is not hex", ErrMalformedHeader, len(p.sigs)+1)
			}
			p.sigs = append(p.sigs, sig)
		default:
			// Unknown schemes (v0, a future v2, ...) are ignored.
		}
	}
	if !seenT {
		return p, fmt.Errorf("%w: no t timestamp", ErrMalformedHeader)
	}
	if len(p.sigs) == 0 {
		return p, ErrNoSignature
	}
	return p, nil
}

// parseTimestamp accepts only the canonical decimal form Sign writes: digits,
// no sign, no leading zero (except "0" itself), fitting an int64.
func parseTimestamp(s string) (int64, error) {
	if s == "" {
		return 0, fmt.Errorf("%w: t is empty", ErrMalformedHeader)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: t is not a decimal unix time", ErrMalformedHeader)
		}
	}
	if len(s) > 1 && s[0] == '0' {
		return 0, fmt.Errorf("%w: t has a leading zero", ErrMalformedHeader)
	}
	if len(s) > maxTimestampDigits {
		return 0, fmt.Errorf("%w: t is out of range", ErrMalformedHeader)
	}
	v, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: t is out of range", ErrMalformedHeader)
	}
	return v, nil
}

// Verify checks a Tailscale-Webhook-Signature header value against the raw
// body. It succeeds when |now - t| <= tolerance (in whole seconds, the edge
// included) and any v1 value matches the MAC computed with any of secrets.
// A negative tolerance accepts no timestamp.
//
// Failures wrap ErrMalformedHeader, ErrNoSignature, ErrStale, ErrMismatch or
// ErrNoSecret. Their messages never contain a secret, a computed MAC or a
// signature from the header.
func Verify(header string, body []byte, secrets []string, now time.Time, tolerance time.Duration) error {
	if len(secrets) == 0 {
		return ErrNoSecret
	}
	for i, s := range secrets {
		if s == "" {
			return fmt.Errorf("%w: secret %d is empty", ErrNoSecret, i+1)
		}
	}
	p, err := parseHeader(header)
	if err != nil {
		return err
	}
	if !withinTolerance(p.unix, now.Unix(), tolerance) {
		return fmt.Errorf("%w: signed at %d, now %d, tolerance %v", ErrStale, p.unix, now.Unix(), tolerance)
	}
	// Compare every signature with every secret's MAC, without stopping at
	// the first match, so timing does not depend on which pair matched.
	var sum [MACSize]byte
	match := false
	for _, secret := range secrets {
		mac := computeMAC(secret, p.ts, body, sum[:0])
		for i := range p.sigs {
			if hmac.Equal(mac, p.sigs[i][:]) {
				match = true
			}
		}
	}
	clear(sum[:])
	if !match {
		return fmt.Errorf("%w: none of %d v1 signatures matches any of %d secrets", ErrMismatch, len(p.sigs), len(secrets))
	}
	return nil
}

// withinTolerance reports whether |now - t| <= tolerance, in whole seconds,
// without overflowing for any int64 inputs.
func withinTolerance(t, now int64, tolerance time.Duration) bool {
	if tolerance < 0 {
		return false
	}
	var diff uint64
	if t >= now {
		diff = uint64(t) - uint64(now)
	} else {
		diff = uint64(now) - uint64(t)
	}
	return diff <= uint64(tolerance/time.Second)
}
