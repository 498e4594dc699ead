//! What we know about each peer: the addresses and agent it told us through identify, its
//! last ping round-trip time, how each of our connections to it runs (relayed, direct,
//! punched; see [`crate::nat`]), whether it offers relay service, and a misbehaviour score. Every offence (an oversized frame,
//! a gossip message the node rejected, a forged DHT record) costs points; a peer whose
//! score falls to [`BAN_SCORE`] is disconnected and blocked for the rest of the process.

use crate::nat::Link;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Score at which a peer is banned.
pub const BAN_SCORE: i32 = -100;

/// Most announced addresses kept per peer.
pub const MAX_ANNOUNCED: usize = 16;

/// How bad an offence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offence {
    /// A message that does not decode or breaks a size limit.
    Malformed,
    /// A gossip message the node found invalid (bad signature, bad block).
    InvalidGossip,
    /// A DHT record that fails verification.
    ForgedRecord,
    /// A request that timed out or failed (a peer may just be slow: small cost).
    Unresponsive,
    /// A relay reservation or circuit request beyond the relay's limits.
    Flood,
}

impl Offence {
    pub fn cost(self) -> i32 {
        match self {
            Offence::Malformed => 25,
            Offence::InvalidGossip => 20,
            Offence::ForgedRecord => 50,
            Offence::Unresponsive => 2,
            Offence::Flood => 5,
        }
    }
}

/// One peer as seen from here.
#[derive(Clone, Debug, Default)]
pub struct PeerState {
    pub addrs: Vec<Multiaddr>,
    pub agent: Option<String>,
    pub rtt: Option<Duration>,
    pub score: i32,
    pub connected: bool,
    /// Our open connections to it: how each runs, the relay of a relayed one, and
    /// since when it is open.
    pub links: HashMap<ConnectionId, (Link, Option<PeerId>, Instant)>,
    /// It offers circuit relay v2 service (from identify).
    pub relay_service: bool,
    /// It tests other peers' addresses (AutoNAT v2 server, from identify).
    pub autonat_server: bool,
    /// The direct address we last dialed it at.
    pub dialed: Option<Multiaddr>,
    /// Addresses the node told us it announced (its provider record), newest last, at
    /// most [`MAX_ANNOUNCED`]: dials use them even after a failed attempt at one (a relay
    /// down for a while) made libp2p's own caches forget it.
    pub announced: Vec<Multiaddr>,
    /// Our open direct connections to it that we dialed.
    pub outbound: std::collections::HashSet<ConnectionId>,
    /// When each of our connections to it last answered a ping.
    pub pongs: HashMap<ConnectionId, Instant>,
}

impl PeerState {
    /// Whether the peer's offences have reached [`BAN_SCORE`].
    pub fn banned(&self) -> bool {
        self.score <= BAN_SCORE
    }

    /// An address of its own (one it listens on) that we dialed it at: proof that it is
    /// dialable, which a relay must be.
    pub fn dialable_at(&self) -> Option<Multiaddr> {
        self.dialed.clone().filter(|a| self.addrs.contains(a))
    }

    /// Our direct connections to it that have been silent for `silent` or longer: no
    /// ping answered for that long (one never answered counts from its opening).
    pub fn silent_links(&self, silent: Duration, now: Instant) -> Vec<ConnectionId> {
        self.links
            .iter()
            .filter(|(_, (link, _, _))| *link != Link::Relayed)
            .filter(|(c, (_, _, opened))| {
                let heard = self.pongs.get(c).copied().unwrap_or(*opened);
                now.saturating_duration_since(heard) >= silent
            })
            .map(|(c, _)| *c)
            .collect()
    }

    /// Remembers an address it announced (moved to the end if known).
    pub fn announce(&mut self, addr: Multiaddr) {
        self.announced.retain(|a| *a != addr);
        self.announced.push(addr);
        if self.announced.len() > MAX_ANNOUNCED {
            self.announced.remove(0);
        }
    }

