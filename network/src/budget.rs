//! What each peer may make this node spend on work nobody pays for: checking the
//! transactions it gossips, answering its sync and shard requests. Each peer gets a
//! byte budget refilled at a steady rate (a token bucket) and a cap on its requests in
//! flight; what arrives beyond it is refused unchecked. Budgets are set well above what
//! an honest peer sends, so they only bite on floods.

use libp2p::PeerId;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::time::Instant;

/// Peers remembered before idle ones are forgotten.
const MAX_TRACKED: usize = 4096;

#[derive(Debug)]
struct Bucket {
    bytes: f64,
    refilled: Instant,
    in_flight: u32,
}

/// Every peer's budget for one kind of work.
#[derive(Debug)]
pub struct PeerBudget {
    /// Bytes a peer's budget gains per second.
    bytes_per_sec: f64,
    /// The most a peer may use at once.
    burst_bytes: f64,
    /// Requests of one peer running at once.
    in_flight: u32,
    peers: Mutex<HashMap<PeerId, Bucket>>,
}

impl PeerBudget {
    /// Budgets of `bytes_per_sec` (up to `burst_bytes` saved) and `in_flight` requests
    /// at once per peer.
    pub fn new(bytes_per_sec: u64, burst_bytes: u64, in_flight: u32) -> Self {
        Self {
            bytes_per_sec: bytes_per_sec as f64,
            burst_bytes: burst_bytes as f64,
            in_flight,
            peers: Mutex::default(),
        }
    }

    /// Takes `bytes` from `peer`'s budget for one request; `false` (nothing taken) when
    /// the peer has not that much left or has too many requests running. Every `true`
    /// must be followed by [`PeerBudget::done`].
    pub fn admit(&self, peer: PeerId, bytes: usize) -> bool {
        self.admit_at(peer, bytes, 1, Instant::now())
    }

    /// [`PeerBudget::admit`] for a request counting as `calls` requests in flight (a
    /// shard call carrying several sessions counts each); must be followed by
    /// [`PeerBudget::done_calls`] with the same count.
    pub fn admit_calls(&self, peer: PeerId, bytes: usize, calls: u32) -> bool {
        self.admit_at(peer, bytes, calls, Instant::now())
    }

    fn admit_at(&self, peer: PeerId, bytes: usize, calls: u32, now: Instant) -> bool {
        let mut peers = self.peers.lock();
        if peers.len() >= MAX_TRACKED && !peers.contains_key(&peer) {
            peers.retain(|_, b| b.in_flight > 0 || b.bytes < self.burst_bytes);
        }
        let bucket = peers.entry(peer).or_insert(Bucket {
            bytes: self.burst_bytes,
            refilled: now,
            in_flight: 0,
        });
        let elapsed = now.saturating_duration_since(bucket.refilled).as_secs_f64();
        bucket.bytes = (bucket.bytes + elapsed * self.bytes_per_sec).min(self.burst_bytes);
        bucket.refilled = now;
        let cost = bytes as f64;
        if bucket.in_flight.saturating_add(calls) > self.in_flight || bucket.bytes < cost {
            return false;
        }
        bucket.bytes -= cost;
        bucket.in_flight += calls;
        true
    }

    /// Ends a request [`PeerBudget::admit`] let through.
    pub fn done(&self, peer: PeerId) {
        self.done_calls(peer, 1)
    }

    /// Ends a request [`PeerBudget::admit_calls`] let through as `calls` requests.
    pub fn done_calls(&self, peer: PeerId, calls: u32) {
        if let Some(bucket) = self.peers.lock().get_mut(&peer) {
            bucket.in_flight = bucket.in_flight.saturating_sub(calls);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MIB: usize = 1024 * 1024;

    /// 4 MiB/s, 8 MiB saved, two at once.
    fn budget() -> PeerBudget {
        PeerBudget::new(4 * MIB as u64, 8 * MIB as u64, 2)
    }

    #[test]
    fn a_peer_gets_its_burst_then_its_rate() {
        let budget = budget();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert!(budget.admit_at(peer, 4 * MIB, 1, t0));
        budget.done(peer);
        assert!(budget.admit_at(peer, 4 * MIB, 1, t0));
        budget.done(peer);
        assert!(!budget.admit_at(peer, MIB, 1, t0), "burst used up");
        // Half a second refills 2 MiB.
        let later = t0 + Duration::from_millis(500);
        assert!(budget.admit_at(peer, 2 * MIB, 1, later));
        budget.done(peer);
        assert!(!budget.admit_at(peer, MIB, 1, later));
        // Another peer is not affected.
        assert!(budget.admit_at(PeerId::random(), 4 * MIB, 1, later));
    }

    #[test]
    fn checks_in_flight_are_capped_per_peer() {
        let budget = budget();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert!(budget.admit_at(peer, 10, 1, t0));
        assert!(budget.admit_at(peer, 10, 1, t0));
        assert!(!budget.admit_at(peer, 10, 1, t0), "two already running");
        budget.done(peer);
        assert!(budget.admit_at(peer, 10, 1, t0));
    }

    #[test]
    fn a_call_of_several_sessions_counts_each_in_flight() {
        let budget = budget();
        let (peer, t0) = (PeerId::random(), Instant::now());
        assert!(
            !budget.admit_at(peer, 10, 3, t0),
            "three sessions over a cap of two"
        );
        assert!(budget.admit_at(peer, 10, 2, t0));
        assert!(
            !budget.admit_at(peer, 10, 1, t0),
            "both slots taken by one call"
        );
        budget.done_calls(peer, 2);
        assert!(budget.admit_at(peer, 10, 1, t0));
    }
}
