//! What each peer may make this node spend on checking the transactions it gossips.
//! Checking a transaction that never reaches a block is paid by nobody, so each peer
//! gets a byte budget refilled at a steady rate (a token bucket) and a cap on its checks
//! in flight; what arrives beyond it is dropped unchecked (and not forwarded). The
//! budget is far above what an honest peer forwards (a block's worth of transactions
//! per slot comes from all peers together), so it only bites on floods.

use neuroshard_network::PeerId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

/// Bytes per second of transactions a peer may have checked.
pub const BYTES_PER_SEC: f64 = 4.0 * 1024.0 * 1024.0;
/// The most a peer may use at once (two maximal extrinsics).
pub const BURST_BYTES: f64 = 8.0 * 1024.0 * 1024.0;
/// Checks of one peer's transactions running at once.
pub const IN_FLIGHT_PER_PEER: u32 = 2;
/// Peers remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 4096;

#[derive(Debug)]
struct Bucket {
    bytes: f64,
    refilled: Instant,
    in_flight: u32,
}

/// The per-peer budgets.
#[derive(Debug, Default)]
pub struct CheckBudget {
    peers: Mutex<HashMap<PeerId, Bucket>>,
}

impl CheckBudget {
    /// Takes `bytes` from `peer`'s budget for one check; `false` (nothing taken) when
    /// the peer has not that much left or has too many checks running. Every `true`
    /// must be followed by [`CheckBudget::done`].
    pub fn admit(&self, peer: PeerId, bytes: usize) -> bool {
        self.admit_at(peer, bytes, Instant::now())
    }

    fn admit_at(&self, peer: PeerId, bytes: usize, now: Instant) -> bool {
        let mut peers = self.peers.lock();
        if peers.len() >= MAX_TRACKED && !peers.contains_key(&peer) {
            peers.retain(|_, b| b.in_flight > 0 || b.bytes < BURST_BYTES);
        }
        let bucket = peers.entry(peer).or_insert(Bucket {
            bytes: BURST_BYTES,
            refilled: now,
            in_flight: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.bytes = (bucket.bytes + elapsed * BYTES_PER_SEC).min(BURST_BYTES);
        bucket.refilled = now;
        let cost = bytes as f64;
        if bucket.in_flight >= IN_FLIGHT_PER_PEER || bucket.bytes < cost {
            return false;
        }
        bucket.bytes -= cost;
        bucket.in_flight += 1;
        true
    }

    /// Ends a check [`CheckBudget::admit`] let through.
    pub fn done(&self, peer: PeerId) {
        if let Some(bucket) = self.peers.lock().get_mut(&peer) {
            bucket.in_flight = bucket.in_flight.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: usize = 1024 * 1024;

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let budget = CheckBudget::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert!(budget.admit_at(peer, 4 * MIB, t0));
        budget.done(peer);
        assert!(budget.admit_at(peer, 4 * MIB, t0));
        budget.done(peer);
        assert!(!budget.admit_at(peer, MIB, t0), "burst used up");
        // Half a second refills 2 MiB.
        let later = t0 + Duration::from_millis(500);
        assert!(budget.admit_at(peer, 2 * MIB, later));
        budget.done(peer);
        assert!(!budget.admit_at(peer, MIB, later));
        // Another peer is not affected.
        assert!(budget.admit_at(PeerId::random(), 4 * MIB, later));
    }

    #[test]
    fn checks_in_flight_are_capped_per_peer() {
        let budget = CheckBudget::default();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert!(budget.admit_at(peer, 10, t0));
        assert!(budget.admit_at(peer, 10, t0));
        assert!(!budget.admit_at(peer, 10, t0), "two already running");
        budget.done(peer);
        assert!(budget.admit_at(peer, 10, t0));
    }
}
