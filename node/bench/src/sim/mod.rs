//! `neuroshard bench sim`: a network of many nodes in one process. Every node is the
//! node's own network service (`neuroshard_network::start`: its event loop, behaviour of
//! Kademlia, gossipsub, identify, ping, request-response and connection limits, and its
//! connection manager) over libp2p's in-memory transport, authenticated and multiplexed
//! like TCP connections (yamux; plaintext's key exchange, or noise with `--noise`); only
//! the wire is simulated (see [`node`]). Nodes join in batches, each bootstrapping from
//! three random nodes that joined before it. Measured once all joined:
//! - DHT lookups (`get_closest_peers` of random keys from random nodes): requests per
//!   lookup, latency percentiles, and how often the true closest peer (known here from
//!   all peer ids) was found;
//! - signed provider records: some nodes announce themselves as providers of a model as
//!   the node does, again every 10 s (a signed
//!   [`ProviderRecord`](neuroshard_network::ProviderRecord) under their record key, and
//!   provider keys); random nodes `get_record` the records and verify the signature;
//! - gossip: messages published on the transactions topic from random nodes, accepted
//!   by every node that receives them; the time until 99% of nodes had them;
//! - the ledger: block import with the receipt load such a network produces (the ledger
//!   bench's workload at `--receipts`).
//!
//! All nodes share this machine's cores and the memory transport adds no delay, so the
//! latencies are CPU time under load, not wide-area figures. Every service logs its
//! listen address at `info`: `RUST_LOG=warn` keeps the output to the report.

mod node;

use crate::ledger::{self, LedgerBenchOptions};
use anyhow::Context;
use libp2p::kad;
use libp2p::PeerId;
use neuroshard_network::records::record_key;
use neuroshard_network::{
    NetworkError, NetworkHandle, NetworkKeypair, NetworkStats, ProviderInfo, QueryStats, Topic,
};
use neuroshard_primitives::{Hash, LayerRange};
use node::SimNode;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub nodes: usize,
    pub lookups: usize,
    /// Signed provider records looked up (`get_record`).
    pub record_lookups: usize,
    pub messages: usize,
    /// Receipts in the ledger import measurement.
    pub receipts: usize,
    /// Seconds to let the network settle after the last node joined.
    pub settle_secs: u64,
    pub seed: u64,
    /// Noise-encrypted connections (else plaintext: the same identity exchange and
    /// multiplexing without the handshake's curve arithmetic).
    pub noise: bool,
}

/// Nodes joining at a time, and the pause between batches.
const JOIN_BATCH: usize = 50;
const JOIN_PAUSE: Duration = Duration::from_secs(1);
/// Bootstrap peers per joining node.
const BOOTSTRAP_PEERS: usize = 3;
/// Nodes that publish a signed provider record.
const PROVIDERS: usize = 20;
/// Lookups in flight at a time, as a handful of clients would issue them.
const IN_FLIGHT: usize = 8;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn sorted(mut v: Vec<f64>) -> Vec<f64> {
    v.sort_by(f64::total_cmp);
    v
}

fn summary(label: &str, unit: &str, values: Vec<f64>) -> String {
    let v = sorted(values);
    format!(
        "{label}: p50 {:.1} {unit}, p90 {:.1}, p99 {:.1}, max {:.1} (n = {})",
        percentile(&v, 0.5),
        percentile(&v, 0.9),
        percentile(&v, 0.99),
        v.last().copied().unwrap_or(f64::NAN),
        v.len()
    )
}

