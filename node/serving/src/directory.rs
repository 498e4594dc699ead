//! The node's live view of who serves which layers: every couple of seconds it looks up
//! the model's providers in the DHT (signed records, checked by the network crate) and the
//! round-trip times of connected peers, keeping each provider's newest record until it
//! goes stale (a lookup that misses one does not drop it: routes would lose their
//! failover providers whenever a query timed out). The router turns the view into route candidates;
//! `neuroshard_shards` shows it. While this node serves shards it also re-announces its
//! own record (with its current load and throughput) so the view of others stays fresh.
//!
//! Only records whose account <-> peer binding verifies (see
//! `neuroshard_network::records`) ever reach the view, so every peer the router, the spot
//! checker and the prober take from here really works for the account it names.

use crate::billing::Provider;
use crate::outbox::Outboxes;
use crate::remote::RemoteShard;
use crate::routing::Candidate;
use neuroshard_inference::transport::{InProcessTransport, ShardTransport};
use neuroshard_network::{AccountBinding, NetworkHandle, PeerId, ProviderInfo, ProviderRecord};
use neuroshard_primitives::{AccountId, Hash, LayerRange};
use parking_lot::RwLock;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{debug, info};

/// How often the DHT view is refreshed.
pub const REFRESH: Duration = Duration::from_secs(2);
/// How often a serving node re-announces itself.
pub const ANNOUNCE: Duration = Duration::from_secs(10);
/// Records older than this are ignored (the provider stopped refreshing).
pub const STALE_AFTER_MS: u64 = 60_000;

/// One provider as the directory sees it.
#[derive(Clone, Debug)]
pub struct ProviderView {
    pub peer: PeerId,
    pub account: AccountId,
    pub shards: Vec<LayerRange>,
    pub active_sessions: u32,
    pub throughput_milli: u64,
    pub rtt_ms: Option<f64>,
    pub local: bool,
    /// Where its record says it can be reached (relayed addresses for one behind NAT).
    pub addresses: Vec<neuroshard_network::Multiaddr>,
}

/// How far ahead of this node's clock a record's issue time may be.
pub const MAX_CLOCK_AHEAD_MS: u64 = 30_000;
/// Most provider records the directory keeps (twice the 256 one lookup returns).
pub const MAX_KNOWN_PROVIDERS: usize = 512;

/// Merges the records of a lookup into `known` (the newest record of each peer wins),
/// forgets records older than [`STALE_AFTER_MS`] at `now`, and returns the fresh ones.
pub fn merge_records(
    known: &mut HashMap<PeerId, ProviderRecord>,
    fetched: Vec<ProviderRecord>,
    now: u64,
) -> Vec<ProviderRecord> {
    for r in fetched {
        let Some(peer) = r.peer_id() else { continue };
        if r.info.issued_at_ms > now.saturating_add(MAX_CLOCK_AHEAD_MS) {
            // Dated in the future: it would never go stale nor be superseded.
            continue;
        }
        let newer = known
            .get(&peer)
            .is_none_or(|k| k.info.issued_at_ms < r.info.issued_at_ms);
        if newer {
            known.insert(peer, r);
        }
    }
    known.retain(|_, r| now.saturating_sub(r.info.issued_at_ms) < STALE_AFTER_MS);
    if known.len() > MAX_KNOWN_PROVIDERS {
        // Peers with fresh keys are free: keep the newest records only.
        let mut by_age: Vec<(u64, PeerId)> = known
            .iter()
            .map(|(p, r)| (r.info.issued_at_ms, *p))
            .collect();
        by_age.sort_unstable_by(|a, b| b.cmp(a));
        for (_, peer) in by_age.into_iter().skip(MAX_KNOWN_PROVIDERS) {
            known.remove(&peer);
        }
    }
    known.values().cloned().collect()
}

