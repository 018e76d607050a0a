// Package randid makes random identifiers (endpoint ids, event ids, API
// key ids) from crypto/rand, uniformly over an unambiguous alphabet.
package randid

import "crypto/rand"

// Alphabet is the set identifiers are drawn from: letters and digits
// without the look-alikes I, O and l.
const Alphabet = "0123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"

// String returns n random characters of Alphabet.
func String(n int) (string, error) {
	out := make([]byte, 0, n)
	buf := make([]byte, n+n/2)
	// Bytes at or past the largest multiple of len(Alphabet) are dropped,
	// so every character is equally likely.
	limit := 256 - 256%len(Alphabet)
	for len(out) < n {
		if _, err := rand.Read(buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, Alphabet[int(c)%len(Alphabet)])
			}
		}
	}
	return string(out), nil
}
