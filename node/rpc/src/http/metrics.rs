//! Prometheus metrics (`GET /metrics`, OpenMetrics text): chain height and finality
//! lag, peers (by how they are connected: direct, relayed, direct-after-punch), this
//! node's reachability and relay reservations, transaction pool and pending receipts,
//! tokens served and the speed of the last generation, and the continuous batching of its shards (requests queued, the
//! positions and sessions of the last batched step, steps and positions run) and their
//! prefix caches (positions reused and computed, memory, evictions). Chain
//! figures are refreshed on every new head.

use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use neuroshard_client::Client;
use neuroshard_network::Reachability;
use neuroshard_primitives::{Call, PonwCall};
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

use super::ApiState;

const LINKS: [&str; 3] = ["direct", "relayed", "direct-after-punch"];
const REACHABILITY: [Reachability; 3] = [
    Reachability::Unknown,
    Reachability::Public,
    Reachability::Private,
];

/// The node's metrics and their registry.
pub struct Metrics {
    registry: Registry,
    best_height: Gauge,
    finalized_height: Gauge,
    finality_lag: Gauge,
    peers: Gauge,
    peer_links: Family<Vec<(String, String)>, Gauge>,
    reachability: Family<Vec<(String, String)>, Gauge>,
    relay_reservations: Gauge,
    pool_extrinsics: Gauge,
    receipts_pending: Gauge,
    tokens_served: Counter,
    generations: Counter,
    generations_refused: Counter,
    tokens_per_second: Gauge<f64, AtomicU64>,
    batch_queue: Gauge,
    batch_positions: Gauge,
    batch_sessions: Gauge,
    batch_steps: Gauge,
    batch_positions_run: Gauge,
    batch_sessions_peak: Gauge,
    batch_positions_peak: Gauge,
    batch_sessions_run: Gauge,
    /// Steps by sessions per step, summed over the shards (label `le`: the bucket's bound).
    batch_step_sessions: Family<Vec<(String, String)>, Gauge>,
    /// Per shard (label `shard`: its layer range): steps, sessions, positions, queue.
    stage: [Family<Vec<(String, String)>, Gauge>; 4],
    /// Per shard: seconds spent running steps (its rate is the stage's utilisation).
    stage_busy: Family<Vec<(String, String)>, Gauge<f64, AtomicU64>>,
    /// Prefix cache: hit positions, miss positions, bytes, budget, blocks, evictions.
    prefix: [Gauge; 6],
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("neuroshard");
        let m = Self {
            best_height: Gauge::default(),
            finalized_height: Gauge::default(),
            finality_lag: Gauge::default(),
            peers: Gauge::default(),
            peer_links: Family::default(),
            reachability: Family::default(),
            relay_reservations: Gauge::default(),
            pool_extrinsics: Gauge::default(),
            receipts_pending: Gauge::default(),
            tokens_served: Counter::default(),
            generations: Counter::default(),
            generations_refused: Counter::default(),
            tokens_per_second: Gauge::default(),
            batch_queue: Gauge::default(),
            batch_positions: Gauge::default(),
            batch_sessions: Gauge::default(),
            batch_steps: Gauge::default(),
            batch_positions_run: Gauge::default(),
            batch_sessions_peak: Gauge::default(),
            batch_positions_peak: Gauge::default(),
            batch_sessions_run: Gauge::default(),
            batch_step_sessions: Family::default(),
            stage: Default::default(),
            stage_busy: Family::default(),
            prefix: Default::default(),
            registry: Registry::default(),
        };
        registry.register(
            "best_block_height",
            "Number of the best block",
            m.best_height.clone(),
        );
        registry.register(
            "finalized_block_height",
            "Number of the last finalized block",
            m.finalized_height.clone(),
        );
        registry.register(
            "finality_lag_blocks",
            "Best minus finalized block number",
            m.finality_lag.clone(),
        );
        registry.register("peers", "Connected peers", m.peers.clone());
        registry.register(
            "peer_links",
            "Connected peers by their best connection (direct, relayed, direct-after-punch)",
            m.peer_links.clone(),
        );
        registry.register(
            "reachability",
            "1 for this node's reachability as AutoNAT found it (unknown, public, private)",
            m.reachability.clone(),
        );
        registry.register(
            "relay_reservations",
            "Relays holding a reservation of this node",
            m.relay_reservations.clone(),
        );
        registry.register(
            "pool_extrinsics",
            "Extrinsics waiting in the transaction pool",
            m.pool_extrinsics.clone(),
        );
        registry.register(
            "receipts_pending",
            "Inference receipts in pooled extrinsics",
            m.receipts_pending.clone(),
        );
        registry.register(
            "tokens_served",
            "Tokens generated through the API",
            m.tokens_served.clone(),
        );
        registry.register(
            "generations",
            "Completed generation requests",
            m.generations.clone(),
        );
        registry.register(
            "generations_refused_busy",
            "Generation requests refused because --max-generations (or the API key's --max-generations-per-key) were running",
            m.generations_refused.clone(),
        );
        registry.register(
            "generation_tokens_per_second",
            "Decode speed of the last generation",
            m.tokens_per_second.clone(),
        );
        m.register_batching(&mut registry);
        Self { registry, ..m }
    }
}

