package egress

import (
	"fmt"
	"net/netip"
)

// AddressPolicy decides which IP addresses Herald may connect to. The zero
// value is the strict production policy: only globally routable unicast
// addresses are allowed, and an IPv4 address wrapped in any IPv6 form is
// judged as the IPv4 address it carries.
type AddressPolicy struct {
	// AllowPrivate is development mode: every address is allowed except
	// those that can never name a single HTTP server (invalid, unspecified
	// and "this network" 0.0.0.0/8, multicast, limited broadcast), judged
	// after unmapping ::ffff:a.b.c.d. Loopback, private, link-local, CGNAT,
	// unique-local and zoned addresses are allowed.
	AllowPrivate bool
}

// Denied reports whether the strict policy refuses addr, and why.
func Denied(addr netip.Addr) (reason string, denied bool) {
	return AddressPolicy{}.Denied(addr)
}

// Denied reports whether the policy refuses addr, and why. The reason is
// short and names the address, e.g. "loopback address 127.0.0.1". It fails
// closed: an invalid (zero) address is denied.
func (p AddressPolicy) Denied(addr netip.Addr) (reason string, denied bool) {
	if !addr.IsValid() {
		return "invalid address", true
	}
	if p.AllowPrivate {
		return devDenied(addr)
	}
	bare := addr.WithZone("")
	shown := addr.String()
	if bare.Is4() {
		if kind, ok := ipv4Kind(bare); ok {
			return kind + " address " + shown, true
		}
		return "", false
	}
	if reason, ok := ipv6Denied(bare, shown); ok {
		return reason, true
	}
	if addr.Zone() != "" {
		// Only link-local and multicast addresses need a zone; DNS never
		// returns one. A zone on a global address is a crafted literal.
		return "zoned address " + shown + " (a zone names a local interface)", true
	}
	return "", false
}

// DeniedError reports a destination that the egress policy refuses: an
// address, a host name or a port. Its message is safe to show to the owner
// of the endpoint; it never contains a URL path, query or user info.
type DeniedError struct {
	// Host is the host name or literal being dialled, if known.
	Host string
	// Addr is the refused address; it is the zero Addr when a name or a
	// port was refused.
	Addr netip.Addr
	// Reason is short and human-readable, e.g. "loopback address 127.0.0.1".
	Reason string
}

func (e *DeniedError) Error() string {
	switch {
	case e.Host == "":
		return "egress denied: " + e.Reason
	case e.Addr.IsValid() && e.Host != e.Addr.String():
		return fmt.Sprintf("egress denied: %s resolves to %s", e.Host, e.Reason)
	case e.Addr.IsValid():
		return "egress denied: " + e.Reason
	default:
		return fmt.Sprintf("egress denied: %s: %s", e.Host, e.Reason)
	}
}

// rangeRule names one denied range. Rules are checked in order, so a more
// specific range must come before the range that contains it.
type rangeRule struct {
	prefix netip.Prefix
	kind   string
}

