//! The network service: builds the swarm (over a [`Transport`]: TCP + noise + yamux for
//! a node), listens, dials the bootnodes and runs the event loop that owns the swarm. The
//! loop turns swarm events into [`NetworkEvent`]s for the node and executes the handle's
//! commands (in `service/commands.rs`); it keeps the bookkeeping of pending requests (a
//! request to a peer we are not connected to waits for our own dial of it, in
//! `service/dialing.rs`) and DHT queries, checks DHT records before storing them (in
//! `service/dht.rs`) and penalises peers that send malformed or oversized messages. It
//! also keeps the connection count within the [`crate::ConnectionBudget`]: above the high
//! water mark it closes the least recently useful connections that no mesh or pending
//! request needs.

mod commands;
mod dht;
mod dialing;
mod nat;
mod punch;

use crate::behaviour::{Behaviour, BehaviourConfig, BehaviourEvent, PROTOCOL_VERSION};
use crate::codec::Request;
use crate::connmgr::ConnectionManager;
use crate::error::NetworkError;
use crate::handle::{ClosestPeers, Command, NetworkEvent, NetworkHandle, RecordLookup, Reply};
use crate::peers::{Offence, PeerBook};
use crate::protocol::{Protocol, Topic};
use crate::transport::{self, Transport};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, TopicHash};
use libp2p::kad::QueryId;
use libp2p::request_response::{self, OutboundRequestId};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{identify, identity::Keypair, ping, Multiaddr, PeerId, Swarm};
use neuroshard_primitives::Hash;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

/// Everything the network service needs to start.
#[derive(Clone)]
pub struct NetworkConfig {
    pub keypair: Keypair,
    /// Addresses to listen on (e.g. `/ip4/127.0.0.1/tcp/0`).
    pub listen: Vec<Multiaddr>,
    /// Peers to dial at start; they only seed the DHT.
    pub bootnodes: Vec<Multiaddr>,
    /// The chain's genesis hash (gossip topics are per chain).
    pub genesis: Hash,
    pub behaviour: BehaviourConfig,
    /// What carries the connections: [`Transport::Tcp`] for a node.
    pub transport: Transport,
}

/// The protocol an AutoNAT v2 server answers test requests on.
const AUTONAT_DIAL_REQUEST: libp2p::StreamProtocol =
    libp2p::StreamProtocol::new("/libp2p/autonat/2/dial-request");

/// How often the connection count is checked against the budget (it is also checked
/// whenever a connection opens).
const TRIM_INTERVAL: Duration = Duration::from_secs(5);

/// Capacity of the event channel to the node; gossip beyond it is ignored, not buffered.
const EVENT_QUEUE: usize = 4096;

/// Starts the service on the current tokio runtime.
pub async fn start(
    config: NetworkConfig,
) -> Result<(NetworkHandle, mpsc::Receiver<NetworkEvent>), NetworkError> {
    let key = config.keypair.clone();
    let mut swarm = transport::swarm(
        config.keypair.clone(),
        |relay| Behaviour::new(&key, &config.behaviour, relay),
        config.transport,
    )?;

    let mut topics = HashMap::new();
    for topic in Topic::ALL {
        let t = IdentTopic::new(topic.name(&config.genesis));
        swarm
            .behaviour_mut()
            .gossipsub
            .subscribe(&t)
            .map_err(|e| NetworkError::Setup(format!("subscribing to {t}: {e}")))?;
        topics.insert(t.hash(), topic);
    }
    for addr in &config.listen {
        swarm
            .listen_on(addr.clone())
            .map_err(|e| NetworkError::Listen {
                addr: addr.to_string(),
                reason: e.to_string(),
            })?;
    }
    let local_peer_id = *swarm.local_peer_id();
    // Wait for the listeners to come up so callers can print real addresses.
    let mut listen_addrs = Vec::new();
    while listen_addrs.len() < config.listen.len() {
        match tokio::time::timeout(Duration::from_secs(5), swarm.select_next_some()).await {
            Ok(SwarmEvent::NewListenAddr { address, .. }) => {
                info!(address = %address.clone().with_p2p(local_peer_id).unwrap_or(address.clone()), "p2p listening");
                listen_addrs.push(address);
            }
            Ok(other) => debug!(?other, "swarm event before listening"),
            Err(_) => {
                return Err(NetworkError::Listen {
                    addr: format!("{:?}", config.listen),
                    reason: "no listen address within 5 s".into(),
                })
            }
        }
    }
    for addr in &config.bootnodes {
        if let Err(e) = swarm.dial(addr.clone()) {
            warn!(%addr, error = %e, "cannot dial bootnode");
        }
    }

    let (command_tx, command_rx) = mpsc::unbounded_channel();
    let (event_tx, event_rx) = mpsc::channel(EVENT_QUEUE);
    let event_loop = EventLoop {
        swarm,
        commands: command_rx,
        events: event_tx,
        topics,
        genesis: config.genesis,
        listen_addrs,
        peers: PeerBook::default(),
        requests: HashMap::new(),
        connections: ConnectionManager::new(config.behaviour.connections.clone()),
        dials: HashMap::new(),
        provider_queries: HashMap::new(),
        record_queries: HashMap::new(),
        closest_queries: HashMap::new(),
        bootstrapped: false,
        keypair: config.keypair.clone(),
        nat: nat::NatState::new(config.behaviour.nat.clone()),
        #[cfg(feature = "fault-injection")]
        partitioned: HashSet::new(),
    };
    tokio::spawn(event_loop.run());
    Ok((
        NetworkHandle {
            commands: command_tx,
            local_peer_id,
        },
        event_rx,
    ))
}

