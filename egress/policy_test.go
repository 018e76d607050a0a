package egress

import (
	"net/netip"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestDeniedStrict(t *testing.T) {
	tests := []struct {
		name   string
		addr   string
		reason string // "" means allowed
	}{
		// IPv4, denied.
		{"loopback", "127.0.0.1", "loopback address 127.0.0.1"},
		{"loopback top of range", "127.255.255.255", "loopback address 127.255.255.255"},
		{"unspecified", "0.0.0.0", "unspecified address 0.0.0.0"},
		{"this network", "0.1.2.3", `"this network" address 0.1.2.3`},
		{"private 10/8", "10.0.0.1", "private address 10.0.0.1"},
		{"private 10/8 top", "10.255.255.255", "private address 10.255.255.255"},
		{"private 172.16/12 bottom", "172.16.0.0", "private address 172.16.0.0"},
		{"private 172.16/12 top", "172.31.255.255", "private address 172.31.255.255"},
		{"private 192.168/16", "192.168.1.1", "private address 192.168.1.1"},
		{"CGNAT bottom", "100.64.0.1", "CGNAT address 100.64.0.1"},
		{"CGNAT top", "100.127.255.254", "CGNAT address 100.127.255.254"},
		{"Tailscale MagicDNS", "100.100.100.100", "CGNAT address 100.100.100.100"},
		{"cloud metadata", "169.254.169.254", "metadata-service link-local address 169.254.169.254"},
		{"link-local", "169.254.0.1", "link-local address 169.254.0.1"},
		{"IETF protocol assignment", "192.0.0.8", "IETF protocol assignment address 192.0.0.8"},
		{"TEST-NET-1", "192.0.2.1", "documentation address 192.0.2.1"},
		{"TEST-NET-2", "198.51.100.7", "documentation address 198.51.100.7"},
		{"TEST-NET-3", "203.0.113.9", "documentation address 203.0.113.9"},
		{"6to4 relay anycast", "192.88.99.1", "6to4 relay anycast address 192.88.99.1"},
		{"benchmarking bottom", "198.18.0.1", "benchmarking address 198.18.0.1"},
		{"benchmarking top", "198.19.255.255", "benchmarking address 198.19.255.255"},
		{"multicast", "224.0.0.1", "multicast address 224.0.0.1"},
		{"multicast SSDP", "239.255.255.250", "multicast address 239.255.255.250"},
		{"reserved", "240.0.0.1", "reserved address 240.0.0.1"},
		{"limited broadcast", "255.255.255.255", "broadcast address 255.255.255.255"},

		// IPv4, allowed.
		{"Google DNS", "8.8.8.8", ""},
		{"Cloudflare DNS", "1.1.1.1", ""},
		{"just below CGNAT", "100.63.255.255", ""},
		{"just above CGNAT", "100.128.0.0", ""},
		{"just below 172.16/12", "172.15.255.255", ""},
		{"just above 172.16/12", "172.32.0.0", ""},
		{"just below link-local", "169.253.255.255", ""},
		{"just above benchmarking", "198.20.0.0", ""},
		{"last unicast before multicast", "223.255.255.255", ""},

		// IPv6, denied.
		{"v6 unspecified", "::", "unspecified address ::"},
		{"v6 loopback", "::1", "loopback address ::1"},
		{"mapped loopback", "::ffff:127.0.0.1", "loopback address 127.0.0.1 (IPv4-mapped as ::ffff:127.0.0.1)"},
		{"mapped loopback hex", "::ffff:7f00:1", "loopback address 127.0.0.1 (IPv4-mapped as ::ffff:127.0.0.1)"},
		{"mapped unspecified", "::ffff:0.0.0.0", "unspecified address 0.0.0.0 (IPv4-mapped as ::ffff:0.0.0.0)"},
		{"mapped CGNAT", "::ffff:100.64.0.1", "CGNAT address 100.64.0.1 (IPv4-mapped as ::ffff:100.64.0.1)"},
		{"mapped metadata", "::ffff:169.254.169.254", "metadata-service link-local address 169.254.169.254 (IPv4-mapped as ::ffff:169.254.169.254)"},
		{"IPv4-compatible loopback", "::127.0.0.1", "loopback address 127.0.0.1 embedded in IPv4-compatible address ::7f00:1"},
		{"IPv4-compatible public", "::8.8.8.8", "IPv4-compatible (deprecated) address ::808:808"},
		{"IPv4-translated private", "::ffff:0:10.0.0.1", "private address 10.0.0.1 embedded in IPv4-translated address ::ffff:0:a00:1"},
		{"NAT64 loopback", "64:ff9b::7f00:1", "loopback address 127.0.0.1 embedded in NAT64 address 64:ff9b::7f00:1"},
		{"NAT64 private", "64:ff9b::a00:1", "private address 10.0.0.1 embedded in NAT64 address 64:ff9b::a00:1"},
		{"NAT64 metadata", "64:ff9b::169.254.169.254", "metadata-service link-local address 169.254.169.254 embedded in NAT64 address 64:ff9b::a9fe:a9fe"},
		{"NAT64 public", "64:ff9b::808:808", "NAT64 address 64:ff9b::808:808"},
		{"local-use NAT64", "64:ff9b:1::7f00:1", "local-use NAT64 address 64:ff9b:1::7f00:1"},
		{"local-use NAT64 other", "64:ff9b:1:abcd::1", "local-use NAT64 address 64:ff9b:1:abcd::1"},
		{"6to4 loopback", "2002:7f00:1::", "loopback address 127.0.0.1 embedded in 6to4 address 2002:7f00:1::"},
		{"6to4 metadata", "2002:a9fe:a9fe::", "metadata-service link-local address 169.254.169.254 embedded in 6to4 address 2002:a9fe:a9fe::"},
		{"6to4 public", "2002:808:808::1", "6to4 address 2002:808:808::1"},
		{"Teredo client loopback", "2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback address 127.0.0.1 embedded in Teredo address 2001:0:4136:e378:8000:63bf:80ff:fffe"},
		{"Teredo server private", "2001:0:a00:1:8000:63bf:f7f7:f7f7", "private address 10.0.0.1 embedded in Teredo address 2001:0:a00:1:8000:63bf:f7f7:f7f7"},
		{"Teredo public", "2001:0:4136:e378:8000:63bf:f7f7:f7f7", "Teredo address 2001:0:4136:e378:8000:63bf:f7f7:f7f7"},
		{"discard-only", "100::1", "discard-only address 100::1"},
		{"IETF 2001::/23 benchmarking", "2001:2::1", "IETF protocol assignment address 2001:2::1"},
		{"documentation 2001:db8", "2001:db8::1", "documentation address 2001:db8::1"},
		{"documentation 3fff::/20", "3fff:fff::1", "documentation address 3fff:fff::1"},
		{"SRv6", "5f00::1", "SRv6 segment identifier address 5f00::1"},
		{"Tailscale ULA", "fd7a:115c:a1e0::1", "Tailscale address fd7a:115c:a1e0::1"},
		{"unique-local", "fd00::1", "unique-local address fd00::1"},
		{"unique-local fc", "fc00::1", "unique-local address fc00::1"},
		{"link-local zoned", "fe80::1%eth0", "link-local address fe80::1%eth0"},
		{"link-local", "fe80::1", "link-local address fe80::1"},
		{"site-local", "fec0::1", "site-local (deprecated) address fec0::1"},
		{"multicast all nodes", "ff02::1", "multicast address ff02::1"},
		{"multicast zoned", "ff02::1%eth0", "multicast address ff02::1%eth0"},
		{"unallocated", "4000::1", "unallocated address 4000::1 (outside global unicast 2000::/3)"},
		{"reserved ::/8", "0:1::1", "reserved address 0:1::1"},
		{"zoned public", "2606:4700:4700::1111%eth0", "zoned address 2606:4700:4700::1111%eth0 (a zone names a local interface)"},
		{"ISATAP private", "2600:1f18::5efe:a00:1", "private address 10.0.0.1 embedded in ISATAP address 2600:1f18::5efe:a00:1"},
		{"ISATAP universal loopback", "2600:1f18::200:5efe:7f00:1", "loopback address 127.0.0.1 embedded in ISATAP address 2600:1f18::200:5efe:7f00:1"},

		// IPv6, allowed.
		{"Cloudflare v6", "2606:4700:4700::1111", ""},
		{"Google v6", "2a00:1450::1", ""},
		{"Google DNS v6", "2001:4860:4860::8888", ""},
		{"just above 2001::/23", "2001:200::1", ""},
		{"mapped public", "::ffff:8.8.8.8", ""},
		{"ISATAP public", "2600:1f18::5efe:808:808", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := netip.MustParseAddr(tt.addr)
			reason, denied := Denied(addr)
			if denied != (tt.reason != "") || reason != tt.reason {
				t.Errorf("Denied(%s) = %q, %v; want %q, %v", tt.addr, reason, denied, tt.reason, tt.reason != "")
			}
		})
	}
}

