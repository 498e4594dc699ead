//! Network services over the in-memory transport, as `bench sim` runs them: joining
//! through known peer addresses ([`NetworkHandle::add_address`] and
//! [`NetworkHandle::bootstrap`]), closest-peer walks and record lookups with their query
//! statistics, the connection and routing-table figures, and gossip, with plaintext and
//! with noise.

use neuroshard_network::records::record_key;
use neuroshard_network::{
    start, NetworkConfig, NetworkEvent, NetworkHandle, NetworkKeypair, ProviderInfo, Topic,
    Transport, Verdict,
};
use neuroshard_primitives::{Hash, LayerRange};
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::{sleep, Instant};

const MODEL: Hash = Hash::repeat_byte(0x42);

/// Starts a service on a free `/memory/` port whose gossip is accepted and reported on
/// `seen` as (`index`, message).
async fn node(
    noise: bool,
    index: usize,
    seen: mpsc::UnboundedSender<(usize, Vec<u8>)>,
) -> NetworkHandle {
    let (handle, mut events) = start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/memory/0".parse().unwrap()],
        bootnodes: vec![],
        genesis: Hash::repeat_byte(1),
        behaviour: Default::default(),
        transport: Transport::Memory { noise },
    })
    .await
    .unwrap();
    let validator = handle.clone();
    tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            if let NetworkEvent::Gossip {
                id, source, data, ..
            } = event
            {
                validator.validate(id, source, Verdict::Accept);
                let _ = seen.send((index, data));
            }
        }
    });
    handle
}

async fn network(noise: bool) {
    let (seen_tx, mut seen) = mpsc::unbounded_channel();
    let mut nodes: Vec<NetworkHandle> = vec![];
    for i in 0..5 {
        let handle = node(noise, i, seen_tx.clone()).await;
        // Each newcomer knows the one before it, by peer id and address.
        if let Some(previous) = i.checked_sub(1).map(|j: usize| &nodes[j]) {
            let addr = previous.listen_addrs().await.unwrap()[0].clone();
            assert!(addr.to_string().starts_with("/memory/"), "{addr}");
            handle.add_address(previous.local_peer_id(), addr);
            handle.bootstrap();
        }
        nodes.push(handle);
    }

    // The last node's walk for the first one's id finds it.
    let first = nodes[0].local_peer_id();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let closest = nodes[4].closest_peers(first.to_bytes()).await.unwrap();
        if closest.peers.contains(&first) {
            assert!(closest.stats.requests > 0);
            break;
        }
        assert!(Instant::now() < deadline, "{closest:?}");
        sleep(Duration::from_millis(300)).await;
    }
    let stats = nodes[4].stats().await.unwrap();
    assert!(
        stats.connections > 0 && stats.routing_table >= 2,
        "{stats:?}"
    );

    // A provider's signed record is found by a peer; an unknown key is not.
    let provider = &nodes[1];
    let account = neuroshard_primitives::crypto::keypair_from_uri("//Provider").unwrap();
    provider.announce(ProviderInfo::bound(
        &provider.local_peer_id(),
        &account,
        MODEL,
        vec![LayerRange { start: 0, end: 8 }],
        0,
    ));
    let key = record_key(&MODEL, &provider.local_peer_id());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let lookup = nodes[3].get_record(key.clone()).await.unwrap();
        if let Some(value) = lookup.value {
            assert!(neuroshard_network::records::acceptable(&key, &value));
            break;
        }
        assert!(Instant::now() < deadline, "record never found");
        sleep(Duration::from_millis(300)).await;
    }
    let missing = record_key(&Hash::repeat_byte(9), &provider.local_peer_id());
    let lookup = nodes[3].get_record(missing).await.unwrap();
    assert!(
        lookup.value.is_none() && lookup.stats.requests > 0,
        "{lookup:?}"
    );

    // Gossip from one node reaches the others (the mesh forms within a few heartbeats).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut delivered = vec![false; nodes.len()];
    delivered[2] = true;
    while !delivered.iter().all(|d| *d) {
        let hello = format!("hello {:?}", Instant::now()).into_bytes();
        nodes[2].publish(Topic::Transactions, hello);
        sleep(Duration::from_millis(300)).await;
        while let Ok((index, data)) = seen.try_recv() {
            delivered[index] |= data.starts_with(b"hello");
        }
        assert!(
            Instant::now() < deadline,
            "gossip delivered to {delivered:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plaintext_memory_network_finds_peers_records_and_gossips() {
    network(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn noise_memory_network_finds_peers_records_and_gossips() {
    network(true).await;
}
