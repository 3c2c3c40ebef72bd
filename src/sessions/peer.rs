//! The client's address: the peer's own, or, when the peer is a trusted proxy, the address its
//! `X-Forwarded-For` names. Only the hops that trusted proxies added are believed: the list is
//! read from its right end (the hop nearest this server), and the first address that is not a
//! trusted proxy is the client. A client can prepend whatever it likes; it cannot append.

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
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            if !self.trusts(client) {
                break;
            }
            match hop.parse::<IpAddr>() {
                Ok(address) => client = address.to_canonical(),
                // Garbage from beyond the last trusted hop: the proxy is the best we know.
                Err(_) => break,
            }
        }
        client
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
}
