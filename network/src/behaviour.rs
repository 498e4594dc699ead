//! The composed libp2p behaviour (in the style of rust-libp2p's examples): identify and
//! ping for liveness and addresses, Kademlia for discovery and shard provider records,
//! gossipsub for transactions, receipts, blocks and votes (validated by the node before
//! they propagate), one request-response behaviour per protocol with size-capped frames,
//! a block list for peers that misbehaved, the hard connection caps of the node's
//! [`ConnectionBudget`] (trimming below them is the service's job, see [`crate::connmgr`]),
//! and NAT traversal (AutoNAT v2 client and server, circuit relay v2 client and server,
//! DCUtR hole punching; see [`crate::nat`]).

use crate::codec::FrameCodec;
use crate::connmgr::ConnectionBudget;
use crate::error::NetworkError;
use crate::nat::{relay_config, NatConfig};
use crate::protocol::{Protocol, MAX_GOSSIP_BYTES};
use crate::records::MAX_RECORD_BYTES;
use libp2p::swarm::{behaviour::toggle::Toggle, NetworkBehaviour};
use libp2p::{
    allow_block_list, autonat, connection_limits, dcutr, gossipsub, identify, kad, ping, relay,
    request_response, PeerId, StreamProtocol,
};
use std::time::Duration;

fn blake2_256(data: &[u8]) -> [u8; 32] {
    use blake2::digest::{consts::U32, Digest};
    blake2::Blake2b::<U32>::digest(data).into()
}

/// Identify protocol version string; peers on other versions are not added to the DHT.
pub const PROTOCOL_VERSION: &str = "/neuroshard/1";
/// Kademlia protocol name (our own DHT, not the public IPFS one).
pub const KAD_PROTOCOL: StreamProtocol = StreamProtocol::new("/neuroshard/kad/1");
/// How long a provider record or provider key stays in the DHT after its owner last
/// announced it ([`crate::NetworkHandle::announce`]).
pub const RECORD_TTL: Duration = Duration::from_secs(120);

/// How long a ping waits for its answer (libp2p's default). Two unanswered pings in a
/// row close the connection (see the service's ping handling): a peer gone silent is
/// dropped within a minute, and a busy but live one (or a simulation's node on a loaded
/// machine) answers well within this.
pub const PING_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(NetworkBehaviour)]
pub struct Behaviour {
    pub limits: connection_limits::Behaviour,
    pub blocked: allow_block_list::Behaviour<allow_block_list::BlockedPeers>,
    pub identify: identify::Behaviour,
    pub ping: ping::Behaviour,
    pub kad: kad::Behaviour<kad::store::MemoryStore>,
    pub gossipsub: gossipsub::Behaviour,
    pub activations: request_response::Behaviour<FrameCodec>,
    pub sync: request_response::Behaviour<FrameCodec>,
    pub relay_client: relay::client::Behaviour,
    pub relay: relay::Behaviour,
    pub dcutr: Toggle<dcutr::Behaviour>,
    pub autonat: autonat::v2::client::Behaviour,
    pub autonat_server: autonat::v2::server::Behaviour,
}

/// Tunables of the behaviour.
#[derive(Clone, Debug)]
pub struct BehaviourConfig {
    /// How long a shard call (one forward of a pipeline step) may wait for its answer
    /// before the caller fails over to another provider: a provider that stopped
    /// answering (paused, overloaded, partitioned) costs at most this much.
    pub activations_timeout: Duration,
    /// How long a block sync request may wait for its response.
    pub sync_timeout: Duration,
    /// Gossipsub heartbeat (mesh maintenance) interval.
    pub gossip_heartbeat: Duration,
    /// How often Kademlia refreshes its routing table (a lookup of our own id and of a
    /// random key per bucket); `None`: only when the table runs low.
    pub dht_refresh: Option<Duration>,
    /// Gossipsub's per-peer send queue, in messages (half for published and control
    /// messages, half for forwarded ones). Its slots are allocated with each connection,
    /// a few hundred bytes apiece, so this times the connection count is resident memory.
    pub gossip_queue_len: usize,
    /// How many connections the node keeps (hard caps and trimming marks).
    pub connections: ConnectionBudget,
    /// NAT traversal.
    pub nat: NatConfig,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        Self {
            // A long prefill on a slow machine takes seconds; a silent provider should
            // not hold a generation for a minute.
            activations_timeout: Duration::from_secs(15),
            sync_timeout: Duration::from_secs(60),
            gossip_heartbeat: Duration::from_millis(500),
            dht_refresh: Some(Duration::from_secs(30)),
            // libp2p's default: ~0.6 MiB per connection, ~60 MiB at the connection cap.
            gossip_queue_len: 5000,
            connections: ConnectionBudget::default(),
            nat: NatConfig::default(),
        }
    }
}

