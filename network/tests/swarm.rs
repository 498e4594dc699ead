//! Several network services on loopback in one process: DHT discovery of shard providers
//! from a single bootnode, gossip to every peer, request-response both ways, and hostile
//! input (an oversized frame, a rejected gossip message) penalising the sender; and a node
//! under a tiny connection budget that stays within it while the DHT still works; a
//! request that must dial its peer is not failed by another, failing dial of that peer.

use neuroshard_network::{
    start, BehaviourConfig, ConnectionBudget, NetworkConfig, NetworkEvent, NetworkHandle,
    NetworkKeypair, Protocol, ProviderInfo, Topic, Transport, Verdict,
};
use neuroshard_primitives::{Hash, LayerRange};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep, timeout, Instant};

const MODEL: Hash = Hash::repeat_byte(0x42);

async fn node(
    bootnodes: Vec<neuroshard_network::Multiaddr>,
) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    node_with(bootnodes, Default::default()).await
}

async fn node_with(
    bootnodes: Vec<neuroshard_network::Multiaddr>,
    behaviour: BehaviourConfig,
) -> (NetworkHandle, mpsc::Receiver<NetworkEvent>) {
    start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
        bootnodes,
        genesis: Hash::repeat_byte(1),
        behaviour,
        transport: Transport::Tcp,
    })
    .await
    .unwrap()
}

async fn p2p_addr(handle: &NetworkHandle) -> neuroshard_network::Multiaddr {
    handle.listen_addrs().await.unwrap()[0]
        .clone()
        .with_p2p(handle.local_peer_id())
        .unwrap()
}

fn info(handle: &NetworkHandle, shard: LayerRange) -> ProviderInfo {
    let account = neuroshard_primitives::crypto::keypair_from_uri("//Provider").unwrap();
    ProviderInfo::bound(&handle.local_peer_id(), &account, MODEL, vec![shard], 0)
}

