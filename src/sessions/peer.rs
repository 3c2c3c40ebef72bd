//! The client's address: the peer's own, or, when the peer is a trusted proxy, the address its
//! forwarding header names. Only the hops that trusted proxies added are believed: the list is
//! read from its right end (the hop nearest this server), and the first address that is not a
//! trusted proxy is the client. A client can prepend whatever it likes; it cannot append. A hop
//! that names no address (garbage, RFC 7239's `unknown` or an obfuscated `_name`) ends the walk
//! at the nearest address believed so far.
//!
//! Two headers carry the chain. `X-Forwarded-For` is read when present, and RFC 7239's
//! `Forwarded` (its `for=` parameters) only when it is absent: nginx, HAProxy, Envoy and the
//! cloud load balancers write `X-Forwarded-For` and pass a `Forwarded` header through as the
//! client sent it, so preferring `Forwarded` would let a client behind them name itself anyone.
//! (Behind a proxy that writes only `Forwarded`, have it drop a client's `X-Forwarded-For`.)
//!
//! A hop is an address with or without a port, as proxies and gateways write it: `198.51.100.7`,
//! `198.51.100.7:51000`, `2001:db8::7`, `[2001:db8::7]`, `[2001:db8::7]:51000`.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;

/// The proxies allowed to name the client (`TRUSTED_PROXIES`).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(networks: Vec<IpNet>) -> TrustedProxies {
        TrustedProxies(networks)
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The address of the client behind `peer` (the TCP peer of the request).
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut client = peer.to_canonical();
        if !self.trusts(client) {
            return client;
        }
        for hop in forwarded_hops(headers).into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop {
                Some(address) => client = address.to_canonical(),
                // No address from beyond the last trusted hop: the proxy is the best we know.
                None => break,
            }
        }
        client
    }
}

/// The chain of client addresses the forwarding headers name, farthest first; `None` for a hop
/// that names no usable address (a header line that is not text counts as one). Several header
/// lines join in order.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let lines = |name: &str| -> Vec<&str> {
        headers.get_all(name).iter().map(|value| value.to_str().unwrap_or_default()).collect()
    };
    let x_forwarded_for = lines("x-forwarded-for");
    if !x_forwarded_for.is_empty() {
        return x_forwarded_for.iter().flat_map(|line| line.split(',')).map(hop_address).collect();
    }
    lines("forwarded").iter().flat_map(|line| split_unquoted(line, ',')).map(forwarded_element).collect()
}

/// The node an RFC 7239 element's `for=` names (`for=192.0.2.60;proto=http`,
/// `for="[2001:db8::7]:4711"`); `None` without one or when it is no address.
fn forwarded_element(element: &str) -> Option<IpAddr> {
    split_unquoted(element, ';').into_iter().find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        name.trim().eq_ignore_ascii_case("for").then(|| hop_address(&unquote(value.trim())))?
    })
}

/// One hop's address: a bare IPv4 or IPv6 address, or bracketed IPv6, each optionally followed
/// by a port; anything else (`unknown`, `_hidden`, garbage) is `None`.
fn hop_address(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    if let Ok(address) = hop.parse::<IpAddr>() {
        return Some(address);
    }
    let (address, port) = match hop.strip_prefix('[') {
        Some(rest) => {
            let (v6, after) = rest.split_once(']')?;
            let port = match after {
                "" => None,
                _ => Some(after.strip_prefix(':')?),
            };
            (IpAddr::V6(v6.parse().ok()?), port)
        }
        // Without brackets, a colon can only separate an IPv4 address from its port.
        None => {
            let (v4, port) = hop.split_once(':')?;
            (IpAddr::V4(v4.parse().ok()?), Some(port))
        }
    };
    port.is_none_or(is_port).then_some(address)
}

/// A port as a hop writes it: a number, or RFC 7239's obfuscated `_name`.
fn is_port(port: &str) -> bool {
    let obfuscated = |name: &str| {
        name.len() > 1 && name[1..].chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
    };
    port.parse::<u16>().is_ok() || (port.starts_with('_') && obfuscated(port))
}

/// `text` split at `separator`s outside double quotes.
fn split_unquoted(text: &str, separator: char) -> Vec<&str> {
    let (mut parts, mut start, mut quoted, mut escaped) = (Vec::new(), 0, false, false);
    for (i, c) in text.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts
}