func TestDeniedInvalidAddressFailsClosed(t *testing.T) {
	for _, p := range []AddressPolicy{{}, {AllowPrivate: true}} {
		reason, denied := p.Denied(netip.Addr{})
		if !denied || reason != "invalid address" {
			t.Errorf("%+v.Denied(zero Addr) = %q, %v; want %q, true", p, reason, denied, "invalid address")
		}
	}
}

func TestDeniedDevelopmentMode(t *testing.T) {
	dev := AddressPolicy{AllowPrivate: true}
	tests := []struct {
		name   string
		addr   string
		reason string
	}{
		{"loopback allowed", "127.0.0.1", ""},
		{"v6 loopback allowed", "::1", ""},
		{"private allowed", "10.1.2.3", ""},
		{"CGNAT allowed", "100.64.0.1", ""},
		{"link-local zoned allowed", "fe80::1%eth0", ""},
		{"unique-local allowed", "fd7a:115c:a1e0::1", ""},
		{"public allowed", "8.8.8.8", ""},
		{"unspecified denied", "0.0.0.0", "unspecified address 0.0.0.0"},
		{"this network denied", "0.1.2.3", `"this network" address 0.1.2.3`},
		{"v6 unspecified denied", "::", "unspecified address ::"},
		{"mapped unspecified denied", "::ffff:0.0.0.0", "unspecified address ::ffff:0.0.0.0"},
		{"multicast denied", "224.0.0.1", "multicast address 224.0.0.1"},
		{"v6 multicast denied", "ff02::1", "multicast address ff02::1"},
		{"broadcast denied", "255.255.255.255", "broadcast address 255.255.255.255"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reason, denied := dev.Denied(netip.MustParseAddr(tt.addr))
			if denied != (tt.reason != "") || reason != tt.reason {
				t.Errorf("dev Denied(%s) = %q, %v; want %q, %v", tt.addr, reason, denied, tt.reason, tt.reason != "")
			}
		})
	}
}