/// Answers every request with the request reversed and accepts every gossip message,
/// forwarding gossip payloads to `seen`.
fn serve(
    handle: NetworkHandle,
    mut events: mpsc::Receiver<NetworkEvent>,
    seen: mpsc::UnboundedSender<Vec<u8>>,
) {
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            match event {
                NetworkEvent::Request { data, reply, .. } => {
                    handle.respond(reply, data.into_iter().rev().collect())
                }
                NetworkEvent::Gossip {
                    id, source, data, ..
                } => {
                    let verdict = if data == b"bad" {
                        Verdict::Reject
                    } else {
                        Verdict::Accept
                    };
                    handle.validate(id, source, verdict);
                    let _ = seen.send(data);
                }
                _ => {}
            }
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn four_nodes_discover_gossip_and_request() {
    let shards = [
        LayerRange { start: 0, end: 10 },
        LayerRange { start: 10, end: 20 },
        LayerRange { start: 20, end: 30 },
        LayerRange { start: 10, end: 20 },
    ];
    let (boot, boot_events) = node(vec![]).await;
    let boot_addr = boot.listen_addrs().await.unwrap()[0]
        .clone()
        .with_p2p(boot.local_peer_id())
        .unwrap();
    let mut handles = vec![boot.clone()];
    let mut seen = vec![];
    let (tx, rx) = mpsc::unbounded_channel();
    serve(boot, boot_events, tx);
    seen.push(rx);
    for _ in 1..4 {
        let (h, events) = node(vec![boot_addr.clone()]).await;
        let (tx, rx) = mpsc::unbounded_channel();
        serve(h.clone(), events, tx);
        handles.push(h);
        seen.push(rx);
    }
    for (h, shard) in handles.iter().zip(shards) {
        h.announce(info(h, shard));
    }

    // Every node sees all four providers through the DHT.
    let deadline = Instant::now() + Duration::from_secs(30);
    for h in &handles {
        loop {
            let found = h.providers(MODEL).await.unwrap();
            if found.len() == 4 {
                let mut layers: Vec<_> = found.iter().map(|r| r.info.shards[0]).collect();
                layers.sort();
                assert_eq!(layers, {
                    let mut s = shards.to_vec();
                    s.sort();
                    s
                });
                break;
            }
            assert!(
                Instant::now() < deadline,
                "only {} providers seen",
                found.len()
            );
            sleep(Duration::from_millis(300)).await;
        }
    }

    // Request-response between two non-bootnode peers (dialled through DHT addresses).
    let reply = timeout(
        Duration::from_secs(20),
        handles[1].request(
            handles[3].local_peer_id(),
            Protocol::Activations,
            vec![1, 2, 3],
        ),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(reply, vec![3, 2, 1]);

    // Gossip reaches every other node (the mesh forms within a few heartbeats).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut delivered = [false; 4];
    delivered[2] = true;
    while !delivered.iter().all(|d| *d) {
        handles[2].publish(
            Topic::Transactions,
            format!("hello {:?}", Instant::now()).into_bytes(),
        );
        sleep(Duration::from_millis(300)).await;
        for (i, rx) in seen.iter_mut().enumerate() {
            while let Ok(msg) = rx.try_recv() {
                if msg.starts_with(b"hello") {
                    delivered[i] = true;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "gossip delivered to {delivered:?}"
        );
    }

    // An oversized request is refused by the sender's codec before it leaves.
    let err = handles[1]
        .request(
            handles[2].local_peer_id(),
            Protocol::Sync,
            vec![0; Protocol::Sync.max_request() + 1],
        )
        .await;
    assert!(err.is_err());

    // A rejected gossip message penalises the peer that forwarded it.
    handles[3].publish(Topic::Blocks, b"bad".to_vec());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut penalised = false;
        for h in &handles[..3] {
            penalised |= h.peers().await.unwrap().iter().any(|p| p.score < 0);
        }
        if penalised {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "nobody penalised the sender of bad gossip"
        );
        sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_keeps_its_connection_budget_and_the_dht_still_works() {
    // The hub is everyone's bootnode but may hold only three connections.
    let budget = ConnectionBudget {
        max: 3,
        max_per_peer: 1,
        max_pending: 8,
        high_water: 2,
        low_water: 1,
        grace: Duration::ZERO,
    };
    let (hub, hub_events) = node_with(
        vec![],
        BehaviourConfig {
            connections: budget.clone(),
            ..Default::default()
        },
    )
    .await;
    let hub_addr = p2p_addr(&hub).await;
    let (tx, _rx) = mpsc::unbounded_channel();
    serve(hub.clone(), hub_events, tx);
    let mut handles = vec![hub.clone()];
    for _ in 0..5 {
        // Each newcomer also knows the previous one, so a full hub locks nobody out.
        let mut boot = vec![hub_addr.clone()];
        if handles.len() > 1 {
            boot.push(p2p_addr(handles.last().unwrap()).await);
        }
        let (h, events) = node(boot).await;
        let (tx, _rx) = mpsc::unbounded_channel();
        serve(h.clone(), events, tx);
        handles.push(h);
    }
    // Each node re-announces as the node's announce loop does: the hub has room for
    // few dials, so an announce can reach nobody, and only a later one replicates.
    for (i, h) in handles.iter().enumerate() {
        let i = i as u16;
        let (h, record) = (
            h.clone(),
            info(
                h,
                LayerRange {
                    start: i,
                    end: i + 1,
                },
            ),
        );
        tokio::spawn(async move {
            loop {
                h.announce(record.clone());
                sleep(Duration::from_secs(3)).await;
            }
        });
    }

    // Every other node finds all six providers, the hub's included; the hub never holds
    // more connections than its cap meanwhile. (The hub itself may not: a cap below the
    // gossipsub mesh leaves it no room to dial the DHT.)
    let deadline = Instant::now() + Duration::from_secs(90);
    for h in &handles[1..] {
        loop {
            let connected = hub.peers().await.unwrap().len();
            assert!(
                connected <= budget.max as usize,
                "hub has {connected} peers"
            );
            let found = h.providers(MODEL).await.unwrap().len();
            if found == handles.len() {
                break;
            }
            assert!(Instant::now() < deadline, "only {found} providers seen");
            sleep(Duration::from_millis(300)).await;
        }
    }
}

/// Requests of the two protocols in flight at once get their own answers: the two
/// request-response behaviours number their requests independently (both start at 1),
/// so the service must not confuse a sync request with a shard call of the same number.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_of_both_protocols_get_their_own_answers() {
    let (server, server_events) = node(vec![]).await;
    let (client, _client_events) = node(vec![p2p_addr(&server).await]).await;
    let (seen, _) = mpsc::unbounded_channel();
    serve(server.clone(), server_events, seen);
    let peer = server.local_peer_id();
    for round in 0u8..20 {
        let sync = client.request(peer, Protocol::Sync, vec![1, round]);
        let shard = client.request(peer, Protocol::Activations, vec![2, round, 9]);
        let (sync, shard) = tokio::join!(sync, shard);
        assert_eq!(
            sync.unwrap(),
            vec![round, 1],
            "sync answer of round {round}"
        );
        assert_eq!(
            shard.unwrap(),
            vec![9, round, 2],
            "shard answer of round {round}"
        );
    }
}

/// A request to a peer we are not connected to goes out at the peer's announced address
/// even while another dial of that peer is failing: here a dial at an address where
/// nothing answers (a TCP listener that never accepts, so the attempt hangs until the
/// transport gives up), as Kademlia's dials of a provider behind NAT at its LAN address
/// do. Left to request-response, the request would wait for that dial and fail with it
/// ("Failed to dial the requested peer").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_not_failed_by_another_dial_of_its_peer() {
    let (server, server_events) = node(vec![]).await;
    let (client, _client_events) = node(vec![]).await;
    let (seen, _) = mpsc::unbounded_channel();
    serve(server.clone(), server_events, seen);
    let peer = server.local_peer_id();
    let tarpit = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = tarpit.local_addr().unwrap().port();
    client.dial(
        format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
            .parse()
            .unwrap(),
    );
    client.add_address(peer, p2p_addr(&server).await);
    let answer = client
        .request(peer, Protocol::Activations, vec![1, 2, 3])
        .await;
    assert_eq!(answer.unwrap(), vec![3, 2, 1]);
}
