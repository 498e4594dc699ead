//! The node's live view of who serves which layers: every couple of seconds it looks up
//! the model's providers in the DHT (signed records, checked by the network crate) and the
//! round-trip times of connected peers. The router turns the view into route candidates;
//! `neuroshard_shards` shows it. While this node serves shards it also re-announces its
//! own record (with its current load and throughput) so the view of others stays fresh.
//!
//! Only records whose account <-> peer binding verifies (see
//! `neuroshard_network::records`) ever reach the view, so every peer the router, the spot
//! checker and the prober take from here really works for the account it names.

use crate::billing::Provider;
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
}

/// See the module docs.
pub struct ShardDirectory {
    network: NetworkHandle,
    model: Hash,
    num_layers: u16,
    view: RwLock<Vec<ProviderView>>,
}

impl ShardDirectory {
    pub fn new(network: NetworkHandle, model: Hash, num_layers: u16) -> Self {
        Self {
            network,
            model,
            num_layers,
            view: RwLock::new(Vec::new()),
        }
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
        let mut view: Vec<ProviderView> = records
            .into_iter()
            .filter(|r| now.saturating_sub(r.info.issued_at_ms) < STALE_AFTER_MS)
            .filter_map(|r: ProviderRecord| {
                let peer = r.peer_id()?;
                let rtt_ms = rtts.get(&peer).copied();
                if rtt_ms.is_none() && peer != local {
                    // Not connected: let the network dial it where it says it is.
                    for addr in r.addresses() {
                        self.network.add_address(peer, addr);
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