fn request_response(
    protocol: Protocol,
    timeout: Duration,
) -> request_response::Behaviour<FrameCodec> {
    request_response::Behaviour::new(
        [(
            StreamProtocol::new(protocol.name()),
            request_response::ProtocolSupport::Full,
        )],
        request_response::Config::default()
            .with_request_timeout(timeout)
            .with_max_concurrent_streams(64),
    )
}

impl Behaviour {
    /// The behaviour of the node with `key`; `relay_client` is the behaviour half of the
    /// relay client transport the swarm builder made.
    pub fn new(
        key: &libp2p::identity::Keypair,
        config: &BehaviourConfig,
        relay_client: relay::client::Behaviour,
    ) -> Result<Self, NetworkError> {
        config.connections.validate().map_err(NetworkError::Setup)?;
        let local = PeerId::from(key.public());
        let mut kad_config = kad::Config::new(KAD_PROTOCOL);
        kad_config
            .set_query_timeout(Duration::from_secs(10))
            // A record lives RECORD_TTL unless its owner announces it again (the node
            // does every 10 s). Kademlia's own republication is off: it would run only
            // on its replication tick (1 h by default, so a 30 s publication interval
            // never fired), and a node that re-announces needs no copy kept alive by
            // others.
            .set_record_ttl(Some(RECORD_TTL))
            .set_replication_interval(None)
            .set_publication_interval(None)
            .set_provider_record_ttl(Some(RECORD_TTL))
            .set_provider_publication_interval(None)
            .set_max_packet_size(64 * MAX_RECORD_BYTES)
            .set_periodic_bootstrap_interval(config.dht_refresh)
            // Records are checked (signature, size) before we store them.
            .set_record_filtering(kad::StoreInserts::FilterBoth);
        let mut kad =
            kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_config);
        // Loopback and LAN nodes never get a confirmed external address, so Kademlia's
        // automatic mode would leave them as clients that answer no queries.
        kad.set_mode(Some(kad::Mode::Server));

        let gossip_config = gossipsub::ConfigBuilder::default()
            .heartbeat_interval(config.gossip_heartbeat)
            .validation_mode(gossipsub::ValidationMode::Strict)
            .validate_messages()
            .max_transmit_size(MAX_GOSSIP_BYTES)
            .connection_handler_queue_len(config.gossip_queue_len)
            // Content-addressed ids: the same transaction or block gossiped by two
            // nodes is one message, so re-publishing never loops.
            .message_id_fn(|m: &gossipsub::Message| {
                gossipsub::MessageId::from(blake2_256(&m.data).to_vec())
            })
            .build()
            .map_err(|e| NetworkError::Setup(format!("gossipsub config: {e}")))?;
        let gossipsub = gossipsub::Behaviour::new(
            gossipsub::MessageAuthenticity::Signed(key.clone()),
            gossip_config,
        )
        .map_err(|e| NetworkError::Setup(format!("gossipsub: {e}")))?;

        Ok(Self {
            limits: connection_limits::Behaviour::new(config.connections.limits()),
            blocked: Default::default(),
            identify: identify::Behaviour::new(
                identify::Config::new(PROTOCOL_VERSION.into(), key.public())
                    .with_agent_version(format!("neuroshard/{}", env!("CARGO_PKG_VERSION")))
                    // Peers learn at once of a reservation made or lost (the relayed
                    // addresses they dial us at, and punch again through).
                    .with_push_listen_addr_updates(true),
            ),
            ping: ping::Behaviour::new(
                ping::Config::new()
                    .with_interval(Duration::from_secs(5))
                    .with_timeout(PING_TIMEOUT),
            ),
            kad,
            gossipsub,
            activations: request_response(Protocol::Activations, config.activations_timeout),
            sync: request_response(Protocol::Sync, config.sync_timeout),
            relay_client,
            relay: relay::Behaviour::new(local, relay_config()),
            dcutr: config
                .nat
                .hole_punching
                .then(|| dcutr::Behaviour::new(local))
                .into(),
            autonat: autonat::v2::client::Behaviour::new(
                rand::rngs::OsRng,
                autonat::v2::client::Config::default()
                    .with_probe_interval(config.nat.probe_interval),
            ),
            autonat_server: Default::default(),
        })
    }
}