/// Where the answer to one of our requests goes.
type ResponseSender = oneshot::Sender<Result<Vec<u8>, NetworkError>>;

struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::UnboundedReceiver<Command>,
    events: mpsc::Sender<NetworkEvent>,
    topics: HashMap<TopicHash, Topic>,
    genesis: Hash,
    listen_addrs: Vec<Multiaddr>,
    peers: PeerBook,
    /// Requests in flight: the peer asked (its connection is kept) and who waits. Keyed
    /// by protocol too: each request-response behaviour numbers its requests from 1.
    requests: HashMap<(Protocol, OutboundRequestId), (PeerId, ResponseSender)>,
    connections: ConnectionManager,
    /// Our dials to peers that requests wait for (see `service/dialing.rs`).
    dials: HashMap<PeerId, dialing::PendingDial>,
    provider_queries: HashMap<QueryId, (oneshot::Sender<HashSet<PeerId>>, HashSet<PeerId>)>,
    /// Record and closest-peer lookups in flight: when each started and who waits.
    record_queries: HashMap<QueryId, (Instant, oneshot::Sender<RecordLookup>)>,
    closest_queries: HashMap<QueryId, (Instant, oneshot::Sender<ClosestPeers>)>,
    bootstrapped: bool,
    keypair: Keypair,
    nat: nat::NatState,
    /// Peers cut off by fault injection ([`NetworkHandle::set_partitioned`]).
    #[cfg(feature = "fault-injection")]
    partitioned: HashSet<PeerId>,
}