/// See the module docs.
pub struct ShardDirectory {
    network: NetworkHandle,
    model: Hash,
    num_layers: u16,
    /// The newest verified record of every provider seen, until it goes stale.
    records: RwLock<HashMap<PeerId, ProviderRecord>>,
    view: RwLock<Vec<ProviderView>>,
    /// Where forwards to each remote shard are batched (see [`crate::outbox`]).
    outboxes: Outboxes,
}

impl ShardDirectory {
    pub fn new(network: NetworkHandle, model: Hash, num_layers: u16) -> Self {
        Self {
            network,
            model,
            num_layers,
            records: RwLock::new(HashMap::new()),
            view: RwLock::new(Vec::new()),
            outboxes: Outboxes::default(),
        }
    }

    /// The directory's remote shards carrying at most `sessions` sessions per forward
    /// call (see [`Outboxes::with_batch`]).
    pub fn with_forward_batch(mut self, sessions: usize) -> Self {
        self.outboxes = Outboxes::with_batch(sessions);
        self
    }

    pub fn model(&self) -> Hash {
        self.model
    }

    pub fn num_layers(&self) -> u16 {
        self.num_layers
    }

    /// The latest view, this node included when it serves.
    pub fn snapshot(&self) -> Vec<ProviderView> {
        self.view.read().clone()
    }