// TestDeniedWrappedForms checks, for any IPv4 address, that every IPv6 form
// carrying it is judged at least as strictly as the address itself.
func TestDeniedWrappedForms(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := [4]byte{
			rapid.Byte().Draw(t, "b0"), rapid.Byte().Draw(t, "b1"),
			rapid.Byte().Draw(t, "b2"), rapid.Byte().Draw(t, "b3"),
		}
		v4 := netip.AddrFrom4(b)
		_, v4Denied := Denied(v4)

		mapped := netip.AddrFrom16(v4.As16())
		if _, denied := Denied(mapped); denied != v4Denied {
			t.Fatalf("Denied(%s) = %v, want %v (same as %s)", mapped, denied, v4Denied, v4)
		}
		var x [4]byte
		for i := range b {
			x[i] = ^b[i]
		}
		forms := map[string][16]byte{
			"IPv4-compatible": {12: b[0], 13: b[1], 14: b[2], 15: b[3]},
			"IPv4-translated": {8: 0xff, 9: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]},
			"NAT64":           {0: 0, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]},
			"6to4":            {0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3], 15: 1},
			"Teredo":          {0: 0x20, 1: 0x01, 4: 65, 5: 54, 6: 227, 7: 120, 12: x[0], 13: x[1], 14: x[2], 15: x[3]},
		}
		// Local-use NAT64 may embed at any RFC 6052 prefix length; the
		// whole /48 is denied, whatever it carries.
		localUse := [16]byte{0: 0, 1: 0x64, 2: 0xff, 3: 0x9b, 5: 1, 12: b[0], 13: b[1], 14: b[2], 15: b[3]}
		if _, denied := Denied(netip.AddrFrom16(localUse)); !denied {
			t.Fatalf("local-use NAT64 form %s of %s allowed, want denied", netip.AddrFrom16(localUse), v4)
		}
		for name, raw := range forms {
			a := netip.AddrFrom16(raw)
			reason, denied := Denied(a)
			if !denied {
				t.Fatalf("%s form %s of %s allowed, want denied", name, a, v4)
			}
			if v4Denied && a != netip.IPv6Unspecified() && a != netip.IPv6Loopback() &&
				!strings.Contains(reason, v4.String()) {
				t.Fatalf("Denied(%s) reason %q does not name embedded %s", a, reason, v4)
			}
		}
	})
}
