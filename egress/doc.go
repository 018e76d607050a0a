// Package egress is Herald's outbound side: the SSRF-safe HTTPS client that
// every webhook delivery goes through, and the rules it enforces.
//
// Three layers apply the same address policy:
//
//   - [ValidateEndpointURL] checks an endpoint URL when it is registered (and
//     again on every [Client.Post]): https only, no user info or fragment, an
//     allowed port, and a host that is neither a special-use name nor a
//     denied IP literal in any notation a browser accepts (0x7f.1, 2130706433,
//     [::ffff:127.0.0.1], …).
//   - [Client] resolves the host itself, refuses the delivery if any resolved
//     address is denied, and dials only the addresses it checked.
//   - The dialer's socket hook (net.Dialer.ControlContext) checks the address
//     actually being connected to, so DNS rebinding cannot slip through.
//
// [AddressPolicy] holds the address rules; its zero value is the strict
// production policy. Redirects are never followed, proxies from the
// environment are ignored, every attempt has a deadline and response bodies
// are read up to a small cap. See docs/egress.md for the rules and the
// decisions behind them.
package egress
