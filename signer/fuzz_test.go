package signer

import (
	"errors"
	"testing"
	"time"
)

// FuzzVerify checks that Verify never panics, that every failure wraps one of
// the documented errors, and that a header made by Sign for the same body,
// secret and time always verifies.
func FuzzVerify(f *testing.F) {
	f.Add("t=1700000000,v1="+macHex(testSecretA, 1_700_000_000, testBody), testBody, testSecretA, int64(1_700_000_010), int64(300))
	f.Add("", []byte{}, "s", int64(0), int64(0))
	f.Add("t=1,v1=,v1=zz,v0=,=,,", []byte("[]"), "s3cr3t", int64(-1), int64(-5))
	f.Add("t=9223372036854775807,v1="+macHex("k", 9223372036854775807, nil), []byte(nil), "k", int64(-9223372036854775808), int64(9223372036))
	f.Add("v1=00,t=01", []byte("\x00\xff"), "", int64(1), int64(1))
	f.Fuzz(func(t *testing.T, header string, body []byte, secret string, now, tolS int64) {
		tol := time.Duration(tolS) * time.Second
		if tolS > int64(1<<33) || tolS < -int64(1<<33) {
			tol = time.Duration(tolS) // keep the multiplication from overflowing
		}
		err := Verify(header, body, []string{secret}, time.Unix(now, 0), tol)
		if err != nil && !errors.Is(err, ErrMalformedHeader) && !errors.Is(err, ErrNoSignature) &&
			!errors.Is(err, ErrStale) && !errors.Is(err, ErrMismatch) && !errors.Is(err, ErrNoSecret) {
			t.Fatalf("got undocumented error %v", err)
		}
		if secret == "" || now < 0 {
			return
		}
		signed := Sign(body, time.Unix(now, 0), secret)
		if err := Verify(signed, body, []string{secret}, time.Unix(now, 0), 0); err != nil {
			t.Fatalf("Verify(Sign(...)): got %v, want nil", err)
		}
	})
}
