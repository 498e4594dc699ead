//! `neuroshard bench sim`: a network of many nodes in one process. Every node is the
//! node's own libp2p behaviour (`neuroshard_network::behaviour::Behaviour`: Kademlia,
//! gossipsub, identify, ping, request-response) on a swarm over libp2p's in-memory
//! transport, authenticated and multiplexed like TCP connections (noise + yamux); only
//! the wire is simulated. Measured, after every node bootstrapped from three random
//! others:
//! - DHT lookups (`get_closest_peers` of random keys from random nodes): requests per
//!   lookup, latency percentiles, and how often the true closest peer (known here from
//!   all peer ids) was found;
//! - gossip: messages published from random nodes, the time until 99% of nodes had them;
//! - the ledger: block import with the receipt load such a network produces (the ledger
//!   bench's workload at `--receipts`).
//!
//! All nodes share this machine's cores and the memory transport adds no delay, so the
//! latencies are CPU time under load, not wide-area figures. Not simulated yet: the
//! signed provider records the node publishes and looks up (`put_record`/`get_record`).

use crate::bench::ledger::{self, LedgerBenchOptions};
use anyhow::Context;
use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::{upgrade, Transport};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::kad;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, yamux, Multiaddr, PeerId};
use neuroshard_network::behaviour::{Behaviour, BehaviourConfig, BehaviourEvent};
use neuroshard_network::NetworkKeypair;
use rand::{Rng, SeedableRng};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct SimOptions {
    pub nodes: usize,
    pub lookups: usize,
    pub messages: usize,
    /// Receipts in the ledger import measurement.
    pub receipts: usize,
    pub seed: u64,
}

/// A finished Kademlia query as the node saw it.
struct QueryOutcome {
    requests: u32,
    duration: Duration,
    peers: Vec<PeerId>,
}

enum Command {
    AddPeer(PeerId, Multiaddr),
    Bootstrap,
    Closest(Vec<u8>, oneshot::Sender<QueryOutcome>),
    Publish(Vec<u8>),
    Peers(oneshot::Sender<usize>),
}

const TOPIC: &str = "neuroshard-sim";
/// Idle connections close after this long, as in the node. That does not bound the
/// connection count: gossipsub, identify and ping keep every connection a DHT walk opened
/// in use, so each node ends up connected to nearly every peer it met (the node has no
/// connection cap yet), and memory in one process grows with the square of the node
/// count: 100 nodes take ~7 GiB, 300 exceed 24 GiB.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);

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

/// Builds node `index`'s swarm listening on `/memory/<index + 1>`.
fn spawn_node(
    index: usize,
    key: NetworkKeypair,
    received: mpsc::UnboundedSender<(u32, Instant)>,
) -> anyhow::Result<mpsc::UnboundedSender<Command>> {
    let behaviour = Behaviour::new(&key, &BehaviourConfig::default())?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                Ok(MemoryTransport::default()
                    .upgrade(upgrade::Version::V1)
                    .authenticate(noise::Config::new(key)?)
                    .multiplex(yamux::Config::default()))
            },
        )?
        .with_behaviour(|_| behaviour)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(IDLE_TIMEOUT))
        .build();
    swarm.listen_on(format!("/memory/{}", index + 1).parse()?)?;
    swarm
        .behaviour_mut()
        .gossipsub
        .subscribe(&IdentTopic::new(TOPIC))?;
    let (tx, mut rx) = mpsc::unbounded_channel::<Command>();
    tokio::spawn(async move {
        let mut pending: HashMap<kad::QueryId, (Instant, oneshot::Sender<QueryOutcome>)> =
            HashMap::new();
        loop {
            tokio::select! {
                command = rx.recv() => {
                    let Some(command) = command else { break };
                    let kad = &mut swarm.behaviour_mut().kad;
                    match command {
                        Command::AddPeer(peer, addr) => {
                            kad.add_address(&peer, addr);
                        }
                        Command::Bootstrap => {
                            let _ = kad.bootstrap();
                        }
                        Command::Closest(key, reply) => {
                            let id = kad.get_closest_peers(key);
                            pending.insert(id, (Instant::now(), reply));
                        }
                        Command::Publish(data) => {
                            let _ = swarm.behaviour_mut().gossipsub.publish(IdentTopic::new(TOPIC), data);
                        }
                        Command::Peers(reply) => {
                            let _ = reply.send(swarm.connected_peers().count());
                        }
                    }
                }
                event = swarm.select_next_some() => match event {
                    SwarmEvent::Behaviour(BehaviourEvent::Kad(kad::Event::OutboundQueryProgressed { id, result, stats, .. })) => {
                        let found = match result {
                            kad::QueryResult::GetClosestPeers(Ok(ok)) => Some(ok.peers.into_iter().map(|p| p.peer_id).collect()),
                            kad::QueryResult::GetClosestPeers(Err(_)) => Some(vec![]),
                            _ => None,
                        };
                        if let Some(peers) = found {
                            if let Some((started, reply)) = pending.remove(&id) {
                                let _ = reply.send(QueryOutcome {
                                    requests: stats.num_requests(),
                                    duration: stats.duration().unwrap_or_else(|| started.elapsed()),
                                    peers,
                                });
                                if let Some(mut q) = swarm.behaviour_mut().kad.query_mut(&id) {
                                    q.finish();
                                }
                            }
                        }
                    }
                    SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message { propagation_source, message_id, message })) => {
                        let _ = swarm.behaviour_mut().gossipsub.report_message_validation_result(&message_id, &propagation_source, MessageAcceptance::Accept);
                        if let Some(tag) = message.data.get(..4) {
                            let tag = u32::from_le_bytes([tag[0], tag[1], tag[2], tag[3]]);
                            let _ = received.send((tag, Instant::now()));
                        }
                    }
                    _ => {}
                }
            }
        }
    });
    Ok(tx)
}