impl Metrics {
    fn register_batching(&self, registry: &mut Registry) {
        let gauges = [
            ("batch_queue_length", "Shard requests left waiting when the last batched step started", &self.batch_queue),
            ("batch_positions", "Positions in the last batched step (summed over the shards' last steps: the largest)", &self.batch_positions),
            ("batch_sessions", "Sessions in the last batched step (the largest over the shards)", &self.batch_sessions),
            ("batch_steps", "Batched steps run by this node's shards", &self.batch_steps),
            ("batch_positions_run", "Positions run in batched steps by this node's shards", &self.batch_positions_run),
            ("batch_sessions_peak", "Most sessions one batched step of this node's shards ran", &self.batch_sessions_peak),
            ("batch_positions_peak", "Most positions one batched step of this node's shards ran (at most --max-batch)", &self.batch_positions_peak),
            ("batch_sessions_run", "Sessions summed over the batched steps of this node's shards (over batch_steps: the mean batch)", &self.batch_sessions_run),
        ];
        for (name, help, gauge) in gauges {
            registry.register(name, help, gauge.clone());
        }
        registry.register(
            "batch_step_sessions",
            "Batched steps of this node's shards by sessions in the step: steps of at most `le` sessions and more than the bucket before (`+Inf`: more than the last bound)",
            self.batch_step_sessions.clone(),
        );
        let stage = [
            (
                "stage_steps",
                "Batched steps run by one of this node's shards (label shard: its layers)",
            ),
            (
                "stage_sessions_run",
                "Sessions summed over one shard's batched steps",
            ),
            (
                "stage_positions_run",
                "Positions run in one shard's batched steps",
            ),
            (
                "stage_queue_length",
                "Requests left waiting at one shard when its last step started",
            ),
        ];
        for ((name, help), family) in stage.into_iter().zip(&self.stage) {
            registry.register(name, help, family.clone());
        }
        registry.register(
            "stage_busy_seconds",
            "Seconds one of this node's shards spent running batched steps (its rate over time is the stage's utilisation, 0 to 1)",
            self.stage_busy.clone(),
        );
        let prefix = [
            ("prefix_cache_hit_positions", "Prompt positions of this node's generations reused from the shards' prefix caches (summed over the shards)"),
            ("prefix_cache_miss_positions", "Prompt positions of this node's generations the shards computed (no cached prefix; summed over the shards)"),
            ("prefix_cache_bytes", "Memory held by the shards' prefix caches"),
            ("prefix_cache_budget_bytes", "The shards' prefix-cache budgets (--prefix-cache-mib per shard)"),
            ("prefix_cache_blocks", "Blocks of 16 positions held by the shards' prefix caches"),
            ("prefix_cache_evictions", "Blocks evicted from the shards' prefix caches to stay within budget"),
        ];
        for ((name, help), gauge) in prefix.into_iter().zip(&self.prefix) {
            registry.register(name, help, gauge.clone());
        }
    }

    /// Sets the prefix-cache figures of this node's shards.
    pub fn set_prefix(&self, f: &neuroshard_serving::generator::PrefixFigures) {
        let values = [
            f.hit_positions,
            f.miss_positions,
            f.bytes,
            f.budget,
            f.blocks,
            f.evictions,
        ];
        for (gauge, v) in self.prefix.iter().zip(values) {
            gauge.set(i64::try_from(v).unwrap_or(i64::MAX));
        }
    }