    /// Looks the providers up now and replaces the view.
    pub async fn refresh(&self) {
        let Ok(records) = self.network.providers(self.model).await else {
            return;
        };
        let rtts: HashMap<PeerId, f64> = self
            .network
            .peers()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|p| Some((p.peer, p.rtt?.as_secs_f64() * 1000.0)))
            .collect();
        let now = neuroshard_client::unix_millis();
        let local = self.network.local_peer_id();
        // A lookup that misses a provider (a query timed out, the peer holding its record
        // paused) does not drop it: its last record stands until it goes stale.
        let fresh = merge_records(&mut self.records.write(), records, now);
        let mut view: Vec<ProviderView> = fresh
            .into_iter()
            .filter_map(|r: ProviderRecord| {
                let peer = r.peer_id()?;
                let rtt_ms = rtts.get(&peer).copied();
                let addresses = r.addresses();
                if peer != local {
                    // Where it says it is, also while connected: when the relay carrying
                    // our connection dies, the call goes again through another relay it
                    // holds a reservation with, which it may have gained since we met.
                    for addr in &addresses {
                        self.network.add_address(peer, addr.clone());
                    }
                }
                Some(ProviderView {
                    peer,
                    account: r.info.account(),
                    shards: r.info.shards,
                    active_sessions: r.info.active_sessions,
                    throughput_milli: r.info.throughput_milli,
                    rtt_ms,
                    local: peer == local,
                    addresses,
                })
            })
            .collect();
        view.sort_by_key(|v| (v.shards.first().copied(), v.peer.to_bytes()));
        let before = self.view.read().len();
        if before != view.len() {
            info!(providers = view.len(), "shard provider view changed");
        }
        *self.view.write() = view;
    }

    /// Refreshes the view every [`REFRESH`] until shutdown.
    pub async fn refresh_loop(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.refresh().await;
            tokio::select! {
                _ = tokio::time::sleep(REFRESH) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// Announces this node's shards every [`ANNOUNCE`] until shutdown, in the name of the
    /// account whose `binding` of this node's peer is given (see [`Self::binding`]);
    /// `stats` gives the current (active sessions, throughput in milli-tokens/s).
    pub async fn announce_loop(
        self: Arc<Self>,
        binding: AccountBinding,
        shards: Vec<LayerRange>,
        stats: impl Fn() -> (u32, u64) + Send + 'static,
        mut shutdown: watch::Receiver<bool>,
    ) {
        loop {
            let (active_sessions, throughput_milli) = stats();
            self.network.announce(ProviderInfo {
                peer: self.network.local_peer_id().to_bytes(),
                binding: binding.clone(),
                model: self.model,
                shards: shards.clone(),
                active_sessions,
                throughput_milli,
                issued_at_ms: neuroshard_client::unix_millis(),
                // Filled by the network service.
                addresses: Vec::new(),
            });
            debug!(shards = shards.len(), "provider record announced");
            tokio::select! {
                _ = tokio::time::sleep(ANNOUNCE) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    /// `key`'s account binds this node's peer id for the directory's model: the account
    /// half of what makes this node's records believable.
    pub fn binding(&self, key: &neuroshard_primitives::Keypair) -> AccountBinding {
        AccountBinding::sign(key, &self.network.local_peer_id(), &self.model)
    }

    /// Route candidates: this node's own shards (no network cost) and every remote
    /// provider in the view.
    pub fn candidates(
        &self,
        local: &[Arc<InProcessTransport>],
        runtime: &tokio::runtime::Handle,
    ) -> Vec<Candidate<Provider>> {
        let mut out: Vec<Candidate<Provider>> = local
            .iter()
            .map(|t| Candidate::new(Provider::Local(t.clone()), t.layers(), 0.0, 0))
            .collect();
        for p in self.snapshot().into_iter().filter(|p| !p.local) {
            for layers in &p.shards {
                let remote = RemoteShard::new(
                    self.network.clone(),
                    runtime.clone(),
                    &self.outboxes,
                    p.peer,
                    p.account.clone(),
                    self.model,
                    *layers,
                );
                // Unknown RTT (not connected yet): assume a LAN-ish 10 ms.
                let rtt = p.rtt_ms.unwrap_or(10.0);
                out.push(Candidate::new(
                    Provider::Remote(Arc::new(remote)),
                    *layers,
                    rtt,
                    p.active_sessions,
                ));
            }
        }
        debug!(
            candidates = ?out.iter().map(|c| c.provider.transport().name()).collect::<Vec<_>>(),
            "route candidates"
        );
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_network::NetworkKeypair;
    use neuroshard_primitives::crypto::keypair_from_uri;

    fn record(key: &NetworkKeypair, issued_at_ms: u64) -> ProviderRecord {
        let info = ProviderInfo::bound(
            &key.public().to_peer_id(),
            &keypair_from_uri("//Bob").unwrap(),
            Hash::repeat_byte(9),
            vec![LayerRange::new(10, 20).unwrap()],
            issued_at_ms,
        );
        ProviderRecord::sign(info, key)
    }

    fn issued(records: &[ProviderRecord]) -> Vec<u64> {
        let mut t: Vec<u64> = records.iter().map(|r| r.info.issued_at_ms).collect();
        t.sort();
        t
    }

    #[test]
    fn a_lookup_that_misses_a_provider_does_not_drop_it_until_its_record_is_stale() {
        let (a, b) = (
            NetworkKeypair::generate_ed25519(),
            NetworkKeypair::generate_ed25519(),
        );
        let mut known = HashMap::new();
        let t0 = 1_000_000;
        let both = merge_records(&mut known, vec![record(&a, t0), record(&b, t0 + 1)], t0 + 5);
        assert_eq!(issued(&both), vec![t0, t0 + 1]);
        // The next lookup finds only a's newer record: b stays, a is updated.
        let later = merge_records(&mut known, vec![record(&a, t0 + 10_000)], t0 + 10_005);
        assert_eq!(issued(&later), vec![t0 + 1, t0 + 10_000]);
        // An older copy of a's record does not replace the newer one.
        let again = merge_records(&mut known, vec![record(&a, t0)], t0 + 10_006);
        assert_eq!(issued(&again), vec![t0 + 1, t0 + 10_000]);
        // Once b's record is stale, b is gone.
        let stale_b = t0 + 1 + STALE_AFTER_MS;
        assert_eq!(
            issued(&merge_records(&mut known, vec![], stale_b)),
            vec![t0 + 10_000]
        );
    }
}