/// Runs the simulation and prints its report.
pub async fn run(opts: &SimOptions) -> anyhow::Result<()> {
    anyhow::ensure!(opts.nodes >= 4, "a simulation needs at least 4 nodes");
    let mut rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let started = Instant::now();
    eprintln!(
        "sim: starting {} nodes (memory transport, noise, yamux)",
        opts.nodes
    );
    let (received_tx, mut received) = mpsc::unbounded_channel();
    let keys: Vec<NetworkKeypair> = (0..opts.nodes)
        .map(|_| NetworkKeypair::generate_ed25519())
        .collect();
    let peers: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
    let mut nodes = Vec::with_capacity(opts.nodes);
    for (i, key) in keys.into_iter().enumerate() {
        nodes.push(spawn_node(i, key, received_tx.clone()).with_context(|| format!("node {i}"))?);
    }
    let addr = |i: usize| -> Multiaddr { format!("/memory/{}", i + 1).parse().expect("valid") };
    for (i, node) in nodes.iter().enumerate() {
        for _ in 0..3 {
            let j = (i + rng.gen_range(1..opts.nodes)) % opts.nodes;
            let _ = node.send(Command::AddPeer(peers[j], addr(j)));
        }
    }
    eprintln!("sim: bootstrapping the DHT");
    for node in &nodes {
        let _ = node.send(Command::Bootstrap);
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let mut connected = Vec::new();
    for node in &nodes {
        let (tx, rx) = oneshot::channel();
        let _ = node.send(Command::Peers(tx));
        connected.push(rx.await.unwrap_or(0) as f64);
    }
    let setup_s = started.elapsed().as_secs_f64();

    eprintln!("sim: {} random lookups", opts.lookups);
    let peer_keys: Vec<kad::KBucketKey<PeerId>> =
        peers.iter().map(|p| kad::KBucketKey::from(*p)).collect();
    // Eight lookups in flight at a time, as a handful of clients would issue them.
    let mut lookups = Vec::new();
    let (mut requests, mut latencies, mut exact) = (vec![], vec![], 0usize);
    for n in 0..opts.lookups {
        let from = rng.gen_range(0..opts.nodes);
        let target = peers[rng.gen_range(0..opts.nodes)];
        let (tx, rx) = oneshot::channel();
        let _ = nodes[from].send(Command::Closest(target.to_bytes(), tx));
        lookups.push((from, target, rx));
        if lookups.len() < 8 && n + 1 < opts.lookups {
            continue;
        }
        for (from, target, rx) in std::mem::take(&mut lookups) {
            let Ok(Ok(outcome)) = tokio::time::timeout(Duration::from_secs(60), rx).await else {
                continue;
            };
            requests.push(f64::from(outcome.requests));
            latencies.push(outcome.duration.as_secs_f64() * 1000.0);
            // The target itself is the closest peer to its own key (unless we are it).
            let target_key = kad::KBucketKey::new(target.to_bytes());
            let best = (0..opts.nodes)
                .filter(|&i| i != from)
                .min_by_key(|&i| peer_keys[i].distance(&target_key))
                .map(|i| peers[i]);
            if best.is_some_and(|b| outcome.peers.contains(&b)) {
                exact += 1;
            }
        }
    }
    let answered = latencies.len();

    eprintln!("sim: {} gossip messages", opts.messages);
    tokio::time::sleep(Duration::from_secs(3)).await; // mesh formation (heartbeats)
    while received.try_recv().is_ok() {}
    let mut published = HashMap::new();
    for tag in 0..opts.messages as u32 {
        let from = rng.gen_range(0..opts.nodes);
        let mut data = tag.to_le_bytes().to_vec();
        data.extend((0..60).map(|_| rng.gen::<u8>()));
        published.insert(tag, Instant::now());
        let _ = nodes[from].send(Command::Publish(data));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let mut arrivals: HashMap<u32, Vec<Instant>> = HashMap::new();
    while let Ok((tag, at)) = received.try_recv() {
        arrivals.entry(tag).or_default().push(at);
    }
    let need = ((opts.nodes - 1) as f64 * 0.99).ceil() as usize;
    let mut to_99 = vec![];
    let mut coverage = vec![];
    for (tag, at) in &published {
        let mut times = arrivals.remove(tag).unwrap_or_default();
        times.sort();
        coverage.push(times.len() as f64 / (opts.nodes - 1) as f64 * 100.0);
        if let Some(t) = times.get(need.saturating_sub(1)) {
            to_99.push(t.duration_since(*at).as_secs_f64() * 1000.0);
        }
    }
    drop(nodes);

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

    println!(
        "NeuroShard network simulation: {} nodes in one process (seed {})",
        opts.nodes, opts.seed
    );
    println!(
        "  setup and DHT bootstrap: {setup_s:.1} s; {}",
        summary("connected peers per node", "", connected)
    );
    println!(
        "  DHT lookups answered: {answered}/{}; true closest peer found in {exact} ({:.1}%)",
        opts.lookups,
        exact as f64 / answered.max(1) as f64 * 100.0
    );
    println!("  {}", summary("requests per lookup", "", requests));
    println!("  {}", summary("lookup latency", "ms", latencies));
    println!(
        "  gossip: {} messages, {} reached 99% of nodes; {}; {}",
        published.len(),
        to_99.len(),
        summary("time to 99%", "ms", to_99),
        summary("coverage", "%", coverage)
    );
    println!(
        "  ledger: one block with {} receipts imports in {:.2} s ({:.0} receipts/s)",
        ledger.receipts,
        ledger.receipts as f64 / ledger.import_receipts_per_s.max(1e-9),
        ledger.import_receipts_per_s
    );
    Ok(())
}
