//! The event loop's NAT traversal (see [`crate::nat`] for the parts and why): it keeps
//! how each connection runs (relayed, direct, punched), turns AutoNAT's test results
//! into this node's [`Reachability`], and, while the node is private, keeps reservations
//! with up to [`crate::nat::NatConfig::relays`] relays chosen among the peers it met
//! (peers offering relay service that it dialed at an address they listen on). A
//! reservation whose relay went away is replaced on the next tick, which is also how
//! the node recovers after its router's public address changed; a relay that refused
//! is retried with a doubling backoff. Relay requests beyond the relay service's limits
//! are penalised. AutoNAT v2 asks only peers we dialed, so a node that was only ever
//! dialed (a bootnode) dials one of its peers back; the connections we open to dial a
//! peer back for its test are closed once the test is served.

use super::EventLoop;
use crate::nat::{self, Link, Reachability};
use crate::peers::Offence;
use libp2p::core::transport::ListenerId;
use libp2p::core::transport::PortUse;
use libp2p::core::ConnectedPoint;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::ConnectionId;
use libp2p::{autonat, dcutr, relay, Multiaddr, PeerId};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tracing::{debug, info, warn};

/// What the loop knows about its own reachability and relays.
pub(super) struct NatState {
    pub(super) config: nat::NatConfig,
    pub(super) reachability: Reachability,
    /// Reservations asked for or held: the relay's listener, and whether it was accepted.
    reservations: HashMap<PeerId, (ListenerId, bool)>,
    /// Relays whose reservations failed: when last, and how many times in a row (left
    /// alone for [`nat::relay_backoff`]).
    failed: HashMap<PeerId, (Instant, u32)>,
    /// Peers we opened a QUIC connection to beside a TCP one.
    quic_dialed: HashSet<PeerId>,
    /// Peers we dialed to have an AutoNAT server on an outbound connection, and when.
    server_dialed: HashMap<PeerId, Instant>,
    /// AutoNAT tests failed since the last success.
    failed_tests: usize,
    /// Peers whose hole punch failed, to punch again (`service/punch.rs`).
    pub(super) punch: super::punch::PunchRetries,
    /// Connections we opened to dial a peer back for its AutoNAT test (from a new port):
    /// closed once the test is over, else every protocol would keep them open.
    dial_backs: HashMap<PeerId, Vec<(ConnectionId, Multiaddr)>>,
}

/// How long a peer dialed to be our AutoNAT server is not dialed again for that.
const SERVER_RETRY: Duration = Duration::from_secs(30);

/// A connection whose pings have gone unanswered this long is taken for dead when its
/// peer reserves anew: pings go every 5 s, so a live connection answers well within it
/// (even one a busy machine answers seconds late).
const SILENT: Duration = Duration::from_secs(12);

/// AutoNAT test failures in a row (with no address confirmed) that make a node private.
const PRIVATE_AFTER_FAILURES: usize = 2;

impl NatState {
    pub(super) fn new(config: nat::NatConfig) -> Self {
        Self {
            config,
            reachability: Reachability::Unknown,
            reservations: HashMap::new(),
            failed: HashMap::new(),
            quic_dialed: HashSet::new(),
            server_dialed: HashMap::new(),
            failed_tests: 0,
            punch: Default::default(),
            dial_backs: HashMap::new(),
        }
    }

    /// The relays holding an accepted reservation of ours.
    pub(super) fn relays(&self) -> Vec<PeerId> {
        let mut relays: Vec<PeerId> = self
            .reservations
            .iter()
            .filter(|(_, (_, accepted))| *accepted)
            .map(|(peer, _)| *peer)
            .collect();
        relays.sort_by_key(|p| p.to_bytes());
        relays
    }
}