    /// Sets the continuous-batching figures of this node's shards.
    pub fn set_batching(&self, f: &neuroshard_serving::generator::BatchFigures) {
        self.batch_queue.set(f.queued as i64);
        self.batch_positions.set(f.batch_positions as i64);
        self.batch_sessions.set(f.batch_sessions as i64);
        self.batch_steps.set(f.steps as i64);
        self.batch_positions_run.set(f.positions as i64);
        self.batch_sessions_peak.set(f.peak_sessions as i64);
        self.batch_positions_peak.set(f.peak_positions as i64);
        self.batch_sessions_run.set(f.sessions as i64);
        let bounds = neuroshard_serving::generator::HISTOGRAM_BOUNDS;
        for (i, count) in f.histogram.iter().enumerate() {
            let le = bounds.get(i).map_or("+Inf".to_string(), |b| b.to_string());
            self.batch_step_sessions
                .get_or_create(&vec![("le".into(), le)])
                .set(*count as i64);
        }
    }

    /// Sets the batching figures of each of this node's shards (`(layers, figures)`).
    pub fn set_stages(&self, stages: &[(String, neuroshard_serving::generator::BatchFigures)]) {
        for (layers, f) in stages {
            let label = vec![("shard".to_string(), layers.clone())];
            let values = [f.steps, f.sessions, f.positions, f.queued];
            for (family, v) in self.stage.iter().zip(values) {
                family.get_or_create(&label).set(v as i64);
            }
            self.stage_busy
                .get_or_create(&label)
                .set(f.busy_nanos as f64 / 1e9);
        }
    }

    /// Records a generation refused as busy (admission control).
    pub fn record_refused(&self) {
        self.generations_refused.inc();
    }

    /// Records a finished generation.
    pub fn record_generation(&self, tokens: u32, took: Duration) {
        self.tokens_served.inc_by(u64::from(tokens));
        self.generations.inc();
        let secs = took.as_secs_f64();
        if secs > 0.0 {
            self.tokens_per_second.set(f64::from(tokens) / secs);
        }
    }

    /// Refreshes the chain figures from the client.
    pub fn refresh(&self, client: &Client) {
        let best = client.best_header().number;
        let finalized = client.finalized_header().number;
        self.best_height.set(best as i64);
        self.finalized_height.set(finalized as i64);
        self.finality_lag.set(best.saturating_sub(finalized) as i64);
        let pending = client.pending();
        self.pool_extrinsics.set(pending.len() as i64);
        let receipts: usize = pending
            .iter()
            .map(|xt| match &xt.call {
                Call::Ponw(PonwCall::SubmitReceipts { receipts }) => receipts.len(),
                _ => 0,
            })
            .sum();
        self.receipts_pending.set(receipts as i64);
    }

    /// Sets the connected-peer count and how many run over each kind of link.
    pub fn set_peers(&self, peers: &[crate::types::PeerJson]) {
        self.peers.set(peers.len() as i64);
        for link in LINKS {
            let n = peers
                .iter()
                .filter(|p| p.link.as_deref() == Some(link))
                .count();
            self.peer_links
                .get_or_create(&vec![("link".into(), link.into())])
                .set(n as i64);
        }
    }

    /// Sets this node's reachability and relay reservations.
    pub fn set_reachability(&self, stats: &neuroshard_network::NetworkStats) {
        for state in REACHABILITY {
            self.reachability
                .get_or_create(&vec![("state".into(), state.as_str().into())])
                .set(i64::from(stats.reachability == state));
        }
        self.relay_reservations.set(stats.relays.len() as i64);
    }

    /// The OpenMetrics text.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// `GET /metrics`.
pub async fn render(State(state): State<ApiState>) -> impl IntoResponse {
    state.metrics.refresh(&state.client);
    let peers = crate::system::peer_list(state.net.as_ref()).await;
    state.metrics.set_peers(&peers);
    let generator = state.generator.read().await.ready().ok();
    if let Some(figures) = generator.as_ref().and_then(|g| g.batch_figures()) {
        state.metrics.set_batching(&figures);
    }
    if let Some(g) = generator.as_ref() {
        state.metrics.set_stages(&g.stage_figures());
    }
    if let Some(figures) = generator.as_ref().and_then(|g| g.prefix_figures()) {
        state.metrics.set_prefix(&figures);
    }
    if let Some(net) = state.net.as_ref() {
        if let Ok(stats) = net.network.stats().await {
            state.metrics.set_reachability(&stats);
        }
    }
    (
        [(
            CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.encode(),
    )
}

/// Keeps the chain figures fresh between scrapes.
pub fn spawn_chain_watcher(
    client: Arc<Client>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    tokio::spawn(async move {
        let mut heads = client.subscribe_new_heads();
        loop {
            tokio::select! {
                head = heads.recv() => match head {
                    Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => metrics.refresh(&client),
                    Err(_) => return,
                },
                _ = shutdown.changed() => return,
            }
        }
    });
}
