//! `neuroshard bench sim`: a network of many nodes in one process. Every node is the
//! node's own libp2p behaviour (`neuroshard_network::behaviour::Behaviour`: Kademlia,
//! gossipsub, identify, ping, request-response, connection limits) on a swarm over
//! libp2p's in-memory transport, authenticated and multiplexed like TCP connections
//! (yamux; plaintext's key exchange, or noise with `--noise`), with the node's connection
//! manager keeping it within its connection budget; only the wire is simulated (see
//! [`node`]). Nodes join in batches, each
//! bootstrapping from three random nodes that joined before it. Measured once all joined:
//! - DHT lookups (`get_closest_peers` of random keys from random nodes): requests per
//!   lookup, latency percentiles, and how often the true closest peer (known here from
//!   all peer ids) was found;
//! - signed provider records: some nodes `put_record` a signed [`ProviderRecord`] under
//!   their record key, as the node announces itself (again every 10 s); random nodes
//!   `get_record` them and verify the signature;
//! - gossip: messages published from random nodes, the time until 99% of nodes had them;
//! - the ledger: block import with the receipt load such a network produces (the ledger
//!   bench's workload at `--receipts`).
//!
//! All nodes share this machine's cores and the memory transport adds no delay, so the
//! latencies are CPU time under load, not wide-area figures.

mod node;

use crate::ledger::{self, LedgerBenchOptions};
use anyhow::Context;
use libp2p::kad;
use libp2p::{Multiaddr, PeerId};
use neuroshard_network::records::record_key;
use neuroshard_network::{NetworkKeypair, ProviderInfo, ProviderRecord};
use neuroshard_primitives::{Hash, LayerRange};
use node::{Command, NodeStats, QueryOutcome};
use parity_scale_codec::Encode;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

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

fn addr(i: usize) -> Multiaddr {
    Multiaddr::empty().with(libp2p::multiaddr::Protocol::Memory(i as u64 + 1))
}

/// Asks every node for its stats, all at once (one at a time waits on each busy loop in
/// turn, minutes at a thousand nodes).
async fn stats(nodes: &[mpsc::UnboundedSender<Command>]) -> Vec<NodeStats> {
    let mut replies = Vec::with_capacity(nodes.len());
    for node in nodes {
        let (tx, rx) = oneshot::channel();
        let _ = node.send(Command::Stats(tx));
        replies.push(rx);
    }
    let mut out = Vec::with_capacity(nodes.len());
    for rx in replies {
        if let Ok(s) = rx.await {
            out.push(s);
        }
    }
    out
}

/// Sends `ask` to the chosen nodes, [`IN_FLIGHT`] at a time, and collects the outcomes
/// (`None` when a query got no answer within a minute), in order.
async fn queries<T>(
    nodes: &[mpsc::UnboundedSender<Command>],
    asks: Vec<(usize, T)>,
    ask: impl Fn(&T, oneshot::Sender<QueryOutcome>) -> Command,
) -> Vec<(T, Option<QueryOutcome>)> {
    let mut out = Vec::with_capacity(asks.len());
    let mut asks = asks.into_iter().peekable();
    while asks.peek().is_some() {
        let mut batch = Vec::new();
        for (from, what) in asks.by_ref().take(IN_FLIGHT) {
            let (tx, rx) = oneshot::channel();
            let _ = nodes[from].send(ask(&what, tx));
            batch.push((what, rx));
        }
        for (what, rx) in batch {
            let outcome = tokio::time::timeout(Duration::from_secs(60), rx).await;
            out.push((what, outcome.ok().and_then(Result::ok)));
        }
    }
    out
}

