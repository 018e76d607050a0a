package egress

import (
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"unicode/utf8"

	"golang.org/x/net/idna"
)

// Host-name limits (RFC 1035).
const (
	maxHostLength  = 253
	maxLabelLength = 63
)

// idnaProfile is the WHATWG URL Standard's "domain to ASCII" with
// beStrict=false: UTS #46 non-transitional mapping, CheckBidi and
// CheckJoiners on, CheckHyphens, UseSTD3ASCIIRules and VerifyDnsLength off.
// It maps what a browser maps, e.g. fullwidth digits and the ideographic
// full stop, so "１２７。０。０。１" is 127.0.0.1 here too.
var idnaProfile = idna.New(
	idna.MapForLookup(),
	idna.BidiRule(),
	idna.Transitional(false),
	idna.StrictDomainName(false),
	idna.CheckHyphens(false),
	idna.CheckJoiners(true),
	idna.VerifyDNSLength(false),
)

// host is a URL host after WHATWG host parsing: either an IP address or an
// ASCII, lower-case domain name.
type host struct {
	addr   netip.Addr // valid when the host is an IP address
	domain string     // set when it is a name (may end in a dot)
}

// String returns the host in canonical URL form: dotted-decimal IPv4,
// bracketed IPv6, or the ASCII domain.
func (h host) String() string {
	switch {
	case h.addr.Is4():
		return h.addr.String()
	case h.addr.IsValid():
		return "[" + h.addr.String() + "]"
	default:
		return h.domain
	}
}

// errNotIPv4 is the failure of the WHATWG IPv4 parser.
var errNotIPv4 = errors.New("not a valid IPv4 address")

// parseHost parses a URL host (percent-decoded, IPv6 in brackets, no port)
// the way a browser does (WHATWG URL Standard, "host parser" for special
// schemes): a bracketed IPv6 address, or a domain that is mapped to ASCII
// and, if its last label is numeric, parsed as an IPv4 address in any of
// the notations browsers accept (0x7f.1, 2130706433, 0177.0.0.1, 127.1).
// Unlike a browser it also refuses characters that cannot appear in a DNS
// host name, so what it returns can be dialled.
func parseHost(raw string) (host, error) {
	if raw == "" {
		return host{}, errors.New("url must have a host")
	}
	if strings.HasPrefix(raw, "[") {
		if !strings.HasSuffix(raw, "]") {
			return host{}, fmt.Errorf("url host %s is not a valid IPv6 address", raw)
		}
		inner := raw[1 : len(raw)-1]
		if strings.Contains(inner, "%") {
			return host{}, fmt.Errorf("url host %s must not carry an IPv6 zone", raw)
		}
		addr, err := netip.ParseAddr(inner)
		if err != nil || !addr.Is6() {
			return host{}, fmt.Errorf("url host %s is not a valid IPv6 address", raw)
		}
		return host{addr: addr}, nil
	}

	domain := strings.ToLower(raw)
	if !isASCII(raw) || hasPunycodeLabel(domain) {
		if !utf8.ValidString(raw) {
			return host{}, fmt.Errorf("url host %q is not valid UTF-8", raw)
		}
		var err error
		domain, err = idnaProfile.ToASCII(raw)
		if err == nil {
			// The result must be stable: mapping it again gives itself.
			var again string
			again, err = idnaProfile.ToASCII(domain)
			if err == nil && again != domain {
				err = errors.New("unstable mapping")
			}
		}
		if err != nil {
			return host{}, fmt.Errorf("url host %s is not a valid internationalized domain name", raw)
		}
		domain = strings.ToLower(domain)
	}
	for i := 0; i < len(domain); i++ {
		if !isHostChar(domain[i]) {
			return host{}, fmt.Errorf("url host %q contains %q, which is not allowed in a host name", raw, domain[i])
		}
	}
	if endsInNumber(domain) {
		addr, err := parseIPv4(domain)
		if err != nil {
			return host{}, fmt.Errorf("url host %s is not a valid IPv4 address", raw)
		}
		return host{addr: addr}, nil
	}
	if err := checkDomainLength(domain); err != nil {
		return host{}, fmt.Errorf("url host %s is not a valid domain name: %w", raw, err)
	}
	return host{domain: domain}, nil
}

