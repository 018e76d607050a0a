package egress

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
)

// MaxURLLength is the longest endpoint URL accepted, in bytes.
const MaxURLLength = 2048

// Ports an endpoint may use under the strict policy (Tailscale's rule).
const (
	httpsPort = 443
	httpPort  = 80
)

// URLError reports why an endpoint URL was refused. Its message is meant
// for the user who submitted the URL (it goes into a 400 response): it
// names the problem precisely and never repeats the URL's path, query or
// user info, which may hold secrets. When the URL was refused by the egress
// policy (a denied address, name or port), Err is a *DeniedError.
type URLError struct {
	Msg string
	Err error
}

func (e *URLError) Error() string { return e.Msg }

func (e *URLError) Unwrap() error { return e.Err }

// urlRules are the knobs of URL validation. The zero value is strict.
type urlRules struct {
	policy  AddressPolicy
	anyPort bool // any port, not only 443 and 80
}

// ValidateEndpointURL checks an endpoint URL for registration and returns it
// in canonical form. The rules: https only; a host; no user info; no
// fragment; at most MaxURLLength bytes with no spaces, control characters or
// backslashes; port 443 or 80 (any port when allowPrivate); and a host that
// the egress policy allows. The host is parsed the way a browser parses it,
// so an IP address in any notation (0x7f.1, 2130706433, 0177.0.0.1, 127.1,
// [::ffff:7f00:1], a trailing dot, fullwidth digits) is judged as the
// address it is. Under the strict policy, special-use names (localhost,
// *.local, *.internal, …) and single-label names are refused too.
//
// The returned URL has an ASCII, lower-case host: IPv4 in dotted decimal,
// IPv6 compressed in brackets, internationalized names in punycode. Errors
// are *URLError.
func ValidateEndpointURL(raw string, allowPrivate bool) (*url.URL, error) {
	rules := urlRules{policy: AddressPolicy{AllowPrivate: allowPrivate}, anyPort: allowPrivate}
	return rules.validate(raw)
}

func (r urlRules) validate(raw string) (*url.URL, error) {
	if raw == "" {
		return nil, &URLError{Msg: "url is empty"}
	}
	if len(raw) > MaxURLLength {
		return nil, &URLError{Msg: fmt.Sprintf("url is longer than %d bytes", MaxURLLength)}
	}
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; {
		case c == ' ':
			return nil, &URLError{Msg: fmt.Sprintf("url contains a space at byte %d", i)}
		case c < 0x20 || c == 0x7f:
			return nil, &URLError{Msg: fmt.Sprintf("url contains control character %#02x at byte %d", c, i)}
		case c == '\\':
			// Browsers read a backslash as a slash in https URLs and Go
			// does not; refuse it rather than disagree about the host.
			return nil, &URLError{Msg: fmt.Sprintf("url contains a backslash at byte %d", i)}
		}
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the whole URL; keep only the cause.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, &URLError{Msg: "url is not valid: " + strings.TrimPrefix(err.Error(), "net/url: "), Err: err}
	}
	switch {
	case u.Scheme == "":
		return nil, &URLError{Msg: "url must be absolute and start with https://"}
	case u.Scheme != "https":
		return nil, &URLError{Msg: fmt.Sprintf("url scheme must be https, not %s", u.Scheme)}
	case u.Opaque != "" || u.Host == "":
		return nil, &URLError{Msg: "url must have a host"}
	case u.User != nil:
		return nil, &URLError{Msg: "url must not contain user info"}
	case strings.Contains(raw, "#"):
		return nil, &URLError{Msg: "url must not contain a fragment"}
	}

	hostname := u.Hostname()
	if strings.HasPrefix(u.Host, "[") {
		hostname = "[" + hostname + "]"
	}
	h, err := parseHost(hostname)
	if err != nil {
		return nil, &URLError{Msg: err.Error(), Err: err}
	}
	if h.addr.IsValid() {
		if reason, denied := r.policy.Denied(h.addr); denied {
			return nil, &URLError{
				Msg: fmt.Sprintf("url host %s is the %s", hostname, reason),
				Err: &DeniedError{Host: hostname, Addr: h.addr, Reason: reason},
			}
		}
	} else if !r.policy.AllowPrivate {
		if what, special := specialName(h.domain); special {
			return nil, &URLError{
				Msg: fmt.Sprintf("url host %s is %s", hostname, what),
				Err: &DeniedError{Host: h.domain, Reason: what},
			}
		}
	}

	canonical := h.String()
	if p := u.Port(); p != "" {
		port, err := strconv.ParseUint(p, 10, 16)
		if err != nil || port == 0 {
			return nil, &URLError{Msg: fmt.Sprintf("url port %s is not a valid port number", p)}
		}
		if !r.anyPort && port != httpsPort && port != httpPort {
			reason := fmt.Sprintf("port %d is not allowed (use %d or %d)", port, httpsPort, httpPort)
			return nil, &URLError{
				Msg: "url " + reason,
				Err: &DeniedError{Host: canonical, Reason: reason},
			}
		}
		canonical += ":" + strconv.FormatUint(port, 10)
	}
	u.Host = canonical
	return u, nil
}

// specialNames are DNS suffixes that never name a public webhook receiver.
// Each is matched as a whole label suffix ("local" matches printer.local,
// not glocal.com).
var specialNames = []struct{ suffix, what string }{
	{"localhost", "a loopback name (RFC 6761)"},
	{"localdomain", "a local name (.localdomain)"},
	{"local", "a link-local multicast DNS name (.local, RFC 6762)"},
	{"internal", "a private-use name (.internal)"},
	{"home.arpa", "a home network name (.home.arpa, RFC 8375)"},
	{"test", "a reserved name (.test, RFC 6761)"},
	{"example", "a reserved name (.example, RFC 6761)"},
	{"invalid", "a reserved name (.invalid, RFC 6761)"},
	{"onion", "a Tor onion name (.onion, RFC 7686)"},
	{"alt", "a non-DNS name (.alt, RFC 9476)"},
}

// specialName reports whether an ASCII domain is refused by name under the
// strict policy, and what it is.
func specialName(domain string) (string, bool) {
	name := strings.TrimSuffix(domain, ".")
	for _, s := range specialNames {
		if name == s.suffix || strings.HasSuffix(name, "."+s.suffix) {
			return s.what, true
		}
	}
	if !strings.Contains(name, ".") {
		// A single label is completed from the resolver's search list, so
		// it names whatever the local network calls it (intranet, metadata).
		return "not a fully qualified domain name", true
	}
	return "", false
}
