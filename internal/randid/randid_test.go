package randid

import (
	"strings"
	"testing"
)

func TestStringLengthAlphabetAndUniqueness(t *testing.T) {
	seen := map[string]bool{}
	counts := map[rune]int{}
	for range 2000 {
		s, err := String(16)
		if err != nil {
			t.Fatal(err)
		}
		if len(s) != 16 {
			t.Fatalf("got length %d, want 16", len(s))
		}
		if seen[s] {
			t.Fatalf("duplicate id %q", s)
		}
		seen[s] = true
		for _, r := range s {
			if !strings.ContainsRune(Alphabet, r) {
				t.Fatalf("id %q has %q, not in the alphabet", s, r)
			}
			counts[r]++
		}
	}
	// 32,000 draws over 58 characters: each should appear about 552 times.
	for _, r := range Alphabet {
		if c := counts[r]; c < 350 || c > 750 {
			t.Errorf("character %q drawn %d times in 32000, want about 552", r, c)
		}
	}
}