impl EventLoop {
    pub(super) fn on_connection_opened(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        endpoint: &ConnectedPoint,
    ) {
        let state = self.peers.get_mut(peer);
        let link = if endpoint.is_relayed() {
            let addr = match endpoint {
                ConnectedPoint::Dialer { address, .. } => address,
                ConnectedPoint::Listener { local_addr, .. } => local_addr,
            };
            (Link::Relayed, nat::relay_of(addr))
        } else {
            match endpoint {
                // Only AutoNAT dials from a new port: a dial-back for a peer's test.
                ConnectedPoint::Dialer {
                    port_use: PortUse::New,
                    address,
                    ..
                } => {
                    let tested = nat::without_peer(address);
                    self.nat
                        .dial_backs
                        .entry(peer)
                        .or_default()
                        .push((connection, tested))
                }
                ConnectedPoint::Dialer { address, .. } => {
                    state.dialed = Some(nat::without_peer(address));
                    state.outbound.insert(connection);
                }
                // A private node cannot be dialed: a direct connection from a peer it
                // holds a relayed one with came in through the hole the peer's side of
                // DCUtR punched. (Our own DCUtR report may name another connection: both
                // sides dial TCP and QUIC at once, and when each keeps a different
                // winner, the one we dialed is closed by the peer a moment later.)
                ConnectedPoint::Listener { .. }
                    if self.nat.reachability == Reachability::Private
                        && state.links.values().any(|l| l.0 == Link::Relayed) =>
                {
                    state
                        .links
                        .insert(connection, (Link::Punched, None, Instant::now()));
                    return;
                }
                ConnectedPoint::Listener { .. } => {}
            }
            (Link::Direct, None)
        };
        state
            .links
            .insert(connection, (link.0, link.1, Instant::now()));
    }

    pub(super) fn on_connection_gone(&mut self, peer: PeerId, connection: ConnectionId) {
        let state = self.peers.get_mut(peer);
        state.links.remove(&connection);
        state.outbound.remove(&connection);
        state.pongs.remove(&connection);
        if let Some(dial_backs) = self.nat.dial_backs.get_mut(&peer) {
            dial_backs.retain(|(c, _)| *c != connection);
        }
    }

    /// We tested a peer's address for it (AutoNAT server): the dial-back connection has
    /// done its work.
    pub(super) fn on_autonat_served(&mut self, event: autonat::v2::server::Event) {
        debug!(client = %event.client, tested = %event.tested_addr, ok = event.result.is_ok(), "AutoNAT test served");
        let tested = nat::without_peer(&event.tested_addr);
        let Some(dial_backs) = self.nat.dial_backs.get_mut(&event.client) else {
            return;
        };
        let (done, pending): (Vec<_>, Vec<_>) =
            dial_backs.drain(..).partition(|(_, addr)| *addr == tested);
        *dial_backs = pending;
        for (connection, _) in done {
            self.swarm.close_connection(connection);
        }
    }

    pub(super) fn on_dcutr(&mut self, event: dcutr::Event) {
        match event.result {
            Ok(connection) => {
                info!(peer = %event.remote_peer_id, "hole punched: relayed connection upgraded to a direct one");
                self.nat.punch.punched(event.remote_peer_id);
                let state = self.peers.get_mut(event.remote_peer_id);
                if let Some(link) = state.links.get_mut(&connection) {
                    link.0 = Link::Punched;
                }
            }
            Err(e) => {
                info!(peer = %event.remote_peer_id, error = %e, "hole punch failed");
                // libp2p's error names its cause only in its message.
                let unsupported = e.to_string().contains("does not support");
                self.nat.punch.failed(event.remote_peer_id, unsupported);
            }
        }
    }

    pub(super) fn on_autonat(&mut self, event: autonat::v2::client::Event) {
        // Only direct IP addresses tell whether we can be dialed (identify also reports
        // what peers observe on relayed connections).
        let direct_ip = event
            .tested_addr
            .iter()
            .any(|p| matches!(p, Protocol::Ip4(_) | Protocol::Ip6(_)));
        if !direct_ip || nat::is_relayed(&event.tested_addr) {
            return;
        }
        let confirmed = self.swarm.external_addresses().any(|a| !nat::is_relayed(a));
        match &event.result {
            Ok(()) => self.nat.failed_tests = 0,
            Err(e) => {
                self.nat.failed_tests += 1;
                debug!(tested = %event.tested_addr, server = %event.server, error = %e, "AutoNAT test failed");
            }
        }
        // One failure alone proves little (a server may fail to dial for its own
        // reasons): private takes two failures in a row and no address confirmed.
        let now = if event.result.is_ok() || confirmed {
            Reachability::Public
        } else if self.nat.failed_tests >= PRIVATE_AFTER_FAILURES {
            Reachability::Private
        } else {
            self.nat.reachability
        };
        if now != self.nat.reachability {
            info!(reachability = now.as_str(), tested = %event.tested_addr, "reachability changed");
            self.nat.reachability = now;
            if now == Reachability::Public {
                let listeners: Vec<ListenerId> =
                    self.nat.reservations.drain().map(|(_, (l, _))| l).collect();
                for listener in listeners {
                    self.swarm.remove_listener(listener);
                }
            }
        }
        self.ensure_reservations();
    }

