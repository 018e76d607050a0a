package tailnet

import (
	"strconv"
	"strings"
	"unicode/utf8"
)

// maxTailnetNameLen bounds a tailnet's name.
const maxTailnetNameLen = 253

// maxQuoted is how much of a caller's value an error message repeats.
const maxQuoted = 64

// CanonicalName checks a tailnet name and returns its canonical form.
// Tailnet names are domain-like ("example.com", "alice@example.com",
// "tail1234.ts.net") and, like domains, case-insensitive: the canonical
// form is lower case. A name is 1 to 253 characters of letters, digits and
// . _ - @ +, starts and ends with a letter or digit, and has no "..". "-"
// is not a name: the API reads it as "the key's own tailnet".
func CanonicalName(name string) (string, error) {
	switch {
	case name == "":
		return "", invalidf("tailnet name is empty")
	case !utf8.ValidString(name):
		return "", invalidf("tailnet name is not valid UTF-8")
	case len(name) > maxTailnetNameLen:
		return "", invalidf("tailnet name is %d bytes, longer than %d", len(name), maxTailnetNameLen)
	}
	canon := strings.ToLower(name)
	for _, r := range canon {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("._-@+", r)) {
			return "", invalidf("tailnet name %s has %q; use letters, digits and . _ - @ +", Quote(name), r)
		}
	}
	if !alnum(canon[0]) || !alnum(canon[len(canon)-1]) {
		return "", invalidf("tailnet name %s must start and end with a letter or digit", Quote(name))
	}
	if strings.Contains(canon, "..") {
		return "", invalidf("tailnet name %s has an empty label (\"..\")", Quote(name))
	}
	return canon, nil
}

func alnum(c byte) bool { return c >= 'a' && c <= 'z' || c >= '0' && c <= '9' }

// Quote quotes a caller's value for an error message (control
// characters escaped), cut to a length that keeps messages short whatever
// was sent.
func Quote(s string) string {
	if len(s) <= maxQuoted {
		return strconv.Quote(s)
	}
	cut := s[:maxQuoted]
	for !utf8.ValidString(cut) && len(cut) > maxQuoted-utf8.UTFMax {
		cut = cut[:len(cut)-1]
	}
	return strconv.Quote(cut) + "…"
}