/// An RFC 7239 value without its quotes and escapes (a token is returned as it is).
fn unquote(value: &str) -> String {
    match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
        Some(inner) => {
            let mut out = String::with_capacity(inner.len());
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                out.push(if c == '\\' { chars.next().unwrap_or(c) } else { c });
            }
            out
        }
        None => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::new(list.iter().map(|n| n.parse().unwrap()).collect())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_peer_that_is_no_proxy_is_the_client_whatever_it_forwards() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(trusted.client_address(ip("203.0.113.9"), &forwarded(&["198.51.100.1"])), ip("203.0.113.9"));
        assert_eq!(
            TrustedProxies::default().client_address(ip("127.0.0.1"), &forwarded(&["1.2.3.4"])),
            ip("127.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_a_client_cannot_name_itself_someone_else() {
        let trusted = proxies(&["10.0.0.0/8"]);
        // The client claimed 6.6.6.6; the proxy appended what it saw.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7"]);
        assert_eq!(trusted.client_address(ip("10.1.2.3"), &headers), ip("198.51.100.7"));
    }

    #[test]
    fn chained_proxies_are_walked_from_the_nearest_and_headers_join_in_order() {
        let trusted = proxies(&["10.0.0.0/8", "192.0.2.10/32"]);
        let headers = forwarded(&["198.51.100.7", "192.0.2.10"]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
    }

    #[test]
    fn a_proxy_without_a_header_or_with_garbage_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"));
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &forwarded(&["not-an-ip"])), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_addresses_are_read_as_ipv4() {
        let trusted = proxies(&["127.0.0.1/32"]);
        let headers = forwarded(&["::ffff:198.51.100.7"]);
        assert_eq!(trusted.client_address(ip("::ffff:127.0.0.1"), &headers), ip("198.51.100.7"));
    }

    fn with(name: &'static str, values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(name, value.parse().unwrap());
        }
        headers
    }

    #[test]
    fn a_hop_is_an_address_with_or_without_a_port() {
        for (hop, address) in [
            ("198.51.100.7", "198.51.100.7"),
            (" 198.51.100.7:51000 ", "198.51.100.7"),
            ("198.51.100.7:_gateway", "198.51.100.7"),
            ("2001:db8::7", "2001:db8::7"),
            ("[2001:db8::7]", "2001:db8::7"),
            ("[2001:db8::7]:51000", "2001:db8::7"),
            ("[::ffff:198.51.100.7]:1", "::ffff:198.51.100.7"),
        ] {
            assert_eq!(hop_address(hop), Some(ip(address)), "{hop}");
        }
        for hop in [
            "",
            "unknown",
            "_hidden",
            "not-an-ip",
            "198.51.100.7:",
            "198.51.100.7:99999",
            "198.51.100.7:_",
            "2001:db8::7:51000x",
            "[2001:db8::7",
            "[2001:db8::7]51000",
            "[198.51.100.7]",
            "example.com:80",
        ] {
            assert_eq!(hop_address(hop), None, "{hop}");
        }
    }

    #[test]
    fn ported_hops_behind_a_trusted_proxy_name_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let v4 = forwarded(&["6.6.6.6, 198.51.100.7:51000"]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &v4), ip("198.51.100.7"));
        let v6 = forwarded(&["[2001:db8::7]:51000, 10.0.0.2:443"]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &v6), ip("2001:db8::7"));
    }

    #[test]
    fn rfc_7239_forwarded_names_the_client_from_its_for_parameters() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let headers = with(
            "forwarded",
            &["for=6.6.6.6", r#"For="[2001:db8::7]:4711";proto=https;by=10.0.0.2, for=10.0.0.3:80;host="a,b""#],
        );
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &headers), ip("2001:db8::7"));
        let plain = with("forwarded", &["proto=http;for=192.0.2.60"]);
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &plain), ip("192.0.2.60"));
    }

    #[test]
    fn an_obfuscated_or_unknown_hop_stops_at_the_nearest_address_believed() {
        let trusted = proxies(&["10.0.0.0/8"]);
        for hidden in ["for=_hidden", "for=unknown", "proto=https", r#"for="_x:80""#] {
            let headers = with("forwarded", &[&format!("for=6.6.6.6, {hidden}, for=10.0.0.2")]);
            assert_eq!(trusted.client_address(ip("10.0.0.1"), &headers), ip("10.0.0.2"), "{hidden}");
        }
    }

    #[test]
    fn x_forwarded_for_wins_over_forwarded() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let mut headers = forwarded(&["198.51.100.7"]);
        headers.append("forwarded", "for=6.6.6.6".parse().unwrap());
        assert_eq!(trusted.client_address(ip("10.0.0.1"), &headers), ip("198.51.100.7"));
    }
}
