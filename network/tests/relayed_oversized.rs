//! Oversized shard-protocol messages over a relayed circuit (issue 28's bad input): a
//! node holds a reservation at a relay on loopback, and a bare libp2p peer reaches it
//! through the circuit with shard-protocol requests whose frame announces 1 GiB (the
//! protocol's cap is 32 MiB) and carries none of it. The node refuses each at once:
//! the refusal comes back although the announced bytes were never sent, so nothing
//! waited for them, let alone buffered them. Each refusal penalises the sender as a
//! malformed message, and the fourth bans it: the node closes the relayed connection
//! and refuses the peer from then on.

use futures::prelude::*;
use libp2p::multiaddr::Protocol as Part;
use libp2p::request_response::{self, OutboundFailure, ProtocolSupport};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, relay, tcp, yamux, Multiaddr, PeerId, StreamProtocol, Swarm};
use neuroshard_network::{
    start, Link, NetworkConfig, NetworkHandle, NetworkKeypair, Protocol, Transport,
};
use neuroshard_primitives::Hash;
use std::io;
use std::time::Duration;
use tokio::time::timeout;

/// What each request's frame announces: far beyond [`Protocol::max_request`].
const ANNOUNCED: u32 = 1 << 30;

/// Writes only a frame header announcing [`ANNOUNCED`] bytes (and never the bytes).
#[derive(Clone, Default)]
struct OversizedCodec;

#[async_trait::async_trait]
impl request_response::Codec for OversizedCodec {
    type Protocol = StreamProtocol;
    type Request = ();
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, _: &mut T) -> io::Result<()>
    where
        T: AsyncRead + Unpin + Send,
    {
        Err(io::ErrorKind::Unsupported.into())
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut answer = Vec::new();
        io.read_to_end(&mut answer).await?;
        Ok(answer)
    }

    async fn write_request<T>(&mut self, _: &StreamProtocol, io: &mut T, _: ()) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        io.write_all(&ANNOUNCED.to_be_bytes()).await?;
        io.write_all(&[0xAB; 1024]).await?;
        io.flush().await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        _: &mut T,
        _: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        Err(io::ErrorKind::Unsupported.into())
    }
}

#[derive(NetworkBehaviour)]
struct Attacker {
    relay: relay::client::Behaviour,
    shard: request_response::Behaviour<OversizedCodec>,
}

fn attacker() -> Swarm<Attacker> {
    let shard = StreamProtocol::new(Protocol::Activations.name());
    let config = request_response::Config::default().with_request_timeout(Duration::from_secs(60));
    libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_relay_client(noise::Config::new, yamux::Config::default)
        .unwrap()
        .with_behaviour(|_, relay| Attacker {
            relay,
            shard: request_response::Behaviour::with_codec(
                OversizedCodec,
                [(shard, ProtocolSupport::Outbound)],
                config,
            ),
        })
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(300)))
        .build()
}

/// A bare relay on loopback (announcing its loopback address, which a reservation
/// must carry), run until the test ends; returns its address with its peer id.
async fn relay() -> Multiaddr {
    let mut swarm = libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|key| relay::Behaviour::new(key.public().to_peer_id(), Default::default()))
        .unwrap()
        .build();
    swarm
        .listen_on("/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .unwrap();
    let addr = loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            break address;
        }
    };
    swarm.add_external_address(addr.clone());
    let addr = addr.with(Part::P2p(*swarm.local_peer_id()));
    tokio::spawn(async move {
        loop {
            swarm.select_next_some().await;
        }
    });
    addr
}

/// How one oversized request ended for its sender.
enum Outcome {
    /// The node closed the request's stream unanswered (or failed it): why.
    Refused(String),
    Disconnected,
}

