//! One simulated node of `bench sim`: the node's own libp2p behaviour on a swarm over the
//! in-memory transport (yamux on top, as on TCP, and noise if asked), with the node's
//! connection manager trimming it to its budget, driven by a small event loop that takes
//! commands from the simulation (add a bootstrap peer, run a DHT query, publish, report)
//! and answers with what Kademlia's query statistics say.

use futures::StreamExt;
use libp2p::core::transport::MemoryTransport;
use libp2p::core::{upgrade, Transport};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::kad::{self, store::RecordStore};
use libp2p::swarm::{Swarm, SwarmEvent};
use libp2p::{identify, noise, plaintext, yamux, Multiaddr, PeerId};
use neuroshard_network::behaviour::{Behaviour, BehaviourConfig, BehaviourEvent};
use neuroshard_network::connmgr::ConnectionManager;
use neuroshard_network::{records, NetworkKeypair};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

pub const TOPIC: &str = "neuroshard-sim";
/// Idle connections close after this long, as in the node (gossipsub's long-lived
/// streams keep most connections from ever being idle: the trimming bounds them).
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How often the connection count is checked against the budget, as in the node.
const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// A finished Kademlia query as the node saw it.
pub struct QueryOutcome {
    pub requests: u32,
    pub duration: Duration,
    /// `get_closest_peers`: the peers found.
    pub peers: Vec<PeerId>,
    /// `get_record`: the record's value, if one was found.
    pub record: Option<Vec<u8>>,
    /// Ended by Kademlia's query timeout, with `pending` requests still unanswered.
    pub timed_out: bool,
    pub pending: u32,
}

/// A node's state as reported to the simulation.
pub struct NodeStats {
    pub connections: usize,
    pub routing_table: usize,
}

pub enum Command {
    AddPeer(PeerId, Multiaddr),
    Bootstrap,
    Closest(Vec<u8>, oneshot::Sender<QueryOutcome>),
    PutRecord(kad::Record),
    GetRecord(kad::RecordKey, oneshot::Sender<QueryOutcome>),
    Publish(Vec<u8>),
    Stats(oneshot::Sender<NodeStats>),
}

/// The node's behaviour configuration with two changes the simulation needs to fit in
/// one machine:
/// - memory: gossipsub's per-peer send queue, whose slots are allocated with every
///   connection (~0.6 MiB at the default 5000 messages), is cut to 256; the simulation
///   publishes a message every 200 ms, far from filling it;
/// - CPU: the DHT refresh runs every 5 minutes (libp2p's default) instead of the node's
///   30 s. A refresh is some 300 requests, most on new connections (noise handshakes),
///   and a thousand nodes refreshing every 30 s is more than two shared cores can do,
///   which would leave every measurement waiting on the scheduler.
pub fn config() -> BehaviourConfig {
    BehaviourConfig {
        gossip_queue_len: 256,
        dht_refresh: Some(Duration::from_secs(300)),
        ..BehaviourConfig::default()
    }
}