    /// The best of our connections to it, with the relay when that one is relayed and
    /// when it opened (of equal links, the oldest).
    pub fn best_link(&self) -> Option<(Link, Option<PeerId>, Instant)> {
        self.links
            .values()
            .max_by_key(|(link, _, since)| (*link, std::cmp::Reverse(*since)))
            .copied()
    }
}

/// A public summary of a peer, for RPC and routing.
#[derive(Clone, Debug)]
pub struct PeerInfo {
    pub peer: PeerId,
    pub addrs: Vec<Multiaddr>,
    pub agent: Option<String>,
    pub rtt: Option<Duration>,
    pub score: i32,
    /// The best of our connections to it (punched over direct over relayed).
    pub link: Option<Link>,
    /// The relay carrying that connection, when it is relayed.
    pub relay: Option<PeerId>,
    /// How long that connection has been open.
    pub link_age: Option<Duration>,
}

/// All peers we have met.
#[derive(Default)]
pub struct PeerBook {
    peers: HashMap<PeerId, PeerState>,
}

impl PeerBook {
    pub fn get_mut(&mut self, peer: PeerId) -> &mut PeerState {
        self.peers.entry(peer).or_default()
    }

    pub fn get(&self, peer: &PeerId) -> Option<&PeerState> {
        self.peers.get(peer)
    }

    /// Every peer we have met, with what we know of it.
    pub fn iter(&self) -> impl Iterator<Item = (&PeerId, &PeerState)> {
        self.peers.iter()
    }

    /// Charges `offence` to `peer`; true when the peer has just crossed the ban score.
    pub fn penalise(&mut self, peer: PeerId, offence: Offence) -> bool {
        let state = self.get_mut(peer);
        let before = state.score;
        state.score = state.score.saturating_sub(offence.cost());
        before > BAN_SCORE && state.score <= BAN_SCORE
    }

    /// Connected peers.
    pub fn connected(&self) -> Vec<PeerInfo> {
        let mut out: Vec<PeerInfo> = self
            .peers
            .iter()
            .filter(|(_, s)| s.connected)
            .map(|(p, s)| PeerInfo {
                peer: *p,
                addrs: s.addrs.clone(),
                agent: s.agent.clone(),
                rtt: s.rtt,
                score: s.score,
                link: s.best_link().map(|(link, ..)| link),
                relay: s.best_link().and_then(|(_, relay, _)| relay),
                link_age: s.best_link().map(|(.., since)| since.elapsed()),
            })
            .collect();
        out.sort_by_key(|p| p.peer.to_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_silent_since_its_last_pong_is_found() {
        let t0 = Instant::now();
        let mut peer = PeerState::default();
        let (old, fresh, unanswered, relayed) = (
            ConnectionId::new_unchecked(1),
            ConnectionId::new_unchecked(2),
            ConnectionId::new_unchecked(3),
            ConnectionId::new_unchecked(4),
        );
        peer.links.insert(old, (Link::Direct, None, t0));
        peer.links.insert(fresh, (Link::Direct, None, t0));
        peer.links.insert(unanswered, (Link::Direct, None, t0));
        peer.links.insert(relayed, (Link::Relayed, None, t0));
        peer.pongs.insert(old, t0 + Duration::from_secs(1));
        peer.pongs.insert(fresh, t0 + Duration::from_secs(19));
        let now = t0 + Duration::from_secs(20);
        let mut silent = peer.silent_links(Duration::from_secs(12), now);
        silent.sort();
        assert_eq!(silent, [old, unanswered]);
        assert!(peer
            .silent_links(Duration::from_secs(12), t0 + Duration::from_secs(5))
            .is_empty());
    }

    #[test]
    fn repeated_offences_ban_once() {
        let mut book = PeerBook::default();
        let p = PeerId::random();
        let mut bans = 0;
        for _ in 0..10 {
            if book.penalise(p, Offence::Malformed) {
                bans += 1;
            }
        }
        assert_eq!(bans, 1);
        assert!(book.get(&p).unwrap().score <= BAN_SCORE);
        // Slow peers take a long time to be banned.
        let q = PeerId::random();
        assert!(!(0..49).any(|_| book.penalise(q, Offence::Unresponsive)));
    }
}
