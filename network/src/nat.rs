//! NAT traversal: how a home machine behind a router serves and is served. Four libp2p
//! parts do the work, composed in [`crate::behaviour`]:
//! - **AutoNAT (v2)** tells a node whether the addresses its peers observe it at (through
//!   identify) are dialable: a server dials the candidate back from a fresh port, so a
//!   router's mapping of our own outbound flow to that server cannot fake a success. A
//!   node with a confirmed address is [`Reachability::Public`]; one with two failed
//!   tests in a row and nothing confirmed is [`Reachability::Private`]. (AutoNAT v2 applies no global-address filter,
//!   so private test networks need no special setting.)
//! - **Circuit relay v2**: every node offers relay service, with circuit limits sized for
//!   activation traffic ([`relay_config`]); a private node reserves a slot with up to
//!   [`NatConfig::relays`] peers it reached directly at an address they listen on (so
//!   they are dialable), and its relayed addresses go into its provider records. When a
//!   relay goes away (its process died, or our router's public address changed and
//!   every connection dropped) the node reserves again with another or the same one.
//!   After such an address change the node's own side notices at once (its next TCP
//!   packet leaves through a new mapping and the relay resets it; a QUIC connection
//!   times out), but the relay's side of the old connection stays open, silently, for
//!   as long as the kernel retransmits: a relay taking a new (not renewed) reservation
//!   closes the peer's connections that stopped answering pings, so circuits go over the
//!   new one; and any connection whose pings go unanswered twice in a row is closed.
//!   Identify pushes our listen addresses to peers as reservations come and go.
//! - **DCUtR** hole punching upgrades a relayed connection to a direct one when both
//!   routers allow it; a relayed connection still carries everything when it fails.
//! - **QUIC** beside TCP: a node dialing a peer it reached over TCP also opens a QUIC
//!   connection when the peer offers one (UDP mappings are what most routers let a hole
//!   punch through, and the QUIC observed address is the punch's candidate).
//!
//! This module holds the settings, the vocabulary ([`Reachability`], [`Link`]) and the
//! pure address helpers; the event handling is in `service/nat.rs`.

use libp2p::multiaddr::Protocol;
use libp2p::{relay, Multiaddr, PeerId};
use std::time::Duration;

/// NAT traversal settings.
#[derive(Clone, Debug)]
pub struct NatConfig {
    /// How many relays a private node keeps a reservation with (more than one, so a
    /// relay's death leaves the node reachable through another while it reserves anew).
    pub relays: usize,
    /// Whether DCUtR hole punching runs (tests turn it off to keep connections relayed).
    pub hole_punching: bool,
    /// How long a relay that refused or failed a reservation is left alone (doubled
    /// per further failure, see [`relay_backoff`]).
    pub relay_backoff: Duration,
    /// How often AutoNAT tests a candidate address.
    pub probe_interval: Duration,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            relays: 2,
            hole_punching: true,
            relay_backoff: Duration::from_secs(10),
            probe_interval: Duration::from_secs(5),
        }
    }
}

/// Whether this node can be dialed, as AutoNAT found.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Reachability {
    /// Not tested yet (or no peer to test with).
    #[default]
    Unknown,
    /// An address of ours was dialed back by a peer.
    Public,
    /// Every address tested failed: reachable only through relays.
    Private,
}

impl Reachability {
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// How one connection to a peer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Link {
    /// Through a relay's circuit.
    Relayed,
    /// A direct connection one side dialed at the other's address.
    Direct,
    /// A direct connection DCUtR punched through NAT to replace a relayed one.
    Punched,
}

impl Link {
    pub fn as_str(self) -> &'static str {
        match self {
            Link::Relayed => "relayed",
            Link::Direct => "direct",
            Link::Punched => "direct-after-punch",
        }
    }
}

/// Whether `addr` runs through a relay circuit.
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| p == Protocol::P2pCircuit)
}

/// Whether `addr` is a QUIC address.
pub fn is_quic(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::QuicV1))
}

/// The relay peer of a relayed address (`.../p2p/RELAY/p2p-circuit[/p2p/DEST]`).
pub fn relay_of(addr: &Multiaddr) -> Option<PeerId> {
    let mut relay = None;
    for p in addr.iter() {
        match p {
            Protocol::P2p(peer) => relay = Some(peer),
            Protocol::P2pCircuit => return relay,
            _ => {}
        }
    }
    None
}

/// `addr` without a trailing `/p2p/<id>`.
pub fn without_peer(addr: &Multiaddr) -> Multiaddr {
    let mut a = addr.clone();
    if matches!(a.iter().last(), Some(Protocol::P2p(_))) {
        a.pop();
    }
    a
}

/// The address to listen on for a reservation with `relay` reached at `addr`.
pub fn circuit_listen_addr(addr: &Multiaddr, relay: PeerId) -> Multiaddr {
    without_peer(addr)
        .with(Protocol::P2p(relay))
        .with(Protocol::P2pCircuit)
}

/// The relay service every node offers. libp2p's defaults (a circuit lives 2 minutes
/// and carries 128 KiB) suit only a hole punch's handshake; a relayed pipeline hop
/// carries a generation's activations (a few KiB per position each way) for as long as
/// it runs, so a circuit may carry 1 GiB for an hour. The counts stay bounded: 128
/// reservations (4 per peer), 64 circuits (8 per peer), and libp2p's per-peer and per-IP
/// rate limits on new ones. Requests beyond these are denied, and the service penalises
/// their senders (lightly: a client retries a full relay, with a growing backoff).
pub fn relay_config() -> relay::Config {
    relay::Config {
        max_reservations: 128,
        max_reservations_per_peer: 4,
        max_circuits: 64,
        max_circuits_per_peer: 8,
        max_circuit_duration: Duration::from_secs(60 * 60),
        max_circuit_bytes: 1 << 30,
        ..Default::default()
    }
}

/// How long a relay that failed `failures` reservations in a row is left alone:
/// `base` doubled per failure after the first, at most 64 times `base`.
pub fn relay_backoff(base: Duration, failures: u32) -> Duration {
    base * 2u32.pow(failures.saturating_sub(1).min(6))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relayed_addresses_name_their_relay() {
        let relay = PeerId::random();
        let dest = PeerId::random();
        let base: Multiaddr = "/ip4/198.18.0.2/tcp/4001".parse().unwrap();
        let listen = circuit_listen_addr(&base.clone().with(Protocol::P2p(relay)), relay);
        assert_eq!(
            listen.to_string(),
            format!("/ip4/198.18.0.2/tcp/4001/p2p/{relay}/p2p-circuit")
        );
        assert!(is_relayed(&listen));
        assert!(!is_relayed(&base));
        assert_eq!(
            relay_of(&listen.clone().with(Protocol::P2p(dest))),
            Some(relay)
        );
        assert_eq!(relay_of(&base), None);
        assert!(is_quic(&"/ip4/1.2.3.4/udp/1/quic-v1".parse().unwrap()));
        assert!(!is_quic(&base));
    }

    #[test]
    fn the_best_link_is_a_punched_one() {
        assert!(Link::Punched > Link::Direct && Link::Direct > Link::Relayed);
        let config = relay_config();
        assert!(config.max_circuit_bytes > 1 << 17);
        assert!(config.max_circuit_duration > Duration::from_secs(120));
        let base = Duration::from_secs(10);
        assert_eq!(relay_backoff(base, 1), base);
        assert_eq!(relay_backoff(base, 3), base * 4);
        assert_eq!(relay_backoff(base, 50), base * 64);
    }
}
