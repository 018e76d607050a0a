package egress

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestValidateEndpointURL(t *testing.T) {
	long := "https://hooks.example.com/" + strings.Repeat("a", MaxURLLength)
	tests := []struct {
		name   string
		raw    string
		dev    bool   // allowPrivate
		want   string // canonical URL when accepted
		err    string // exact error message when refused
		denied bool   // the error wraps a *DeniedError
	}{
		// Accepted, strict.
		{name: "plain", raw: "https://hooks.example.com/webhook", want: "https://hooks.example.com/webhook"},
		{name: "explicit 443", raw: "https://hooks.example.com:443/x", want: "https://hooks.example.com:443/x"},
		{name: "port 80", raw: "https://hooks.example.com:80/x", want: "https://hooks.example.com:80/x"},
		{name: "port with leading zero", raw: "https://hooks.example.com:0443/x", want: "https://hooks.example.com:443/x"},
		{name: "empty port", raw: "https://hooks.example.com:/x", want: "https://hooks.example.com/x"},
		{name: "case folded host and scheme", raw: "HTTPS://Hooks.Example.COM/Path?Q=1", want: "https://hooks.example.com/Path?Q=1"},
		{name: "query kept", raw: "https://hooks.slack.com/services/T0/B0/xyz?a=1&b=2", want: "https://hooks.slack.com/services/T0/B0/xyz?a=1&b=2"},
		{name: "trailing dot name", raw: "https://example.com./", want: "https://example.com./"},
		{name: "underscore label", raw: "https://under_score.example.com/", want: "https://under_score.example.com/"},
		{name: "ts.net funnel name", raw: "https://node.tailnet-1234.ts.net/hook", want: "https://node.tailnet-1234.ts.net/hook"},
		{name: "IDN", raw: "https://bücher.example.com/", want: "https://xn--bcher-kva.example.com/"},
		{name: "IDN uppercase", raw: "https://BÜCHER.example.com/", want: "https://xn--bcher-kva.example.com/"},
		{name: "punycode", raw: "https://xn--bcher-kva.example.com/", want: "https://xn--bcher-kva.example.com/"},
		{name: "public IPv4", raw: "https://8.8.8.8/hook", want: "https://8.8.8.8/hook"},
		{name: "public IPv4 hex", raw: "https://0x08080808/hook", want: "https://8.8.8.8/hook"},
		{name: "public IPv4 decimal", raw: "https://134744072/hook", want: "https://8.8.8.8/hook"},
		{name: "public IPv4 shortened", raw: "https://1.1/", want: "https://1.0.0.1/"},
		{name: "public IPv4 trailing dot", raw: "https://1.1.1.1./", want: "https://1.1.1.1/"},
		{name: "public IPv6", raw: "https://[2606:4700:4700:0:0:0:0:1111]/", want: "https://[2606:4700:4700::1111]/"},
		{name: "public IPv6 with port", raw: "https://[2a00:1450::1]:443/", want: "https://[2a00:1450::1]:443/"},
		{name: "mapped public IPv6", raw: "https://[::ffff:8.8.8.8]/", want: "https://[::ffff:8.8.8.8]/"},

		// Denied IP literals in every notation a browser accepts.
		{name: "loopback dotted", raw: "https://127.0.0.1/secret", err: "url host 127.0.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback single decimal", raw: "https://2130706433/", err: "url host 2130706433 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback single hex", raw: "https://0x7f000001/", err: "url host 0x7f000001 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback hex shortened", raw: "https://0x7f.1/", err: "url host 0x7f.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback uppercase hex", raw: "https://0X7F.0.0.1/", err: "url host 0X7F.0.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback octal dotted", raw: "https://0177.0.0.1/", err: "url host 0177.0.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback single octal", raw: "https://017700000001/", err: "url host 017700000001 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback two parts", raw: "https://127.1/", err: "url host 127.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback three parts", raw: "https://127.0.1/", err: "url host 127.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback trailing dot", raw: "https://127.0.0.1./", err: "url host 127.0.0.1. is the loopback address 127.0.0.1", denied: true},
		{name: "loopback mixed notations", raw: "https://0x7f.00.0.01/", err: "url host 0x7f.00.0.01 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback explicit 443", raw: "https://127.0.0.1:443/", err: "url host 127.0.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "loopback fullwidth digits", raw: "https://１２７.０.０.１/", err: "url host １２７.０.０.１ is the loopback address 127.0.0.1", denied: true},
		{name: "loopback ideographic dots", raw: "https://127。0。0。1/", err: "url host 127。0。0。1 is the loopback address 127.0.0.1", denied: true},
		{name: "unspecified zero", raw: "https://0/", err: "url host 0 is the unspecified address 0.0.0.0", denied: true},
		{name: "unspecified dotted", raw: "https://0.0.0.0/", err: "url host 0.0.0.0 is the unspecified address 0.0.0.0", denied: true},
		{name: "metadata", raw: "https://169.254.169.254/latest/meta-data/", err: "url host 169.254.169.254 is the metadata-service link-local address 169.254.169.254", denied: true},
		{name: "metadata hex", raw: "https://0xa9fea9fe/", err: "url host 0xa9fea9fe is the metadata-service link-local address 169.254.169.254", denied: true},
		{name: "metadata decimal", raw: "https://2852039166/", err: "url host 2852039166 is the metadata-service link-local address 169.254.169.254", denied: true},
		{name: "CGNAT", raw: "https://100.64.0.1/", err: "url host 100.64.0.1 is the CGNAT address 100.64.0.1", denied: true},
		{name: "private", raw: "https://10.0.0.1/", err: "url host 10.0.0.1 is the private address 10.0.0.1", denied: true},
		{name: "private octal", raw: "https://012.0.0.1/", err: "url host 012.0.0.1 is the private address 10.0.0.1", denied: true},
		{name: "private 192.168", raw: "https://192.168.0.1/", err: "url host 192.168.0.1 is the private address 192.168.0.1", denied: true},
		{name: "broadcast", raw: "https://0xffffffff/", err: "url host 0xffffffff is the broadcast address 255.255.255.255", denied: true},
		{name: "v6 unspecified", raw: "https://[::]/", err: "url host [::] is the unspecified address ::", denied: true},
		{name: "v6 loopback", raw: "https://[::1]/", err: "url host [::1] is the loopback address ::1", denied: true},
		{name: "v6 loopback long form", raw: "https://[0:0:0:0:0:0:0:1]/", err: "url host [0:0:0:0:0:0:0:1] is the loopback address ::1", denied: true},
		{name: "mapped loopback", raw: "https://[::ffff:127.0.0.1]/", err: "url host [::ffff:127.0.0.1] is the loopback address 127.0.0.1 (IPv4-mapped as ::ffff:127.0.0.1)", denied: true},
		{name: "mapped loopback hex", raw: "https://[::ffff:7f00:1]/", err: "url host [::ffff:7f00:1] is the loopback address 127.0.0.1 (IPv4-mapped as ::ffff:127.0.0.1)", denied: true},
		{name: "compatible loopback", raw: "https://[::127.0.0.1]/", err: "url host [::127.0.0.1] is the loopback address 127.0.0.1 embedded in IPv4-compatible address ::7f00:1", denied: true},
		{name: "NAT64 loopback", raw: "https://[64:ff9b::7f00:1]/", err: "url host [64:ff9b::7f00:1] is the loopback address 127.0.0.1 embedded in NAT64 address 64:ff9b::7f00:1", denied: true},
		{name: "6to4 metadata", raw: "https://[2002:a9fe:a9fe::]/", err: "url host [2002:a9fe:a9fe::] is the metadata-service link-local address 169.254.169.254 embedded in 6to4 address 2002:a9fe:a9fe::", denied: true},
		{name: "Tailscale ULA", raw: "https://[fd7a:115c:a1e0::1]/", err: "url host [fd7a:115c:a1e0::1] is the Tailscale address fd7a:115c:a1e0::1", denied: true},

		// Names refused by name under the strict policy.
		{name: "localhost", raw: "https://localhost/", err: "url host localhost is a loopback name (RFC 6761)", denied: true},
		{name: "localhost uppercase", raw: "https://LOCALHOST/", err: "url host LOCALHOST is a loopback name (RFC 6761)", denied: true},
		{name: "localhost trailing dot", raw: "https://localhost./", err: "url host localhost. is a loopback name (RFC 6761)", denied: true},
		{name: "sub.localhost", raw: "https://api.localhost/", err: "url host api.localhost is a loopback name (RFC 6761)", denied: true},
		{name: "localhost.localdomain", raw: "https://localhost.localdomain/", err: "url host localhost.localdomain is a local name (.localdomain)", denied: true},
		{name: "mDNS", raw: "https://printer.local/", err: "url host printer.local is a link-local multicast DNS name (.local, RFC 6762)", denied: true},
		{name: "internal", raw: "https://metadata.google.internal/", err: "url host metadata.google.internal is a private-use name (.internal)", denied: true},
		{name: "home.arpa", raw: "https://router.home.arpa/", err: "url host router.home.arpa is a home network name (.home.arpa, RFC 8375)", denied: true},
		{name: "test TLD", raw: "https://hooks.test/", err: "url host hooks.test is a reserved name (.test, RFC 6761)", denied: true},
		{name: "onion", raw: "https://abc.onion/", err: "url host abc.onion is a Tor onion name (.onion, RFC 7686)", denied: true},
		{name: "single label", raw: "https://intranet/", err: "url host intranet is not a fully qualified domain name", denied: true},
		{name: "suffix is whole labels only", raw: "https://glocal.com/", want: "https://glocal.com/"},

		// Malformed hosts.
		{name: "IPv4 part over 255", raw: "https://256.0.0.1/", err: "url host 256.0.0.1 is not a valid IPv4 address"},
		{name: "IPv4 five parts", raw: "https://1.2.3.4.5/", err: "url host 1.2.3.4.5 is not a valid IPv4 address"},
		{name: "IPv4 overflow decimal", raw: "https://4294967296/", err: "url host 4294967296 is not a valid IPv4 address"},
		{name: "IPv4 overflow hex", raw: "https://0x100000000/", err: "url host 0x100000000 is not a valid IPv4 address"},
		{name: "IPv4 last part too big", raw: "https://127.0.0.256/", err: "url host 127.0.0.256 is not a valid IPv4 address"},
		{name: "IPv4 bad octal", raw: "https://09.0.0.1/", err: "url host 09.0.0.1 is not a valid IPv4 address"},
		{name: "IPv4 empty part", raw: "https://1..1/", err: "url host 1..1 is not a valid IPv4 address"},
		{name: "name ending in number", raw: "https://example.123/", err: "url host example.123 is not a valid IPv4 address"},
		{name: "name ending in hex", raw: "https://example.0x1/", err: "url host example.0x1 is not a valid IPv4 address"},
		{name: "bracketed IPv4", raw: "https://[127.0.0.1]/", err: "url is not valid: invalid IP-literal"},
		{name: "percent-encoded host", raw: "https://%31%32%37.0.0.1/", err: `url is not valid: invalid URL escape "%31"`},
		{name: "percent-encoded fullwidth host", raw: "https://%EF%BC%91%EF%BC%92%EF%BC%97.0.0.1/", err: "url host １２７.0.0.1 is the loopback address 127.0.0.1", denied: true},
		{name: "IPv6 zone", raw: "https://[fe80::1%25eth0]/", err: "url host [fe80::1%eth0] must not carry an IPv6 zone"},
		{name: "bad character", raw: "https://ex!ample.com/", err: `url host "ex!ample.com" contains '!', which is not allowed in a host name`},
		{name: "empty label", raw: "https://a..example.com/", err: "url host a..example.com is not a valid domain name: empty label"},
		{name: "label too long", raw: "https://" + strings.Repeat("a", 64) + ".example.com/", err: "url host " + strings.Repeat("a", 64) + ".example.com is not a valid domain name: label longer than 63 characters"},
		{name: "invalid UTF-8", raw: "https://0.\xcf0/", err: `url host "0.\xcf0" is not valid UTF-8`},
		{name: "invalid punycode", raw: "https://xn--a.example.com/", err: "url host xn--a.example.com is not a valid internationalized domain name"},

		// Everything else.
		{name: "empty", raw: "", err: "url is empty"},
		{name: "only spaces", raw: "   ", err: "url contains a space at byte 0"},
		{name: "leading space", raw: " https://hooks.example.com/", err: "url contains a space at byte 0"},
		{name: "space in host", raw: "https://hooks .example.com/", err: "url contains a space at byte 13"},
		{name: "newline", raw: "https://hooks.example.com/\n", err: "url contains control character 0x0a at byte 26"},
		{name: "tab in host", raw: "https://hoo\tks.example.com/", err: "url contains control character 0x09 at byte 11"},
		{name: "NUL", raw: "https://hooks.example.com/\x00", err: "url contains control character 0x00 at byte 26"},
		{name: "DEL", raw: "https://hooks.example.com/\x7f", err: "url contains control character 0x7f at byte 26"},
		{name: "backslash", raw: `https://evil.example.com\@127.0.0.1/`, err: "url contains a backslash at byte 24"},
		{name: "too long", raw: long, err: "url is longer than 2048 bytes"},
		{name: "http", raw: "http://hooks.example.com/secret", err: "url scheme must be https, not http"},
		{name: "ftp", raw: "ftp://hooks.example.com/", err: "url scheme must be https, not ftp"},
		{name: "no scheme", raw: "hooks.example.com/webhook", err: "url must be absolute and start with https://"},
		{name: "scheme-relative", raw: "//hooks.example.com/webhook", err: "url must be absolute and start with https://"},
		{name: "no host", raw: "https:///webhook", err: "url must have a host"},
		{name: "opaque", raw: "https:hooks.example.com", err: "url must have a host"},
		{name: "user and password", raw: "https://user:secret@hooks.example.com/", err: "url must not contain user info"},
		{name: "user only", raw: "https://secret@hooks.example.com/", err: "url must not contain user info"},
		{name: "fragment", raw: "https://hooks.example.com/#secret", err: "url must not contain a fragment"},
		{name: "empty fragment", raw: "https://hooks.example.com/#", err: "url must not contain a fragment"},
		{name: "port 8443", raw: "https://hooks.example.com:8443/secret", err: "url port 8443 is not allowed (use 443 or 80)", denied: true},
		{name: "port 22", raw: "https://hooks.example.com:22/", err: "url port 22 is not allowed (use 443 or 80)", denied: true},
		{name: "port zero", raw: "https://hooks.example.com:0/", err: "url port 0 is not a valid port number"},
		{name: "port too big", raw: "https://hooks.example.com:99999/", err: "url port 99999 is not a valid port number"},
		{name: "port not a number", raw: "https://hooks.example.com:https/", err: `url is not valid: invalid port ":https" after host`},
		{name: "unclosed bracket", raw: "https://[::1/", err: `url is not valid: missing ']' in host`},
		{name: "bad escape in path", raw: "https://hooks.example.com/%zz", err: `url is not valid: invalid URL escape "%zz"`},

		// Development mode.
		{name: "dev loopback any port", raw: "https://127.0.0.1:8443/", dev: true, want: "https://127.0.0.1:8443/"},
		{name: "dev loopback hex", raw: "https://0x7f.1:9000/x", dev: true, want: "https://127.0.0.1:9000/x"},
		{name: "dev localhost", raw: "https://localhost:8443/", dev: true, want: "https://localhost:8443/"},
		{name: "dev mDNS", raw: "https://printer.local/", dev: true, want: "https://printer.local/"},
		{name: "dev single label", raw: "https://receiver/", dev: true, want: "https://receiver/"},
		{name: "dev v6 loopback", raw: "https://[::1]:9000/", dev: true, want: "https://[::1]:9000/"},
		{name: "dev unspecified still denied", raw: "https://0.0.0.0:8443/", dev: true, err: "url host 0.0.0.0 is the unspecified address 0.0.0.0", denied: true},
		{name: "dev multicast still denied", raw: "https://224.0.0.1/", dev: true, err: "url host 224.0.0.1 is the multicast address 224.0.0.1", denied: true},
		{name: "dev http still refused", raw: "http://localhost:8080/", dev: true, err: "url scheme must be https, not http"},
		{name: "dev user info still refused", raw: "https://u:secret@localhost/", dev: true, err: "url must not contain user info"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := ValidateEndpointURL(tt.raw, tt.dev)
			if tt.err == "" {
				if err != nil {
					t.Fatalf("ValidateEndpointURL(%q) error %q, want %s", tt.raw, err, tt.want)
				}
				if got := u.String(); got != tt.want {
					t.Errorf("ValidateEndpointURL(%q) = %s, want %s", tt.raw, got, tt.want)
				}
				return
			}
			if err == nil {
				t.Fatalf("ValidateEndpointURL(%q) = %s, want error %q", tt.raw, u, tt.err)
			}
			if err.Error() != tt.err {
				t.Errorf("ValidateEndpointURL(%q) error\n got %q\nwant %q", tt.raw, err, tt.err)
			}
			var ue *URLError
			if !errors.As(err, &ue) {
				t.Errorf("error type %T, want *URLError", err)
			}
			var de *DeniedError
			if got := errors.As(err, &de); got != tt.denied {
				t.Errorf("errors.As(err, *DeniedError) = %v, want %v", got, tt.denied)
			}
			if strings.Contains(err.Error(), "secret") {
				t.Errorf("error %q repeats a secret from the URL", err)
			}
		})
	}
}

// TestValidateEndpointURLDeniedAddress checks that the *DeniedError inside a
// refused literal names the address that was refused.
func TestValidateEndpointURLDeniedAddress(t *testing.T) {
	_, err := ValidateEndpointURL("https://0x7f.1/", false)
	var de *DeniedError
	if !errors.As(err, &de) {
		t.Fatalf("error %v, want a *DeniedError", err)
	}
	if want := netip.MustParseAddr("127.0.0.1"); de.Addr != want {
		t.Errorf("DeniedError.Addr = %s, want %s", de.Addr, want)
	}
}