// ipv4Rules are the denied IPv4 ranges (DESIGN.md "Egress rules": the
// Svix and Hook0 lists united).
var ipv4Rules = []rangeRule{
	{netip.MustParsePrefix("0.0.0.0/32"), "unspecified"},
	{netip.MustParsePrefix("0.0.0.0/8"), `"this network"`},
	{netip.MustParsePrefix("10.0.0.0/8"), "private"},
	{netip.MustParsePrefix("100.64.0.0/10"), "CGNAT"},
	{netip.MustParsePrefix("127.0.0.0/8"), "loopback"},
	{netip.MustParsePrefix("169.254.169.254/32"), "metadata-service link-local"},
	{netip.MustParsePrefix("169.254.0.0/16"), "link-local"},
	{netip.MustParsePrefix("172.16.0.0/12"), "private"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("192.88.99.0/24"), "6to4 relay anycast"},
	{netip.MustParsePrefix("192.168.0.0/16"), "private"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("224.0.0.0/4"), "multicast"},
	{netip.MustParsePrefix("255.255.255.255/32"), "broadcast"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
}

// ipv6Rules are the denied IPv6 ranges, checked after the IPv4 forms that
// IPv6 can carry have been unwrapped.
var ipv6Rules = []rangeRule{
	{netip.MustParsePrefix("::/128"), "unspecified"},
	{netip.MustParsePrefix("::1/128"), "loopback"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible (deprecated)"},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated"},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local-use NAT64"},
	{netip.MustParsePrefix("::/8"), "reserved"},
	{netip.MustParsePrefix("100::/64"), "discard-only"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("2001::/23"), "IETF protocol assignment"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
	{netip.MustParsePrefix("3fff::/20"), "documentation"},
	{netip.MustParsePrefix("5f00::/16"), "SRv6 segment identifier"},
	{netip.MustParsePrefix("fd7a:115c:a1e0::/48"), "Tailscale"},
	{netip.MustParsePrefix("fc00::/7"), "unique-local"},
	{netip.MustParsePrefix("fe80::/10"), "link-local"},
	{netip.MustParsePrefix("fec0::/10"), "site-local (deprecated)"},
	{netip.MustParsePrefix("ff00::/8"), "multicast"},
}

// globalUnicast is the only IPv6 space IANA allocates for global unicast.
// Anything outside it that no rule above names is unallocated, never a
// public web server.
var globalUnicast = netip.MustParsePrefix("2000::/3")

// wrapper is an IPv6 form that carries an IPv4 address. extract returns the
// embedded IPv4 addresses (Teredo carries two).
type wrapper struct {
	prefix  netip.Prefix
	name    string
	extract func(b [16]byte) []netip.Addr
}

var wrappers = []wrapper{
	{netip.MustParsePrefix("::/96"), "IPv4-compatible", last32},
	{netip.MustParsePrefix("::ffff:0:0:0/96"), "IPv4-translated", last32},
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64", last32},
	// 64:ff9b:1::/48 (local-use NAT64) is not unwrapped: RFC 6052 lets the
	// operator embed the IPv4 address at one of six prefix lengths, so the
	// address alone does not say which IPv4 address it carries. The whole
	// range is denied.
	{netip.MustParsePrefix("2002::/16"), "6to4", func(b [16]byte) []netip.Addr {
		return []netip.Addr{netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]})}
	}},
	// Teredo (RFC 4380): 2001:0:SSSS:SSSS:flags:port:CCCC:CCCC with the
	// server address S in clear and the client address C XORed with ones.
	{netip.MustParsePrefix("2001::/32"), "Teredo", func(b [16]byte) []netip.Addr {
		return []netip.Addr{
			netip.AddrFrom4([4]byte{^b[12], ^b[13], ^b[14], ^b[15]}),
			netip.AddrFrom4([4]byte{b[4], b[5], b[6], b[7]}),
		}
	}},
}

func last32(b [16]byte) []netip.Addr {
	return []netip.Addr{netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})}
}

// ipv4Kind returns the kind of denied range a holds, if any. a must be a
// 4-byte address.
func ipv4Kind(a netip.Addr) (string, bool) {
	for _, r := range ipv4Rules {
		if r.prefix.Contains(a) {
			return r.kind, true
		}
	}
	return "", false
}

// ipv6Denied judges a zoneless 16-byte address; shown is how the reason
// names it (with its zone, if it had one).
func ipv6Denied(a netip.Addr, shown string) (string, bool) {
	if a.Is4In6() {
		// A mapped address is the IPv4 address on the wire: Go and the
		// kernel dial ::ffff:a.b.c.d as a.b.c.d. Judge it as that address;
		// a mapped public address is allowed.
		v4 := a.Unmap()
		if kind, ok := ipv4Kind(v4); ok {
			return fmt.Sprintf("%s address %s (IPv4-mapped as %s)", kind, v4, shown), true
		}
		return "", false
	}
	if a.IsUnspecified() {
		return "unspecified address " + shown, true
	}
	if a.IsLoopback() {
		return "loopback address " + shown, true
	}
	b := a.As16()
	for _, w := range wrappers {
		if !w.prefix.Contains(a) {
			continue
		}
		for _, v4 := range w.extract(b) {
			if kind, ok := ipv4Kind(v4); ok {
				return fmt.Sprintf("%s address %s embedded in %s address %s", kind, v4, w.name, shown), true
			}
		}
	}
	for _, r := range ipv6Rules {
		if r.prefix.Contains(a) {
			return r.kind + " address " + shown, true
		}
	}
	if !globalUnicast.Contains(a) {
		return "unallocated address " + shown + " (outside global unicast 2000::/3)", true
	}
	// ISATAP (RFC 5214) puts an IPv4 address in the interface identifier,
	// ::0:5efe:a.b.c.d or ::200:5efe:a.b.c.d, under any prefix; a host with an
	// ISATAP interface tunnels to that IPv4 address.
	if b[9] == 0 && b[10] == 0x5e && b[11] == 0xfe && (b[8] == 0 || b[8] == 0x02) {
		v4 := netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
		if kind, ok := ipv4Kind(v4); ok {
			return fmt.Sprintf("%s address %s embedded in ISATAP address %s", kind, v4, shown), true
		}
	}
	return "", false
}

// devDenied is the development-mode policy: only addresses that can never
// name one HTTP server are refused.
func devDenied(addr netip.Addr) (string, bool) {
	a := addr.WithZone("").Unmap()
	shown := addr.String()
	switch {
	case a.IsUnspecified():
		return "unspecified address " + shown, true
	case a.Is4() && a.As4()[0] == 0:
		return `"this network" address ` + shown, true
	case a.IsMulticast():
		return "multicast address " + shown, true
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "broadcast address " + shown, true
	}
	return "", false
}
