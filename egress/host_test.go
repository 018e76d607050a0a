package egress

import (
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"pgregory.net/rapid"
)

func TestParseIPv4(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want string // "" means failure
	}{
		{"dotted", "127.0.0.1", "127.0.0.1"},
		{"single decimal", "2130706433", "127.0.0.1"},
		{"single hex", "0x7f000001", "127.0.0.1"},
		{"uppercase hex prefix", "0X7F000001", "127.0.0.1"},
		{"single octal", "017700000001", "127.0.0.1"},
		{"two parts", "127.1", "127.0.0.1"},
		{"three parts", "127.0.1", "127.0.0.1"},
		{"two parts, 24-bit tail", "10.65535", "10.0.255.255"},
		{"three parts, 16-bit tail", "192.168.65535", "192.168.255.255"},
		{"hex and octal parts", "0xc0.0250.0x1.01", "192.168.1.1"},
		{"bare 0x is zero", "0x.0x.0x.0x", "0.0.0.0"},
		{"zero", "0", "0.0.0.0"},
		{"double zero is octal zero", "00", "0.0.0.0"},
		{"trailing dot", "1.2.3.4.", "1.2.3.4"},
		{"max", "4294967295", "255.255.255.255"},
		{"too many parts", "1.2.3.4.5", ""},
		{"part over 255", "1.256.3.4", ""},
		{"tail over 8 bits", "1.2.3.256", ""},
		{"tail over 16 bits", "1.2.65536", ""},
		{"tail over 24 bits", "1.16777216", ""},
		{"over 32 bits", "4294967296", ""},
		{"huge", strings.Repeat("9", 40), ""},
		{"bad octal digit", "08", ""},
		{"bad hex digit", "0xg", ""},
		{"empty part", "1..2", ""},
		{"only dot", ".", ""},
		{"two trailing dots", "1.2.3.4..", ""},
		{"letters", "1.2.3.a", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseIPv4(tt.in)
			switch {
			case tt.want == "" && err == nil:
				t.Errorf("parseIPv4(%q) = %s, want failure", tt.in, got)
			case tt.want != "" && err != nil:
				t.Errorf("parseIPv4(%q) failed, want %s", tt.in, tt.want)
			case tt.want != "" && got.String() != tt.want:
				t.Errorf("parseIPv4(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestEndsInNumber(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"example.com", false},
		{"example.123", true},
		{"example.0x", true},
		{"example.0x1f", true},
		{"example.0xg", false},
		{"1.2.3.4.", true},
		{"127.0.0.1", true},
		{"0x7f.1", true},
		{"", false},
		{".", false},
		{"com.", false},
		{"1a.example", false},
	}
	for _, tt := range tests {
		if got := endsInNumber(tt.in); got != tt.want {
			t.Errorf("endsInNumber(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestIPv4NotationsRoundTrip renders random IPv4 addresses in random browser
// notations and checks that the URL validator sees the same address.
func TestIPv4NotationsRoundTrip(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		v := rapid.Uint32().Draw(t, "addr")
		parts := rapid.IntRange(1, 4).Draw(t, "parts")
		var fields []string
		for i := range parts {
			var n uint64
			if i < parts-1 {
				n = uint64(v>>(8*(3-i))) & 0xff
			} else {
				n = uint64(v) & (1<<(8*(5-parts)) - 1)
			}
			switch rapid.IntRange(0, 3).Draw(t, "radix") {
			case 0:
				fields = append(fields, strconv.FormatUint(n, 10))
			case 1:
				fields = append(fields, "0x"+strconv.FormatUint(n, 16))
			case 2:
				fields = append(fields, "0X"+strings.ToUpper(strconv.FormatUint(n, 16)))
			default:
				fields = append(fields, "0"+strconv.FormatUint(n, 8))
			}
		}
		host := strings.Join(fields, ".")
		if rapid.Bool().Draw(t, "trailing dot") {
			host += "."
		}
		want := netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})

		got, err := parseIPv4(strings.ToLower(host))
		if err != nil || got != want {
			t.Fatalf("parseIPv4(%q) = %s, %v; want %s", host, got, err, want)
		}
		u, err := ValidateEndpointURL("https://"+host+"/", false)
		_, denied := Denied(want)
		if denied != (err != nil) {
			t.Fatalf("ValidateEndpointURL(https://%s/) error %v, want denied=%v for %s", host, err, denied, want)
		}
		if err == nil && u.Host != want.String() {
			t.Fatalf("ValidateEndpointURL(https://%s/) host %s, want %s", host, u.Host, want)
		}
	})
}

// FuzzValidateEndpointURL checks that whatever the validator accepts is an
// https URL without user info or fragment, in a canonical form that
// validates to itself, and never an IP literal the policy denies.
func FuzzValidateEndpointURL(f *testing.F) {
	for _, seed := range []string{
		"https://hooks.example.com/webhook", "https://0x7f.1/", "https://2130706433/",
		"https://[::ffff:127.0.0.1]/", "https://bücher.example.com/", "https://１２７.０.０.１/",
		"https://8.8.8.8:443/x?y#z", "https://u:p@h.example.com/", "https://h.example.com:8443/",
		"https://%EF%BC%91.1/", "https://[fe80::1%25eth0]/", "https://a.b.c.d.e.f/", "https://0.\xcf0",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		u, err := ValidateEndpointURL(raw, false)
		if err != nil {
			return
		}
		if u.Scheme != "https" || u.User != nil || u.Fragment != "" || u.Host == "" {
			t.Fatalf("accepted %q as %s", raw, u)
		}
		if port := u.Port(); port != "" && port != "443" && port != "80" {
			t.Fatalf("accepted %q with port %s", raw, port)
		}
		h, err := parseHost(u.Hostname())
		if u.Hostname() != "" && strings.Contains(u.Host, "[") {
			h, err = parseHost("[" + u.Hostname() + "]")
		}
		if err != nil {
			t.Fatalf("canonical host of %q does not parse: %v", raw, err)
		}
		if h.addr.IsValid() {
			if reason, denied := Denied(h.addr); denied {
				t.Fatalf("accepted %q with host %s: %s", raw, h.addr, reason)
			}
		}
		again, err := ValidateEndpointURL(u.String(), false)
		if err != nil || again.String() != u.String() {
			t.Fatalf("canonical form %s of %q revalidates to %v, %v", u, raw, again, err)
		}
	})
}