    pub(super) fn on_relay_client(&mut self, event: relay::client::Event) {
        match event {
            relay::client::Event::ReservationReqAccepted {
                relay_peer_id,
                renewal,
                ..
            } => {
                if !renewal {
                    info!(relay = %relay_peer_id, "relay reservation accepted");
                }
                if let Some(r) = self.nat.reservations.get_mut(&relay_peer_id) {
                    r.1 = true;
                }
                self.nat.failed.remove(&relay_peer_id);
            }
            other => debug!(?other, "relay client event"),
        }
    }

    pub(super) fn on_relay_server(&mut self, event: relay::Event) {
        let (peer, status) = match event {
            relay::Event::ReservationReqAccepted {
                src_peer_id,
                renewed: false,
            } => return self.drop_silent_connections(src_peer_id),
            relay::Event::ReservationReqDenied {
                src_peer_id,
                status,
            } => (src_peer_id, status),
            relay::Event::CircuitReqDenied {
                src_peer_id,
                status,
                ..
            } => (src_peer_id, status),
            other => return debug!(?other, "relay service event"),
        };
        if matches!(status, relay::StatusCode::ResourceLimitExceeded) {
            self.penalise(peer, Offence::Flood, "relay request beyond the limits");
        }
    }

    /// A peer made a new reservation with us (not a renewal): a node does that when it
    /// lost its reservation, typically because its router's public address changed and
    /// its connections died with the old one. Its old connection, and the reservation on
    /// it, may still look open here (a TCP connection whose far end vanished stays open
    /// for minutes), and the relay service would route circuits over it: connections to
    /// the peer silent for [`SILENT`] are closed now rather than when their pings time
    /// out.
    fn drop_silent_connections(&mut self, peer: PeerId) {
        let silent = self
            .peers
            .get(&peer)
            .map(|s| s.silent_links(SILENT, Instant::now()))
            .unwrap_or_default();
        for connection in silent {
            info!(%peer, %connection, "new reservation: closing a silent connection of the peer");
            self.swarm.close_connection(connection);
        }
    }

    /// A listener closed: if it was a reservation, the relay is gone (or refused us).
    pub(super) fn on_listener_closed(&mut self, listener: ListenerId) {
        let Some(relay) = self
            .nat
            .reservations
            .iter()
            .find(|(_, (l, _))| *l == listener)
            .map(|(p, _)| *p)
        else {
            return;
        };
        if let Some((_, accepted)) = self.nat.reservations.remove(&relay) {
            warn!(%relay, accepted, "relay reservation lost");
            self.relay_failed(relay, accepted);
        }
        self.ensure_reservations();
    }

    /// Counts a failure of `relay` (a reservation refused, or lost: one that had been
    /// `accepted` starts the count afresh).
    fn relay_failed(&mut self, relay: PeerId, accepted: bool) {
        let entry = self.nat.failed.entry(relay).or_insert((Instant::now(), 0));
        entry.0 = Instant::now();
        entry.1 = if accepted { 1 } else { entry.1 + 1 };
    }

