//! The connection under HTTP: the accept loop with its limits ([`listener`]), TLS with rustls
//! and certificate reload ([`tls`]), and what a handler may know of the connection a request
//! came on ([`Peer`]). It knows no route, no charger and no ledger.

pub mod listener;
pub mod throttle;
pub mod tls;

use std::net::{IpAddr, SocketAddr};

pub use tls::ClientCert;

/// The connection a request came on, put in every request's extensions by the listener.
#[derive(Debug, Clone)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether the connection speaks TLS to us (a TLS-terminating proxy in front is not seen).
    pub tls: bool,
    pub client_cert: ClientCert,
}

impl Peer {
    /// The source address as throttling keys it: an IPv6 address by its /64, the prefix one
    /// subscriber usually holds whole; IPv4-mapped addresses as the IPv4 address.
    pub fn source(&self) -> IpAddr {
        source_of(self.addr.ip())
    }
}

/// See [`Peer::source`].
pub fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}