// isHostChar reports whether c may appear in an ASCII host name: letters,
// digits, hyphen, underscore (used in some real names) and the dot.
func isHostChar(c byte) bool {
	return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.'
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func hasPunycodeLabel(domain string) bool {
	for label := range strings.SplitSeq(domain, ".") {
		if strings.HasPrefix(label, "xn--") {
			return true
		}
	}
	return false
}

func checkDomainLength(domain string) error {
	name := strings.TrimSuffix(domain, ".")
	if len(name) > maxHostLength {
		return fmt.Errorf("longer than %d characters", maxHostLength)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" {
			return errors.New("empty label")
		}
		if len(label) > maxLabelLength {
			return fmt.Errorf("label longer than %d characters", maxLabelLength)
		}
	}
	return nil
}

// endsInNumber is the WHATWG "ends in a number checker": a host whose last
// label (ignoring one trailing dot) is all digits or 0x-hex is an IPv4
// address, or invalid.
func endsInNumber(s string) bool {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" {
		if len(parts) == 1 {
			return false
		}
		parts = parts[:len(parts)-1]
	}
	last := parts[len(parts)-1]
	if last != "" && strings.Trim(last, "0123456789") == "" {
		return true
	}
	_, ok := parseIPv4Number(last)
	return ok
}

// parseIPv4 is the WHATWG IPv4 parser: up to four dot-separated parts, each
// decimal, 0x-hex or 0-octal; every part but the last is one byte and the
// last fills the remaining bytes; one trailing dot is allowed.
func parseIPv4(s string) (netip.Addr, error) {
	parts := strings.Split(s, ".")
	if parts[len(parts)-1] == "" && len(parts) > 1 {
		parts = parts[:len(parts)-1]
	}
	if len(parts) > 4 {
		return netip.Addr{}, errNotIPv4
	}
	var nums [4]uint64
	for i, p := range parts {
		n, ok := parseIPv4Number(p)
		if !ok {
			return netip.Addr{}, errNotIPv4
		}
		nums[i] = n
	}
	last := len(parts) - 1
	for _, n := range nums[:last] {
		if n > 255 {
			return netip.Addr{}, errNotIPv4
		}
	}
	if nums[last] >= 1<<(8*(5-len(parts))) {
		return netip.Addr{}, errNotIPv4
	}
	v := nums[last]
	for i, n := range nums[:last] {
		v += n << (8 * (3 - i))
	}
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), nil
}

// parseIPv4Number is the WHATWG IPv4 number parser. Values above 2^32
// saturate: they are invalid in every position anyway.
func parseIPv4Number(s string) (uint64, bool) {
	if s == "" {
		return 0, false
	}
	base := uint64(10)
	switch {
	case len(s) >= 2 && (s[:2] == "0x" || s[:2] == "0X"):
		s, base = s[2:], 16
	case len(s) >= 2 && s[0] == '0':
		s, base = s[1:], 8
	}
	const saturated = math.MaxUint32 + 1
	var n uint64
	for i := 0; i < len(s); i++ {
		d, ok := digitValue(s[i])
		if !ok || d >= base {
			return 0, false
		}
		if n < saturated {
			n = min(n*base+d, saturated)
		}
	}
	return n, true
}

func digitValue(c byte) (uint64, bool) {
	switch {
	case '0' <= c && c <= '9':
		return uint64(c - '0'), true
	case 'a' <= c && c <= 'f':
		return uint64(c-'a') + 10, true
	case 'A' <= c && c <= 'F':
		return uint64(c-'A') + 10, true
	}
	return 0, false
}
