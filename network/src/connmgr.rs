//! Connection budget and trimming. A node's connection count must not grow with the
//! network: every DHT walk dials peers it has never met, and gossipsub keeps a long-lived
//! stream on every connection it sees, so without trimming a node ends up connected to
//! nearly every peer it ever queried. Two mechanisms bound it, in the manner of
//! go-libp2p's connection manager:
//! - a hard cap ([`ConnectionBudget::max`], enforced by libp2p's `connection_limits`
//!   behaviour): connections beyond it are refused, inbound or outbound;
//! - trimming: when more than [`ConnectionBudget::high_water`] connections are open, the
//!   least recently useful ones are closed until [`ConnectionBudget::low_water`] remain.
//!   Peers in a gossipsub mesh are never trimmed (that would break message propagation),
//!   nor is a peer that did something useful (a connection opened, a request, a gossip
//!   message, a DHT routing update) within the [`ConnectionBudget::grace`] period, as
//!   long as a DHT query may last, so a query's peers are kept until it is over. The
//!   service also keeps every peer that has a request of ours in flight.
//!
//! Kademlia needs no open connection to a peer in its routing table: it dials again when
//! a query needs that peer. The gap between the high water mark and the hard cap is the
//! room such dials (and inbound connections) have before the next trim.

use crate::behaviour::{Behaviour, BehaviourEvent};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{gossipsub, kad, request_response, PeerId, Swarm};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// How many connections a node keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionBudget {
    /// Hard cap on established connections, inbound and outbound together.
    pub max: u32,
    /// Hard cap on established connections to one peer.
    pub max_per_peer: u32,
    /// Hard cap on connections still in their handshake, per direction.
    pub max_pending: u32,
    /// Trimming starts above this many connections...
    pub high_water: u32,
    /// ...and closes connections until this many remain.
    pub low_water: u32,
    /// A peer useful within this period is not trimmed.
    pub grace: Duration,
}

impl Default for ConnectionBudget {
    fn default() -> Self {
        Self {
            // Gossipsub meshes take at most 12 peers per topic (mesh_n_high) and the four
            // topics mostly share them; the rest is room for DHT walks, pipeline partners
            // and block sync.
            max: 96,
            // TCP beside QUIC each way, and AutoNAT dial-backs (new connections by
            // design, one per tested address, closed once served); or a relayed
            // connection, the direct one a hole punch replaces it with, and a second
            // relayed one while a relay fails over.
            max_per_peer: 6,
            max_pending: 32,
            high_water: 64,
            low_water: 40,
            // As long as a DHT query may run (its timeout): the peers a query dialed are
            // kept until it is over. Requests of ours in flight are protected apart.
            grace: Duration::from_secs(10),
        }
    }
}

impl ConnectionBudget {
    /// Checks that the marks are ordered (`low_water <= high_water <= max`).
    pub fn validate(&self) -> Result<(), String> {
        if self.low_water > self.high_water || self.high_water > self.max {
            return Err(format!(
                "connection budget needs low_water <= high_water <= max, got {} / {} / {}",
                self.low_water, self.high_water, self.max
            ));
        }
        if self.max_per_peer == 0 || self.max_pending == 0 {
            return Err("connection budget: per-peer and pending caps must be > 0".into());
        }
        Ok(())
    }

    /// The `connection_limits` behaviour enforcing the hard caps.
    pub fn limits(&self) -> libp2p::connection_limits::ConnectionLimits {
        libp2p::connection_limits::ConnectionLimits::default()
            .with_max_established(Some(self.max))
            .with_max_established_per_peer(Some(self.max_per_peer))
            .with_max_pending_incoming(Some(self.max_pending))
            .with_max_pending_outgoing(Some(self.max_pending))
    }
}

struct PeerConnections {
    ids: HashSet<ConnectionId>,
    last_useful: Instant,
}

/// Tracks open connections and picks the ones to close.
pub struct ConnectionManager {
    budget: ConnectionBudget,
    peers: HashMap<PeerId, PeerConnections>,
    open: usize,
}

impl ConnectionManager {
    pub fn new(budget: ConnectionBudget) -> Self {
        Self {
            budget,
            peers: HashMap::new(),
            open: 0,
        }
    }

    /// Established connections.
    pub fn open(&self) -> usize {
        self.open
    }

    /// Peers with at least one established connection.
    pub fn peers(&self) -> usize {
        self.peers.len()
    }

    pub fn connected(&mut self, peer: PeerId, id: ConnectionId, now: Instant) {
        let entry = self.peers.entry(peer).or_insert_with(|| PeerConnections {
            ids: HashSet::new(),
            last_useful: now,
        });
        entry.last_useful = now;
        if entry.ids.insert(id) {
            self.open += 1;
        }
    }

    pub fn closed(&mut self, peer: PeerId, id: ConnectionId) {
        if let Some(entry) = self.peers.get_mut(&peer) {
            if entry.ids.remove(&id) {
                self.open -= 1;
            }
            if entry.ids.is_empty() {
                self.peers.remove(&peer);
            }
        }
    }

    /// Records that `peer` did something worth keeping its connection for.
    pub fn touch(&mut self, peer: &PeerId, now: Instant) {
        if let Some(entry) = self.peers.get_mut(peer) {
            entry.last_useful = now;
        }
    }

    /// Whether there are more connections than the high water mark.
    pub fn over_high_water(&self) -> bool {
        self.open > self.budget.high_water as usize
    }

