//! A node's relay service under a reservation flood (issue 28's bad input): a bare
//! libp2p peer asks a node for one relay reservation after another on loopback. The
//! service grants only what its limits allow (libp2p's per-peer rate limit), refuses the
//! rest, and penalises each refused request until the peer is banned: the node closes
//! its connection and refuses it from then on.

use futures::StreamExt;
use libp2p::multiaddr::Protocol as Part;
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, relay, tcp, yamux, Multiaddr, Swarm};
use neuroshard_network::{start, NetworkConfig, NetworkKeypair, Transport};
use neuroshard_primitives::Hash;
use std::time::Duration;
use tokio::time::timeout;

/// More reservation requests than any limit of the relay service lets through.
const ATTEMPTS: usize = 200;

/// How one reservation request ended.
enum Outcome {
    /// Granted by the relay (whether or not the client could use it).
    Accepted,
    Refused,
    /// Not answered (the relay could not be reached, or refused the connection).
    Failed(String),
    /// The relay closed our connection.
    Disconnected,
}

fn flooder() -> Swarm<relay::client::Behaviour> {
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
        .with_behaviour(|_, relay| relay)
        .unwrap()
        .build()
}

/// Asks for one more reservation at `circuit` and waits for its outcome.
async fn ask(swarm: &mut Swarm<relay::client::Behaviour>, circuit: &Multiaddr) -> Outcome {
    timeout(Duration::from_secs(60), reserve(swarm, circuit))
        .await
        .expect("the relay answers every reservation request")
}

async fn reserve(swarm: &mut Swarm<relay::client::Behaviour>, circuit: &Multiaddr) -> Outcome {
    let listener = swarm.listen_on(circuit.clone()).unwrap();
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::NewListenAddr { listener_id, .. } if listener_id == listener => {
                return Outcome::Accepted
            }
            SwarmEvent::ListenerClosed {
                listener_id,
                reason,
                ..
            } if listener_id == listener => {
                // A reservation granted carries the relay's public addresses; on
                // loopback it has none, and the client drops such a reservation.
                // A listener closed without error: its connection to the relay closed.
                let Err(why) = reason else {
                    return Outcome::Disconnected;
                };
                let why = format!("{why:?}");
                return if why.contains("NoAddressesInReservation") {
                    Outcome::Accepted
                } else if why.contains("ResourceLimitExceeded") {
                    Outcome::Refused
                } else {
                    Outcome::Failed(why)
                };
            }
            SwarmEvent::ConnectionClosed { .. } => return Outcome::Disconnected,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reservation_flood_is_refused_and_its_sender_banned() {
    let (relay, _events) = start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes: vec![],
        genesis: Hash::repeat_byte(1),
        behaviour: Default::default(),
        transport: Transport::Tcp,
    })
    .await
    .unwrap();
    let relay_addr = relay.listen_addrs().await.unwrap()[0].clone();
    let circuit = relay_addr
        .with(Part::P2p(relay.local_peer_id()))
        .with(Part::P2pCircuit);

    let mut swarm = flooder();
    let (mut accepted, mut refused, mut banned) = (0, 0, false);
    for _ in 0..ATTEMPTS {
        match ask(&mut swarm, &circuit).await {
            Outcome::Accepted => accepted += 1,
            Outcome::Refused => refused += 1,
            Outcome::Failed(why) => panic!("reservation request failed: {why}"),
            Outcome::Disconnected => {
                banned = true;
                break;
            }
        }
    }
    assert!(accepted > 0, "no reservation granted at all");
    assert!(refused > 0, "{accepted} reservations granted, none refused");
    assert!(
        banned,
        "still connected after {accepted} granted and {refused} refused"
    );
    eprintln!("reservations granted {accepted}, refused {refused}, then disconnected");
    // Banned: asking again (the relay client dials the relay anew) gets nothing.
    for _ in 0..3 {
        assert!(
            !matches!(ask(&mut swarm, &circuit).await, Outcome::Accepted),
            "a banned peer got a reservation"
        );
    }
}