/// A signed provider record of `key`'s node, as the node announces it.
fn provider_record(key: &NetworkKeypair, model: &Hash) -> kad::Record {
    let peer = key.public().to_peer_id();
    let info = ProviderInfo {
        peer: peer.to_bytes(),
        account: [0; 32],
        model: *model,
        shards: vec![LayerRange { start: 0, end: 8 }],
        active_sessions: 0,
        throughput_milli: 0,
        issued_at_ms: 0,
    };
    let record = ProviderRecord::sign(info, key);
    kad::Record::new(record_key(model, &peer), record.encode())
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
    fn add(&mut self, outcome: &QueryOutcome, good: bool) {
        self.answered += 1;
        self.good += usize::from(good);
        self.requests.push(f64::from(outcome.requests));
        self.latencies_ms
            .push(outcome.duration.as_secs_f64() * 1000.0);
        if outcome.timed_out {
            self.timed_out_pending.push(f64::from(outcome.pending));
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
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let started = Instant::now();
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let keys: Vec<NetworkKeypair> = (0..n).map(|_| NetworkKeypair::generate_ed25519()).collect();
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
    for (i, key) in keys.iter().enumerate() {
        let node = node::spawn(i, key.clone(), &config, opts.noise, received_tx.clone())
            .with_context(|| format!("node {i}"))?;
        // The first node has nobody to join; every later one knows a few earlier ones.
        for _ in 0..BOOTSTRAP_PEERS.min(i) {
            let j = rng.gen_range(0..i);
            let _ = node.send(Command::AddPeer(peers[j], addr(j)));
        }
        let _ = node.send(Command::Bootstrap);
        nodes.push(node);
        if (i + 1) % JOIN_BATCH == 0 {
            tokio::time::sleep(JOIN_PAUSE).await;
        }
    }
    eprintln!(
        "sim: all joined after {:.1} s; settling for {} s",
        started.elapsed().as_secs_f64(),
        opts.settle_secs
    );
    tokio::time::sleep(Duration::from_secs(opts.settle_secs)).await;
    let setup_s = started.elapsed().as_secs_f64();
    let before = stats(&nodes).await;

    eprintln!("sim: {} random lookups", opts.lookups);
    let peer_keys: Vec<kad::KBucketKey<PeerId>> =
        peers.iter().map(|p| kad::KBucketKey::from(*p)).collect();
    let asks = (0..opts.lookups)
        .map(|_| {
            let from = rng.gen_range(0..n);
            (from, (from, peers[rng.gen_range(0..n)]))
        })
        .collect();
    let mut closest = Lookups::default();
    for ((from, target), outcome) in queries(&nodes, asks, |(_, target), tx| {
        Command::Closest(target.to_bytes(), tx)
    })
    .await
    {
        let Some(outcome) = outcome else { continue };
        // The target itself is the closest peer to its own key (unless we are it).
        let target_key = kad::KBucketKey::new(target.to_bytes());
        let best = (0..n)
            .filter(|&i| i != from)
            .min_by_key(|&i| peer_keys[i].distance(&target_key))
            .map(|i| peers[i]);
        closest.add(&outcome, best.is_some_and(|b| outcome.peers.contains(&b)));
    }

    eprintln!(
        "sim: {PROVIDERS} signed provider records, {} lookups",
        opts.record_lookups
    );
    let model = Hash::repeat_byte(7);
    let providers: Vec<usize> = (0..PROVIDERS.min(n)).map(|_| rng.gen_range(0..n)).collect();
    // The providers re-announce as the node does (records expire RECORD_TTL after the
    // last announce), for as long as the lookups run.
    let announcing = {
        let announcers: Vec<_> = providers
            .iter()
            .map(|&p| (nodes[p].clone(), provider_record(&keys[p], &model)))
            .collect();
        tokio::spawn(async move {
            loop {
                for (node, record) in &announcers {
                    let _ = node.send(Command::PutRecord(record.clone()));
                }
                tokio::time::sleep(neuroshard_serving::directory::ANNOUNCE).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(5)).await; // replication to the closest peers
    let asks = (0..opts.record_lookups)
        .map(|_| {
            let provider = providers[rng.gen_range(0..providers.len())];
            (rng.gen_range(0..n), record_key(&model, &peers[provider]))
        })
        .collect();
    let mut records = Lookups::default();
    for (key, outcome) in queries(&nodes, asks, |key, tx| Command::GetRecord(key.clone(), tx)).await
    {
        let Some(outcome) = outcome else { continue };
        let verified = outcome
            .record
            .as_deref()
            .is_some_and(|v| neuroshard_network::records::acceptable(&key, v));
        records.add(&outcome, verified);
    }
    announcing.abort();

    eprintln!("sim: {} gossip messages", opts.messages);
    while received.try_recv().is_ok() {}
    let mut published = HashMap::new();
    for tag in 0..opts.messages as u32 {
        let from = rng.gen_range(0..n);
        let mut data = tag.to_le_bytes().to_vec();
        data.extend((0..60).map(|_| rng.gen::<u8>()));
        published.insert(tag, Instant::now());
        let _ = nodes[from].send(Command::Publish(data));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut arrivals: HashMap<u32, Vec<Instant>> = HashMap::new();
    while let Ok((tag, at)) = received.try_recv() {
        arrivals.entry(tag).or_default().push(at);
    }
    let need = ((n - 1) as f64 * 0.99).ceil() as usize;
    let (mut to_99, mut coverage) = (vec![], vec![]);
    for (tag, at) in &published {
        let mut times = arrivals.remove(tag).unwrap_or_default();
        times.sort();
        coverage.push(times.len() as f64 / (n - 1) as f64 * 100.0);
        if let Some(t) = times.get(need.saturating_sub(1)) {
            to_99.push(t.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    let after = stats(&nodes).await;
    drop(nodes);

    let connections = |s: &[NodeStats]| s.iter().map(|s| s.connections as f64).collect();
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
    println!(
        "  gossip: {} messages, {} reached 99% of nodes; {}; {}",
        published.len(),
        to_99.len(),
        summary("time to 99%", "ms", to_99),
        summary("coverage", "%", coverage)
    );
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