/// Asks every node for its stats, all at once (one at a time waits on each busy loop in
/// turn, minutes at a thousand nodes).
async fn stats(nodes: &[SimNode]) -> Vec<NetworkStats> {
    futures::future::join_all(nodes.iter().map(|node| node.handle.stats()))
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// Runs `ask` on the chosen nodes, [`IN_FLIGHT`] at a time, and collects the answers
/// (`None` when a query got no answer within a minute), in order.
async fn queries<T, O, F>(
    nodes: &[SimNode],
    asks: Vec<(usize, T)>,
    ask: impl Fn(NetworkHandle, &T) -> F,
) -> Vec<(T, Option<O>)>
where
    F: Future<Output = Result<O, NetworkError>>,
{
    let mut out = Vec::with_capacity(asks.len());
    let mut asks = asks.into_iter().peekable();
    while asks.peek().is_some() {
        let batch = asks.by_ref().take(IN_FLIGHT).map(|(from, what)| {
            let query = ask(nodes[from].handle.clone(), &what);
            async move {
                let answer = tokio::time::timeout(Duration::from_secs(60), query).await;
                (what, answer.ok().and_then(Result::ok))
            }
        });
        out.extend(futures::future::join_all(batch).await);
    }
    out
}

/// What a provider announces, as the node does (its record is signed by the service).
fn provider_info(peer: &PeerId, model: &Hash) -> ProviderInfo {
    let account = neuroshard_primitives::crypto::keypair_from_uri("//Provider")
        .expect("a dev URI is a valid key");
    ProviderInfo::bound(
        peer,
        &account,
        *model,
        vec![LayerRange { start: 0, end: 8 }],
        0,
    )
}

/// Lookup figures: requests and latency per lookup, and how many were "good".
#[derive(Default)]
struct Lookups {
    answered: usize,
    good: usize,
    requests: Vec<f64>,
    latencies_ms: Vec<f64>,
    /// Requests still unanswered when a lookup hit Kademlia's query timeout.
    timed_out_pending: Vec<f64>,
}

impl Lookups {
    fn add(&mut self, stats: &QueryStats, good: bool) {
        self.answered += 1;
        self.good += usize::from(good);
        self.requests.push(f64::from(stats.requests));
        self.latencies_ms
            .push(stats.duration.as_secs_f64() * 1000.0);
        if stats.timed_out {
            self.timed_out_pending.push(f64::from(stats.pending));
        }
    }

    fn print(self, what: &str, good: &str, asked: usize) {
        println!(
            "  {what} answered: {}/{asked}; {good} in {} ({:.1}%)",
            self.answered,
            self.good,
            self.good as f64 / self.answered.max(1) as f64 * 100.0
        );
        println!("    {}", summary("requests per lookup", "", self.requests));
        println!("    {}", summary("latency", "ms", self.latencies_ms));
        if !self.timed_out_pending.is_empty() {
            println!(
                "    {} ended at the query timeout; {}",
                self.timed_out_pending.len(),
                summary("requests unanswered then", "", self.timed_out_pending)
            );
        }
    }
}

/// Gossip figures: per message, the time until 99% of nodes had it and its coverage.
struct Gossip {
    published: usize,
    to_99_ms: Vec<f64>,
    coverage: Vec<f64>,
}

impl Gossip {
    fn print(self) {
        println!(
            "  gossip: {} messages, {} reached 99% of nodes; {}; {}",
            self.published,
            self.to_99_ms.len(),
            summary("time to 99%", "ms", self.to_99_ms),
            summary("coverage", "%", self.coverage)
        );
    }
}

/// The simulated network: its nodes, their peer ids, and the seeded choices.
struct Network {
    nodes: Vec<SimNode>,
    peers: Vec<PeerId>,
    rng: StdRng,
}

impl Network {
    /// Starts the nodes, [`JOIN_BATCH`] at a time; each knows [`BOOTSTRAP_PEERS`] random
    /// earlier ones and bootstraps from them.
    async fn join(
        opts: &SimOptions,
        received: mpsc::UnboundedSender<(u32, Instant)>,
    ) -> anyhow::Result<Self> {
        let n = opts.nodes;
        let mut rng = StdRng::seed_from_u64(opts.seed);
        let keys: Vec<NetworkKeypair> =
            (0..n).map(|_| NetworkKeypair::generate_ed25519()).collect();
        let peers: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
        let config = node::config();
        eprintln!(
            "sim: {n} nodes join, {JOIN_BATCH} every {} ms (memory transport, {}, yamux; \
             connection budget {:?})",
            JOIN_PAUSE.as_millis(),
            if opts.noise { "noise" } else { "plaintext" },
            config.connections
        );
        let mut nodes = Vec::with_capacity(n);
        for (i, key) in keys.into_iter().enumerate() {
            let node = node::spawn(i, key, &config, opts.noise, received.clone())
                .await
                .with_context(|| format!("node {i}"))?;
            // The first node has nobody to join; every later one knows a few earlier ones.
            for _ in 0..BOOTSTRAP_PEERS.min(i) {
                let j = rng.gen_range(0..i);
                node.handle.add_address(peers[j], node::addr(j));
            }
            node.handle.bootstrap();
            nodes.push(node);
            if (i + 1) % JOIN_BATCH == 0 {
                tokio::time::sleep(JOIN_PAUSE).await;
            }
        }
        Ok(Self { nodes, peers, rng })
    }

    /// `get_closest_peers` of random peers' ids from random nodes; "good" when the true
    /// closest peer (the target itself, unless the asking node is it) was found.
    async fn closest_lookups(&mut self, lookups: usize) -> Lookups {
        let n = self.nodes.len();
        let peer_keys: Vec<kad::KBucketKey<PeerId>> = self
            .peers
            .iter()
            .map(|p| kad::KBucketKey::from(*p))
            .collect();
        let asks = (0..lookups)
            .map(|_| {
                let from = self.rng.gen_range(0..n);
                (from, (from, self.peers[self.rng.gen_range(0..n)]))
            })
            .collect();
        let closest_peers = |node: NetworkHandle, (_, target): &(usize, PeerId)| {
            let key = target.to_bytes();
            async move { node.closest_peers(key).await }
        };
        let mut closest = Lookups::default();
        for ((from, target), outcome) in queries(&self.nodes, asks, closest_peers).await {
            let Some(outcome) = outcome else { continue };
            let target_key = kad::KBucketKey::new(target.to_bytes());
            let best = (0..n)
                .filter(|&i| i != from)
                .min_by_key(|&i| peer_keys[i].distance(&target_key))
                .map(|i| self.peers[i]);
            let found = best.is_some_and(|b| outcome.peers.contains(&b));
            closest.add(&outcome.stats, found);
        }
        closest
    }

    /// [`PROVIDERS`] random nodes announce themselves (again every
    /// `neuroshard_serving::directory::ANNOUNCE`, as the node does: records expire
    /// `RECORD_TTL` after the last announce) while random nodes look their records up;
    /// "good" when the record found verifies.
    async fn record_lookups(&mut self, lookups: usize) -> Lookups {
        let n = self.nodes.len();
        let model = Hash::repeat_byte(7);
        let providers: Vec<usize> = (0..PROVIDERS.min(n))
            .map(|_| self.rng.gen_range(0..n))
            .collect();
        let announcers: Vec<_> = providers
            .iter()
            .map(|&p| {
                (
                    self.nodes[p].handle.clone(),
                    provider_info(&self.peers[p], &model),
                )
            })
            .collect();
        let announcing = tokio::spawn(async move {
            loop {
                for (node, info) in &announcers {
                    node.announce(info.clone());
                }
                tokio::time::sleep(neuroshard_serving::directory::ANNOUNCE).await;
            }
        });
        tokio::time::sleep(Duration::from_secs(5)).await; // replication to the closest peers
        let asks = (0..lookups)
            .map(|_| {
                let provider = providers[self.rng.gen_range(0..providers.len())];
                (
                    self.rng.gen_range(0..n),
                    record_key(&model, &self.peers[provider]),
                )
            })
            .collect();
        let get_record = |node: NetworkHandle, key: &kad::RecordKey| {
            let key = key.clone();
            async move { node.get_record(key).await }
        };
        let mut records = Lookups::default();
        for (key, outcome) in queries(&self.nodes, asks, get_record).await {
            let Some(outcome) = outcome else { continue };
            let verified = outcome
                .value
                .as_deref()
                .is_some_and(|v| neuroshard_network::records::acceptable(&key, v));
            records.add(&outcome.stats, verified);
        }
        announcing.abort();
        records
    }

    /// Publishes `messages` tagged messages on the transactions topic from random nodes,
    /// one every 200 ms, and reads their arrivals from `received` 10 s after the last.
    async fn gossip(
        &mut self,
        messages: usize,
        received: &mut mpsc::UnboundedReceiver<(u32, Instant)>,
    ) -> Gossip {
        let n = self.nodes.len();
        while received.try_recv().is_ok() {}
        let mut published = HashMap::new();
        for tag in 0..messages as u32 {
            let from = self.rng.gen_range(0..n);
            let mut data = tag.to_le_bytes().to_vec();
            data.extend((0..60).map(|_| self.rng.gen::<u8>()));
            published.insert(tag, Instant::now());
            self.nodes[from].handle.publish(Topic::Transactions, data);
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        let mut arrivals: HashMap<u32, Vec<Instant>> = HashMap::new();
        while let Ok((tag, at)) = received.try_recv() {
            arrivals.entry(tag).or_default().push(at);
        }
        let need = ((n - 1) as f64 * 0.99).ceil() as usize;
        let (mut to_99_ms, mut coverage) = (vec![], vec![]);
        for (tag, at) in &published {
            let mut times = arrivals.remove(tag).unwrap_or_default();
            times.sort();
            coverage.push(times.len() as f64 / (n - 1) as f64 * 100.0);
            if let Some(t) = times.get(need.saturating_sub(1)) {
                to_99_ms.push(t.duration_since(*at).as_secs_f64() * 1000.0);
            }
        }
        Gossip {
            published: published.len(),
            to_99_ms,
            coverage,
        }
    }
}

/// Runs the simulation and prints its report.
pub async fn run(opts: &SimOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.nodes >= 4, "a simulation needs at least 4 nodes");
    let n = opts.nodes;
    // The ledger first: seconds, and nothing of the network run is lost if it fails.
    eprintln!("sim: ledger import with {} receipts", opts.receipts);
    let receipts = opts.receipts;
    let ledger = tokio::task::spawn_blocking(move || {
        ledger::run(&LedgerBenchOptions {
            receipts,
            batch: 2_000,
            rounds: 1,
        })
    })
    .await??;
    let started = Instant::now();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let mut network = Network::join(opts, received_tx).await?;
    eprintln!(
        "sim: all joined after {:.1} s; settling for {} s",
        started.elapsed().as_secs_f64(),
        opts.settle_secs
    );
    tokio::time::sleep(Duration::from_secs(opts.settle_secs)).await;
    let setup_s = started.elapsed().as_secs_f64();
    let before = stats(&network.nodes).await;
    eprintln!("sim: {} random lookups", opts.lookups);
    let closest = network.closest_lookups(opts.lookups).await;
    eprintln!(
        "sim: {PROVIDERS} signed provider records, {} lookups",
        opts.record_lookups
    );
    let records = network.record_lookups(opts.record_lookups).await;
    eprintln!("sim: {} gossip messages", opts.messages);
    let gossip = network.gossip(opts.messages, &mut received).await;
    let after = stats(&network.nodes).await;
    drop(network);

    let connections = |s: &[NetworkStats]| s.iter().map(|s| s.connections as f64).collect();
    println!(
        "NeuroShard network simulation: {n} nodes in one process (seed {})",
        opts.seed
    );
    println!(
        "  joined and settled in {setup_s:.1} s; {}; {}",
        summary("connections per node", "", connections(&before)),
        summary(
            "routing table entries",
            "",
            before.iter().map(|s| s.routing_table as f64).collect()
        )
    );
    closest.print("DHT lookups", "true closest peer found", opts.lookups);
    records.print(
        "signed provider record lookups",
        "record found and verified",
        opts.record_lookups,
    );
    gossip.print();
    println!(
        "  at the end: {}",
        summary("connections per node", "", connections(&after))
    );
    println!(
        "  ledger: one block with {} receipts imports in {:.2} s ({:.0} receipts/s)",
        ledger.receipts,
        ledger.receipts as f64 / ledger.import_receipts_per_s.max(1e-9),
        ledger.import_receipts_per_s
    );
    Ok(())
}
