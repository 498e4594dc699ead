//! What we know about each peer: the addresses and agent it told us through identify, its
//! last ping round-trip time, and a misbehaviour score. Every offence (an oversized frame,
//! a gossip message the node rejected, a forged DHT record) costs points; a peer whose
//! score falls to [`BAN_SCORE`] is disconnected and blocked for the rest of the process.

use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::Duration;

/// Score at which a peer is banned.
pub const BAN_SCORE: i32 = -100;

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
}

impl Offence {
    pub fn cost(self) -> i32 {
        match self {
            Offence::Malformed => 25,
            Offence::InvalidGossip => 20,
            Offence::ForgedRecord => 50,
            Offence::Unresponsive => 2,
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
}

impl PeerState {
    /// Whether the peer's offences have reached [`BAN_SCORE`].
    pub fn banned(&self) -> bool {
        self.score <= BAN_SCORE
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