/// Builds node `index`'s swarm listening on `/memory/<index + 1>` (connections
/// authenticated with noise, or with plaintext's bare key exchange) and spawns its
/// loop; gossip messages it receives are reported on `received` as (tag, arrival time).
pub fn spawn(
    index: usize,
    key: NetworkKeypair,
    config: &BehaviourConfig,
    noise: bool,
    received: mpsc::UnboundedSender<(u32, Instant)>,
) -> anyhow::Result<mpsc::UnboundedSender<Command>> {
    let behaviour = Behaviour::new(&key, config)?;
    let mut swarm = libp2p::SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_other_transport(
            |key| -> Result<_, Box<dyn std::error::Error + Send + Sync>> {
                let wire = MemoryTransport::default().upgrade(upgrade::Version::V1);
                Ok(if noise {
                    wire.authenticate(noise::Config::new(key)?)
                        .multiplex(yamux::Config::default())
                        .boxed()
                } else {
                    wire.authenticate(plaintext::Config::new(key))
                        .multiplex(yamux::Config::default())
                        .boxed()
                })
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
    let (tx, rx) = mpsc::unbounded_channel::<Command>();
    let node = SimNode {
        swarm,
        connections: ConnectionManager::new(config.connections.clone()),
        pending: HashMap::new(),
        received,
    };
    tokio::spawn(node.run(rx));
    Ok(tx)
}

struct SimNode {
    swarm: Swarm<Behaviour>,
    connections: ConnectionManager,
    pending: HashMap<kad::QueryId, (Instant, oneshot::Sender<QueryOutcome>)>,
    received: mpsc::UnboundedSender<(u32, Instant)>,
}

impl SimNode {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut trim = tokio::time::interval(TRIM_INTERVAL);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_event(event),
                _ = trim.tick() => self.trim(),
            }
        }
    }

    fn trim(&mut self) {
        self.connections
            .trim(&mut self.swarm, &HashSet::new(), Instant::now());
    }

    fn on_command(&mut self, command: Command) {
        let kad = &mut self.swarm.behaviour_mut().kad;
        match command {
            Command::AddPeer(peer, addr) => {
                kad.add_address(&peer, addr);
            }
            Command::Bootstrap => {
                let _ = kad.bootstrap();
            }
            Command::Closest(key, reply) => {
                let id = kad.get_closest_peers(key);
                self.pending.insert(id, (Instant::now(), reply));
            }
            Command::PutRecord(record) => {
                let _ = kad.put_record(record, kad::Quorum::One);
            }
            Command::GetRecord(key, reply) => {
                let id = kad.get_record(key);
                self.pending.insert(id, (Instant::now(), reply));
            }
            Command::Publish(data) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .publish(IdentTopic::new(TOPIC), data);
            }
            Command::Stats(reply) => {
                let routing_table = kad.kbuckets().map(|b| b.num_entries()).sum();
                let _ = reply.send(NodeStats {
                    connections: self.connections.open(),
                    routing_table,
                });
            }
        }
    }

    fn on_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.connections.observe(&event, Instant::now());
        match event {
            SwarmEvent::ConnectionEstablished { .. } => self.trim(),
            // As the node's service does: a peer's identified listen addresses go to the DHT.
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                for addr in info.listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer_id, addr);
                }
            }
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Accept,
                    );
                if let Some(&[a, b, c, d]) = message.data.get(..4) {
                    let _ = self
                        .received
                        .send((u32::from_le_bytes([a, b, c, d]), Instant::now()));
                }
            }
            _ => {}
        }
    }

    fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id, result, stats, ..
            } => {
                let (peers, record, timed_out) = match result {
                    kad::QueryResult::GetClosestPeers(Ok(ok)) => (ok.peers, None, false),
                    kad::QueryResult::GetClosestPeers(Err(
                        kad::GetClosestPeersError::Timeout { peers, .. },
                    )) => (peers, None, true),
                    kad::QueryResult::GetRecord(Ok(kad::GetRecordOk::FoundRecord(found))) => {
                        (vec![], Some(found.record.value), false)
                    }
                    kad::QueryResult::GetRecord(result) => (
                        vec![],
                        None,
                        matches!(result, Err(kad::GetRecordError::Timeout { .. })),
                    ),
                    _ => return,
                };
                let peers = peers.into_iter().map(|p| p.peer_id).collect();
                if let Some((started, reply)) = self.pending.remove(&id) {
                    let _ = reply.send(QueryOutcome {
                        requests: stats.num_requests(),
                        duration: stats.duration().unwrap_or_else(|| started.elapsed()),
                        peers,
                        record,
                        timed_out,
                        pending: stats.num_pending(),
                    });
                    if let Some(mut q) = self.swarm.behaviour_mut().kad.query_mut(&id) {
                        q.finish();
                    }
                }
            }
            // As the node's service does: only verified provider records are stored.
            kad::Event::InboundRequest {
                request:
                    kad::InboundRequest::PutRecord {
                        record: Some(record),
                        ..
                    },
            } if records::acceptable(&record.key, &record.value) => {
                let _ = self.swarm.behaviour_mut().kad.store_mut().put(record);
            }
            _ => {}
        }
    }
}