    /// The peers to disconnect so that at most `low_water` connections remain, least
    /// recently useful first, skipping `protected` peers and those within the grace
    /// period. Empty unless the high water mark is exceeded.
    pub fn select_trim(&self, now: Instant, protected: &HashSet<PeerId>) -> Vec<PeerId> {
        if !self.over_high_water() {
            return Vec::new();
        }
        let mut excess = self.open - self.budget.low_water as usize;
        let mut candidates: Vec<(&PeerId, &PeerConnections)> = self
            .peers
            .iter()
            .filter(|(peer, c)| {
                !protected.contains(peer)
                    && now.saturating_duration_since(c.last_useful) >= self.budget.grace
            })
            .collect();
        candidates.sort_by_key(|(_, c)| c.last_useful);
        let mut trim = Vec::new();
        for (peer, c) in candidates {
            if excess == 0 {
                break;
            }
            excess = excess.saturating_sub(c.ids.len());
            trim.push(*peer);
        }
        trim
    }

    /// Follows connections and usefulness through the swarm's events.
    pub fn observe(&mut self, event: &SwarmEvent<BehaviourEvent>, now: Instant) {
        match event {
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                ..
            } => self.connected(*peer_id, *connection_id, now),
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                ..
            } => self.closed(*peer_id, *connection_id),
            SwarmEvent::Behaviour(event) => {
                if let Some(peer) = useful_peer(event) {
                    self.touch(&peer, now);
                }
            }
            _ => {}
        }
    }

    /// Closes the connections [`select_trim`](Self::select_trim) picks, protecting the
    /// gossipsub mesh peers and `protected`. Returns how many peers were disconnected.
    pub fn trim(
        &mut self,
        swarm: &mut Swarm<Behaviour>,
        protected: &HashSet<PeerId>,
        now: Instant,
    ) -> usize {
        if !self.over_high_water() {
            return 0;
        }
        let mut keep: HashSet<PeerId> = swarm
            .behaviour()
            .gossipsub
            .all_mesh_peers()
            .copied()
            .collect();
        keep.extend(protected.iter().copied());
        let trim = self.select_trim(now, &keep);
        for peer in &trim {
            // Closing is asynchronous; `closed` runs on the ConnectionClosed events.
            let _ = swarm.disconnect_peer_id(*peer);
        }
        trim.len()
    }
}

/// The peer an event shows to be useful, if any. Pings and identify exchanges do not
/// count: they happen on every connection, useful or not.
fn useful_peer(event: &BehaviourEvent) -> Option<PeerId> {
    match event {
        BehaviourEvent::Gossipsub(gossipsub::Event::Message {
            propagation_source, ..
        }) => Some(*propagation_source),
        BehaviourEvent::Kad(kad::Event::RoutingUpdated { peer, .. }) => Some(*peer),
        BehaviourEvent::Activations(e) | BehaviourEvent::Sync(e) => match e {
            request_response::Event::Message { peer, .. } => Some(*peer),
            _ => None,
        },
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn budget() -> ConnectionBudget {
        ConnectionBudget {
            max: 10,
            max_per_peer: 2,
            max_pending: 4,
            high_water: 6,
            low_water: 3,
            grace: Duration::from_secs(20),
        }
    }

    #[test]
    fn default_budget_is_ordered_and_bad_ones_are_refused() {
        assert!(ConnectionBudget::default().validate().is_ok());
        let mut b = budget();
        b.low_water = 7;
        assert!(b.validate().is_err());
        let mut b = budget();
        b.high_water = 11;
        assert!(b.validate().is_err());
    }

    #[test]
    fn trims_least_recently_useful_down_to_low_water() {
        let t0 = Instant::now();
        let mut m = ConnectionManager::new(budget());
        let peers: Vec<PeerId> = (0..8).map(|_| PeerId::random()).collect();
        for (i, p) in peers.iter().enumerate() {
            m.connected(
                *p,
                ConnectionId::new_unchecked(i),
                t0 + Duration::from_secs(i as u64),
            );
        }
        assert_eq!(m.open(), 8);
        let now = t0 + Duration::from_secs(100);
        let protected: HashSet<PeerId> = [peers[0]].into();
        m.touch(&peers[1], now);
        let trim = m.select_trim(now, &protected);
        // 8 open, 3 to keep: five go, oldest first, skipping the protected and the fresh.
        assert_eq!(trim, vec![peers[2], peers[3], peers[4], peers[5], peers[6]]);
    }

    #[test]
    fn nothing_is_trimmed_at_or_below_high_water_or_within_grace() {
        let t0 = Instant::now();
        let mut m = ConnectionManager::new(budget());
        for i in 0..6 {
            m.connected(PeerId::random(), ConnectionId::new_unchecked(i), t0);
        }
        assert!(m
            .select_trim(t0 + Duration::from_secs(100), &HashSet::new())
            .is_empty());
        m.connected(PeerId::random(), ConnectionId::new_unchecked(6), t0);
        assert!(m
            .select_trim(t0 + Duration::from_secs(5), &HashSet::new())
            .is_empty());
        assert_eq!(
            m.select_trim(t0 + Duration::from_secs(100), &HashSet::new())
                .len(),
            4
        );
    }

    #[test]
    fn closed_connections_are_forgotten() {
        let t0 = Instant::now();
        let mut m = ConnectionManager::new(budget());
        let p = PeerId::random();
        m.connected(p, ConnectionId::new_unchecked(1), t0);
        m.connected(p, ConnectionId::new_unchecked(2), t0);
        m.connected(p, ConnectionId::new_unchecked(2), t0);
        assert_eq!((m.open(), m.peers()), (2, 1));
        m.closed(p, ConnectionId::new_unchecked(1));
        m.closed(p, ConnectionId::new_unchecked(1));
        assert_eq!((m.open(), m.peers()), (1, 1));
        m.closed(p, ConnectionId::new_unchecked(2));
        assert_eq!((m.open(), m.peers()), (0, 0));
    }
}