    /// While private, asks relays for reservations until [`nat::NatConfig::relays`] are
    /// held or asked for.
    pub(super) fn ensure_reservations(&mut self) {
        if self.nat.reachability != Reachability::Private {
            return;
        }
        let base = self.nat.config.relay_backoff;
        let waiting: HashSet<PeerId> = self
            .nat
            .failed
            .iter()
            .filter(|(_, (at, n))| at.elapsed() < nat::relay_backoff(base, *n))
            .map(|(p, _)| *p)
            .collect();
        let mut candidates: Vec<(bool, PeerId, Multiaddr)> = self
            .peers
            .iter()
            .filter(|(peer, s)| {
                s.relay_service
                    && !s.banned()
                    && !self.nat.reservations.contains_key(peer)
                    && !waiting.contains(peer)
            })
            .filter_map(|(peer, s)| Some((!s.connected, *peer, s.dialable_at()?)))
            .collect();
        // Connected relays first (no dial needed), then a stable order.
        candidates.sort_by_key(|(unconnected, peer, _)| (*unconnected, peer.to_bytes()));
        let wanted = self
            .nat
            .config
            .relays
            .saturating_sub(self.nat.reservations.len());
        for (_, relay, addr) in candidates.into_iter().take(wanted) {
            let listen = nat::circuit_listen_addr(&addr, relay);
            match self.swarm.listen_on(listen.clone()) {
                Ok(listener) => {
                    info!(%relay, address = %listen, "asking a relay for a reservation");
                    self.nat.reservations.insert(relay, (listener, false));
                }
                Err(e) => {
                    debug!(%relay, error = %e, "cannot listen through a relay");
                    self.relay_failed(relay, false);
                }
            }
        }
    }

    /// AutoNAT asks only peers we dialed to test our addresses: a node that was only
    /// ever dialed (a bootnode) and does not know it is public dials one of its peers
    /// that test addresses (each at most every [`SERVER_RETRY`]).
    pub(super) fn seek_autonat_server(&mut self) {
        if self.nat.reachability == Reachability::Public {
            return;
        }
        let has_server = self
            .peers
            .iter()
            .any(|(_, s)| s.autonat_server && !s.outbound.is_empty());
        if has_server {
            return;
        }
        self.nat
            .server_dialed
            .retain(|_, at| at.elapsed() < SERVER_RETRY);
        let mut candidates: Vec<(PeerId, Vec<Multiaddr>)> = self
            .peers
            .iter()
            .filter(|(p, s)| {
                s.connected && s.autonat_server && !self.nat.server_dialed.contains_key(p)
            })
            .map(|(p, s)| {
                let addrs = s.addrs.iter().filter(|a| !nat::is_relayed(a)).cloned();
                (*p, addrs.collect())
            })
            .collect();
        candidates.sort_by_key(|(p, _)| p.to_bytes());
        let Some((peer, addrs)) = candidates.into_iter().find(|(_, a)| !a.is_empty()) else {
            return;
        };
        self.nat.server_dialed.insert(peer, Instant::now());
        debug!(%peer, "dialing a peer to have it test our addresses");
        let dial = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::Always)
            .build();
        if let Err(e) = self.swarm.dial(dial) {
            debug!(%peer, error = %e, "cannot dial an AutoNAT server");
        }
    }

    /// A peer we dialed over TCP that offers QUIC gets a QUIC connection too (once): it
    /// is the connection hole punching and NAT mappings favour.
    pub(super) fn prefer_quic(&mut self, peer: PeerId, listen_addrs: &[Multiaddr]) {
        let dialed_tcp = self
            .peers
            .get(&peer)
            .and_then(|s| s.dialed.as_ref())
            .is_some_and(|a| !nat::is_quic(a));
        if !dialed_tcp || self.nat.quic_dialed.contains(&peer) {
            return;
        }
        let quic: Vec<Multiaddr> = listen_addrs
            .iter()
            .filter(|a| nat::is_quic(a) && !nat::is_relayed(a))
            .filter(|a| {
                !a.iter()
                    .any(|p| matches!(p, Protocol::Ip4(ip) if ip.is_unspecified()))
            })
            .cloned()
            .collect();
        if quic.is_empty() {
            return;
        }
        self.nat.quic_dialed.insert(peer);
        let dial = DialOpts::peer_id(peer)
            .addresses(quic)
            .condition(PeerCondition::Always)
            .build();
        if let Err(e) = self.swarm.dial(dial) {
            debug!(%peer, error = %e, "cannot dial over QUIC");
        }
    }
}