impl EventLoop {
    async fn run(mut self) {
        let mut trim = tokio::time::interval(TRIM_INTERVAL);
        trim.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = trim.tick() => {
                    self.trim_connections();
                    self.expire_dials();
                    self.seek_autonat_server();
                    self.ensure_reservations();
                    self.retry_hole_punches();
                }
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    // Every handle is gone: the node is shutting down.
                    None => return,
                },
            }
        }
    }

    /// Closes excess connections (see [`ConnectionManager::trim`]); peers with a request
    /// of ours in flight are kept.
    fn trim_connections(&mut self) {
        if !self.connections.over_high_water() {
            return;
        }
        let busy: HashSet<PeerId> = self.requests.values().map(|(peer, _)| *peer).collect();
        let closed = self
            .connections
            .trim(&mut self.swarm, &busy, Instant::now());
        if closed > 0 {
            debug!(
                closed,
                open = self.connections.open(),
                "trimmed connections"
            );
        }
    }

    fn behaviour(&mut self) -> &mut Behaviour {
        self.swarm.behaviour_mut()
    }

    fn penalise(&mut self, peer: PeerId, offence: Offence, why: &str) {
        warn!(%peer, ?offence, why, "peer penalised");
        if self.peers.penalise(peer, offence) {
            warn!(%peer, "peer banned: too many offences");
            self.behaviour().blocked.block_peer(peer);
        }
    }

    #[cfg(feature = "fault-injection")]
    fn partition(&mut self, peers: HashSet<PeerId>) {
        let healed: Vec<PeerId> = self.partitioned.difference(&peers).copied().collect();
        for peer in peers.difference(&self.partitioned) {
            self.swarm.behaviour_mut().blocked.block_peer(*peer);
        }
        for peer in healed {
            if self.peers.get(&peer).is_some_and(|p| p.banned()) {
                continue;
            }
            self.swarm.behaviour_mut().blocked.unblock_peer(peer);
            let addrs = self
                .peers
                .get(&peer)
                .map(|p| p.addrs.clone())
                .unwrap_or_default();
            let dial = libp2p::swarm::dial_opts::DialOpts::peer_id(peer)
                .addresses(addrs)
                .build();
            if let Err(e) = self.swarm.dial(dial) {
                debug!(%peer, error = %e, "cannot redial a healed peer");
            }
        }
        warn!(
            peers = peers.len(),
            "fault injection: partitioned from peers"
        );
        self.partitioned = peers;
    }

    fn emit(&mut self, event: NetworkEvent) {
        if let Err(e) = self.events.try_send(event) {
            // The node is not keeping up (or stopping). Gossip left unvalidated is
            // dropped by gossipsub after a while; requests fail at the caller's timeout.
            debug!(error = %e, "network event dropped");
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        self.connections.observe(&event, Instant::now());
        if matches!(event, SwarmEvent::ConnectionEstablished { .. }) {
            self.trim_connections();
        }
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => self.on_identify(peer_id, info),
            SwarmEvent::Behaviour(BehaviourEvent::Ping(event)) => self.on_ping(event),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(event)) => self.on_gossip(event),
            SwarmEvent::Behaviour(BehaviourEvent::Kad(event)) => self.on_kad(event),
            SwarmEvent::Behaviour(BehaviourEvent::Activations(event)) => {
                self.on_request_response(Protocol::Activations, event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Sync(event)) => {
                self.on_request_response(Protocol::Sync, event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(event)) => self.on_dcutr(event),
            SwarmEvent::Behaviour(BehaviourEvent::Autonat(event)) => self.on_autonat(event),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatServer(event)) => {
                self.on_autonat_served(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(event)) => {
                self.on_relay_client(event)
            }
            SwarmEvent::Behaviour(BehaviourEvent::Relay(event)) => self.on_relay_server(event),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                num_established,
                ..
            } => {
                self.on_connection_opened(peer_id, connection_id, &endpoint);
                self.peers.get_mut(peer_id).connected = true;
                self.on_dialed(peer_id);
                if num_established.get() == 1 {
                    debug!(peer = %peer_id, "peer connected");
                    self.emit(NetworkEvent::PeerConnected(peer_id));
                }
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                num_established,
                ..
            } => {
                self.on_connection_gone(peer_id, connection_id);
                if num_established == 0 {
                    self.peers.get_mut(peer_id).connected = false;
                    debug!(peer = %peer_id, "peer disconnected");
                    self.emit(NetworkEvent::PeerDisconnected(peer_id));
                }
            }
            SwarmEvent::ListenerClosed { listener_id, .. } => self.on_listener_closed(listener_id),
            SwarmEvent::NewListenAddr { address, .. } if !self.listen_addrs.contains(&address) => {
                self.listen_addrs.push(address);
            }
            SwarmEvent::Dialing {
                peer_id,
                connection_id,
            } => debug!(peer = ?peer_id, connection = %connection_id, "dialing"),
            SwarmEvent::OutgoingConnectionError {
                peer_id,
                connection_id,
                error,
            } => {
                debug!(peer = ?peer_id, connection = %connection_id, %error, "outgoing connection failed");
                self.on_dial_failed(peer_id, connection_id, &error);
            }
            _ => {}
        }
    }

    /// A ping answered, or failed. libp2p keeps a connection whose pings fail open, and
    /// a TCP connection whose far end vanished without a word (a home router's public
    /// address changed; a machine lost power) stays open until the kernel gives up on
    /// it, many minutes later: requests sent over it wait for their timeouts, and a
    /// relay routes circuits over it to a reservation that is no more. Ping reports a
    /// failure only after two in a row ([`crate::behaviour::PING_TIMEOUT`] each), so
    /// such a connection is closed within a minute.
    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(rtt) => {
                let state = self.peers.get_mut(event.peer);
                state.rtt = Some(rtt);
                state.pongs.insert(event.connection, Instant::now());
            }
            Err(ping::Failure::Unsupported) => {}
            Err(error) => {
                warn!(peer = %event.peer, connection = %event.connection, %error, "pings unanswered; closing the connection");
                self.swarm.close_connection(event.connection);
            }
        }
    }

    fn on_identify(&mut self, peer: PeerId, info: identify::Info) {
        let state = self.peers.get_mut(peer);
        state.agent = Some(info.agent_version.clone());
        state.addrs = info.listen_addrs.clone();
        state.relay_service = info.protocols.contains(&libp2p::relay::HOP_PROTOCOL_NAME);
        state.autonat_server = info.protocols.contains(&AUTONAT_DIAL_REQUEST);
        if info.protocol_version != PROTOCOL_VERSION {
            debug!(%peer, version = %info.protocol_version, "peer speaks another protocol version");
            return;
        }
        self.prefer_quic(peer, &info.listen_addrs);
        self.seek_autonat_server();
        self.ensure_reservations();
        for addr in info.listen_addrs {
            self.behaviour().kad.add_address(&peer, addr);
        }
        if !self.bootstrapped {
            self.bootstrapped = self.behaviour().kad.bootstrap().is_ok();
        }
    }

    fn on_gossip(&mut self, event: gossipsub::Event) {
        let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        else {
            return;
        };
        match self.topics.get(&message.topic).copied() {
            Some(topic) => self.emit(NetworkEvent::Gossip {
                topic,
                source: propagation_source,
                id: message_id,
                data: message.data,
            }),
            None => {
                self.behaviour().gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    MessageAcceptance::Reject,
                );
            }
        }
    }

    fn on_request_response(
        &mut self,
        protocol: Protocol,
        event: request_response::Event<Request, Vec<u8>>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    request_response::Message::Request {
                        request, channel, ..
                    },
                ..
            } => match request {
                Request::Frame(data) => self.emit(NetworkEvent::Request {
                    protocol,
                    peer,
                    data,
                    reply: Reply { protocol, channel },
                }),
                // Refused unread; dropping the channel closes the stream unanswered.
                Request::Oversized(len) => {
                    debug!(%peer, len, ?protocol, "oversized request refused");
                    self.penalise(peer, Offence::Malformed, "oversized request");
                }
            },
            request_response::Event::Message {
                message:
                    request_response::Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((_, done)) = self.requests.remove(&(protocol, request_id)) {
                    let _ = done.send(Ok(response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                connection_id,
                request_id,
                error,
            } => self.on_outbound_failure(protocol, peer, connection_id, request_id, error),
            request_response::Event::InboundFailure { peer, error, .. } => {
                debug!(%peer, %error, ?protocol, "inbound request failed");
            }
            request_response::Event::ResponseSent { .. } => {}
        }
    }

    /// A request of ours failed. A failure of what carried it rather than of the peer's
    /// answer is reported as [`NetworkError::ConnectionLost`], so that a call safe to
    /// repeat is sent again (the peer may be reachable another way): the connection
    /// closed, or the request's stream broke under it (an I/O error other than a
    /// malformed answer), or no answer came over a relayed connection. A relay that
    /// died without closing anything (a killed QUIC relay sends no close) leaves its
    /// circuits silent until QUIC's idle timeout: a request that times out over one
    /// closes it, so that neither the repeat nor later requests go that way again.
    fn on_outbound_failure(
        &mut self,
        protocol: Protocol,
        peer: PeerId,
        connection: ConnectionId,
        request_id: OutboundRequestId,
        error: request_response::OutboundFailure,
    ) {
        use request_response::OutboundFailure as Failure;
        debug!(%peer, %connection, %request_id, %error, ?protocol, "request failed");
        let lost = match &error {
            Failure::ConnectionClosed => true,
            Failure::Io(e) if e.kind() == std::io::ErrorKind::InvalidData => {
                self.penalise(peer, Offence::Malformed, "oversized or malformed response");
                false
            }
            Failure::Io(_) => true,
            Failure::Timeout if self.is_relayed(peer, connection) => {
                warn!(%peer, %connection, "no answer over a relayed connection; closing it");
                self.swarm.close_connection(connection);
                true
            }
            _ => false,
        };
        if let Some((_, done)) = self.requests.remove(&(protocol, request_id)) {
            let error = if lost {
                NetworkError::ConnectionLost { peer }
            } else {
                NetworkError::Request {
                    peer,
                    reason: error.to_string(),
                }
            };
            let _ = done.send(Err(error));
        }
    }

    /// Whether `connection` to `peer` runs through a relay's circuit.
    fn is_relayed(&self, peer: PeerId, connection: ConnectionId) -> bool {
        self.peers
            .get(&peer)
            .and_then(|state| state.links.get(&connection))
            .is_some_and(|(link, _, _)| *link == crate::nat::Link::Relayed)
    }
}
