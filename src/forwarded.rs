//! The client's address behind proxies of the deployment's own (`http.trusted_proxies`).
//!
//! A proxy in front makes every connection come from the proxy, so the per-address limits
//! would count all clients as one. `X-Forwarded-For` names the client, but anyone can send
//! the header, so it is read only on a connection from a trusted proxy, and walked from the
//! right (the hop nearest to the router) past the trusted hops: the first address that is not
//! one of ours is the client. Whatever a client wrote further left is never reached, so it
//! cannot choose the address its limits count against.

use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// The header a proxy names the client in.
pub const FORWARDED_FOR: &str = "x-forwarded-for";

/// One entry of `http.trusted_proxies`: an address (`10.0.0.5`) or a network (`10.0.0.0/8`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct TrustedProxy(IpNet);

impl TryFrom<String> for TrustedProxy {
    type Error = String;

    fn try_from(value: String) -> Result<Self, String> {
        let text = value.trim();
        text.parse::<IpNet>()
            .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
            .map(TrustedProxy)
            .map_err(|_| {
                format!("`{value}` is neither an IP address nor a network such as 10.0.0.0/8")
            })
    }
}

/// The proxies whose `X-Forwarded-For` is believed. Empty (the default): the header is never
/// read and the client is the connection's peer.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(proxies: &[TrustedProxy]) -> Self {
        TrustedProxies(proxies.iter().map(|p| p.0).collect())
    }

    fn trusts(&self, address: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client of a connection from `peer` whose request carries `forwarded_for` (each
    /// `X-Forwarded-For` header's value, in the order received). An entry that is not an
    /// address ends the walk at the last hop read: what lies beyond it cannot be told apart
    /// from what a client made up.
    pub fn client<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a [u8]>,
    ) -> IpAddr {
        let peer = peer.to_canonical();
        if self.0.is_empty() || !self.trusts(peer) {
            return peer;
        }
        let values: Vec<&[u8]> = forwarded_for.into_iter().collect();
        let hops = values
            .iter()
            .rev()
            .flat_map(|value| value.rsplit(|&b| b == b','));
        let mut client = peer;
        for hop in hops {
            let Some(address) = parse_hop(hop) else {
                break;
            };
            client = address;
            if !self.trusts(address) {
                break;
            }
        }
        client
    }
}

/// One hop of `X-Forwarded-For`: `203.0.113.7`, `2001:db8::1`, or either with a port
/// (`203.0.113.7:4711`, `[2001:db8::1]:4711`), as some proxies write them.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    let address = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()?;
    Some(address.to_canonical())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn proxies(list: &[&str]) -> TrustedProxies {
        let parsed: Vec<TrustedProxy> = list
            .iter()
            .map(|p| TrustedProxy::try_from((*p).to_owned()).expect("a proxy entry"))
            .collect();
        TrustedProxies::new(&parsed)
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("an address")
    }

    fn client(proxies: &TrustedProxies, peer: &str, headers: &[&str]) -> IpAddr {
        proxies.client(ip(peer), headers.iter().map(|h| h.as_bytes()))
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let none = TrustedProxies::default();
        assert_eq!(client(&none, "10.0.0.5", &["203.0.113.7"]), ip("10.0.0.5"));
    }

    #[test]
    fn an_untrusted_peer_cannot_name_another_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "198.51.100.1", &["203.0.113.7"]),
            ip("198.51.100.1")
        );
    }

    #[test]
    fn the_first_untrusted_hop_from_the_right_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8", "192.168.1.1"]);
        // The client forged the leftmost entry; the proxies appended the rest.
        let headers = ["1.2.3.4, 203.0.113.7, 10.1.1.1", "192.168.1.1"];
        assert_eq!(client(&trusted, "10.0.0.5", &headers), ip("203.0.113.7"));
        // Ports and IPv6 as proxies write them; an IPv4-mapped peer counts as IPv4.
        assert_eq!(
            client(&trusted, "::ffff:10.0.0.5", &["[2001:db8::1]:4711"]),
            ip("2001:db8::1")
        );
        assert_eq!(
            client(&trusted, "10.0.0.5", &["203.0.113.7:4711"]),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn a_garbled_or_missing_hop_stops_at_the_last_address_read() {
        let trusted = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            client(&trusted, "10.0.0.5", &["203.0.113.7, unknown, 10.2.2.2"]),
            ip("10.2.2.2")
        );
        assert_eq!(client(&trusted, "10.0.0.5", &[]), ip("10.0.0.5"));
        // Every hop is a proxy: the leftmost one is the best that is known.
        assert_eq!(
            client(&trusted, "10.0.0.5", &["10.3.3.3, 10.4.4.4"]),
            ip("10.3.3.3")
        );
    }

    #[test]
    fn entries_are_addresses_or_networks() {
        assert!(TrustedProxy::try_from("10.0.0.0/8".to_owned()).is_ok());
        assert!(TrustedProxy::try_from("::1".to_owned()).is_ok());
        let err = TrustedProxy::try_from("proxy.internal".to_owned()).expect_err("a name");
        assert!(err.contains("proxy.internal"), "{err}");
    }
}
