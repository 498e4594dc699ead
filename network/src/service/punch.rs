//! Hole punching again. DCUtR runs once per relayed connection: the side that accepted
//! the relayed connection starts it as soon as the connection opens, libp2p retries a
//! failed punch twice at most, and then the connection stays relayed for good. A punch
//! is a race (both sides dial at once; a router that sees the other side's packet before
//! its own side's drops or resets it; a loaded machine misses the moment), so one lost
//! race must not leave two home nodes relayed for as long as their connection lasts.
//!
//! The side that started a punch learns that it failed (the other side does not), and
//! that both sides run DCUtR (a peer without it refuses the protocol, which is not
//! retried). While its connections to the peer are still all relayed, it dials the peer
//! through the peer's own relays ([`RETRY_FIRST`] after the failure, doubling per
//! failure up to [`RETRY_MAX`]): on that new relayed connection the *peer* starts a
//! punch, with the addresses observed by then. If that one fails, the peer is the one
//! that learns it and dials back in turn, so the two take turns, each backing off. The
//! extra relayed connections close by themselves once idle; a peer with
//! [`MAX_RELAYED`] relayed connections of ours is not dialed again.

use super::EventLoop;
use crate::nat::{self, Link};
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::{Multiaddr, PeerId};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tracing::{debug, info};

/// How long after a failed punch we dial the peer through a relay again.
pub(super) const RETRY_FIRST: Duration = Duration::from_secs(10);

/// The longest wait between a failed punch and the next dial.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(600);

/// Most relayed connections to one peer (ours or its own) for a retry to be dialed.
const MAX_RELAYED: usize = 3;

/// Peers whose punch failed, and when to dial them again.
#[derive(Default)]
pub(super) struct PunchRetries {
    peers: HashMap<PeerId, Retry>,
}

struct Retry {
    /// Failed punches with the peer in a row.
    failures: u32,
    /// When to dial it again.
    next: Instant,
}

impl PunchRetries {
    /// A punch with `peer` that we started failed; `unsupported` when the peer does
    /// not run DCUtR (nothing to retry).
    pub(super) fn failed(&mut self, peer: PeerId, unsupported: bool) {
        if unsupported {
            self.peers.remove(&peer);
            return;
        }
        let retry = self.peers.entry(peer).or_insert(Retry {
            failures: 0,
            next: Instant::now(),
        });
        retry.next = Instant::now() + retry_interval(retry.failures);
        retry.failures += 1;
    }

    /// A punch with `peer` succeeded.
    pub(super) fn punched(&mut self, peer: PeerId) {
        self.peers.remove(&peer);
    }
}

/// The wait after `failures` earlier failures: [`RETRY_FIRST`] doubled per failure, at
/// most [`RETRY_MAX`].
pub(super) fn retry_interval(failures: u32) -> Duration {
    RETRY_FIRST
        .saturating_mul(1u32.checked_shl(failures).unwrap_or(u32::MAX))
        .min(RETRY_MAX)
}

impl EventLoop {
    /// Dials each peer whose retry is due through its relays (see the module docs);
    /// forgets peers no longer connected only through relays.
    pub(super) fn retry_hole_punches(&mut self) {
        let now = Instant::now();
        let mut due: Vec<(PeerId, Vec<Multiaddr>)> = Vec::new();
        let peers = &self.peers;
        self.nat.punch.peers.retain(|peer, retry| {
            let Some(state) = peers.get(peer) else {
                return false;
            };
            if state.best_link().is_none_or(|l| l.0 != Link::Relayed) {
                return false;
            }
            let relayed = state
                .links
                .values()
                .filter(|l| l.0 == Link::Relayed)
                .count();
            if retry.next <= now && relayed < MAX_RELAYED {
                // Its own relayed addresses: where it listens, and what it announced.
                let mut addrs: Vec<Multiaddr> = state
                    .addrs
                    .iter()
                    .chain(&state.announced)
                    .filter(|a| nat::is_relayed(a))
                    .cloned()
                    .collect();
                addrs.sort();
                addrs.dedup();
                due.push((*peer, addrs));
                // Should this dial lead nowhere (no punch starts), try again later.
                retry.next = now + retry_interval(retry.failures);
            }
            true
        });
        for (peer, addrs) in due {
            if addrs.is_empty() {
                debug!(%peer, "no relayed address to punch again through");
                continue;
            }
            info!(%peer, "hole punch failed earlier: dialing through a relay to punch again");
            let dial = DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::Always)
                .build();
            if let Err(e) = self.swarm.dial(dial) {
                debug!(%peer, error = %e, "cannot dial through a relay again");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_the_cap() {
        assert_eq!(retry_interval(0), RETRY_FIRST);
        assert_eq!(retry_interval(1), RETRY_FIRST * 2);
        assert_eq!(retry_interval(3), RETRY_FIRST * 8);
        assert_eq!(retry_interval(10), RETRY_MAX);
        assert_eq!(retry_interval(40), RETRY_MAX);
    }

    #[test]
    fn a_punch_refused_for_lack_of_dcutr_is_not_retried() {
        let peer = PeerId::random();
        let mut retries = PunchRetries::default();
        retries.failed(peer, false);
        retries.failed(peer, false);
        assert_eq!(retries.peers[&peer].failures, 2);
        retries.failed(peer, true);
        assert!(retries.peers.is_empty());
        retries.failed(peer, false);
        retries.punched(peer);
        assert!(retries.peers.is_empty());
    }
}