async fn send(swarm: &mut Swarm<Attacker>, node: PeerId) -> Outcome {
    swarm.behaviour_mut().shard.send_request(&node, ());
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::Behaviour(AttackerEvent::Shard(request_response::Event::Message {
                message: request_response::Message::Response { response, .. },
                ..
            })) => {
                assert!(
                    response.is_empty(),
                    "the node answered an oversized request"
                );
                return Outcome::Refused("stream closed unanswered".into());
            }
            SwarmEvent::Behaviour(AttackerEvent::Shard(
                request_response::Event::OutboundFailure { error, .. },
            )) if !matches!(error, OutboundFailure::ConnectionClosed) => {
                assert!(
                    !matches!(error, OutboundFailure::Timeout),
                    "the node waited for the announced bytes instead of refusing the frame"
                );
                return Outcome::Refused(error.to_string());
            }
            SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == node => {
                return Outcome::Disconnected
            }
            _ => {}
        }
    }
}

/// The node's score of `peer` and how it is connected, while it is connected.
async fn standing(node: &NetworkHandle, peer: PeerId) -> Option<(i32, Option<Link>)> {
    let peers = node.peers().await.unwrap();
    let info = peers.iter().find(|p| p.peer == peer)?;
    Some((info.score, info.link))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_relayed_requests_are_refused_and_their_sender_banned() {
    let relay = relay().await;
    let circuit = relay.clone().with(Part::P2pCircuit);
    let (node, _events) = start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap(), circuit.clone()],
        bootnodes: vec![],
        genesis: Hash::repeat_byte(1),
        behaviour: Default::default(),
        transport: Transport::Tcp,
    })
    .await
    .unwrap();
    let node_id = node.local_peer_id();
    // The node holds its reservation once its relayed address is a listen address.
    timeout(Duration::from_secs(60), async {
        while !node
            .listen_addrs()
            .await
            .unwrap()
            .iter()
            .any(|a| a.iter().any(|p| p == Part::P2pCircuit))
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the node reserved a slot at the relay");

    let mut swarm = attacker();
    let attacker_id = *swarm.local_peer_id();
    swarm.dial(circuit.with(Part::P2p(node_id))).unwrap();
    let relayed = timeout(Duration::from_secs(60), async {
        loop {
            if let SwarmEvent::ConnectionEstablished {
                peer_id, endpoint, ..
            } = swarm.select_next_some().await
            {
                if peer_id == node_id {
                    return endpoint.is_relayed();
                }
            }
        }
    })
    .await
    .expect("the attacker reached the node");
    assert!(relayed, "the attacker's connection is not relayed");

    // Each refusal costs the sender a malformed message's penalty (25): the fourth
    // reaches the ban score (-100).
    let mut refused = 0;
    loop {
        let outcome = timeout(Duration::from_secs(120), send(&mut swarm, node_id))
            .await
            .expect("the node answers every oversized request");
        let Outcome::Refused(why) = outcome else {
            break;
        };
        refused += 1;
        eprintln!("oversized request {refused} refused: {why}");
        let Some((score, link)) = standing(&node, attacker_id).await else {
            break; // banned and disconnected
        };
        assert_eq!(
            link,
            Some(Link::Relayed),
            "the attacker came through the relay"
        );
        assert_eq!(score, -25 * refused, "refused without the penalty");
        assert!(refused < 4, "not banned after {refused} oversized requests");
    }
    eprintln!("disconnected after {refused} refused requests");
    assert!(
        refused >= 3,
        "disconnected after only {refused} refused requests"
    );
    // Banned: coming back through the relay gets no connection (the node refuses it,
    // or closes it as it opens).
    swarm
        .dial(relay.with(Part::P2pCircuit).with(Part::P2p(node_id)))
        .unwrap();
    timeout(Duration::from_secs(60), async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionClosed { peer_id, .. } if peer_id == node_id => return,
                SwarmEvent::OutgoingConnectionError { .. } => return,
                _ => {}
            }
        }
    })
    .await
    .expect("a banned peer kept a connection through the relay");
}
