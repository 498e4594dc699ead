//! One simulated node of `bench sim`: a real network service ([`neuroshard_network::start`]:
//! the node's own event loop, behaviour and connection manager) over the in-memory
//! transport, listening on `/memory/<index + 1>`, and a task standing in for the node
//! behind it, which accepts every gossip message (so that gossipsub forwards it) and
//! reports its arrival to the simulation.

use libp2p::Multiaddr;
use neuroshard_network::{
    BehaviourConfig, NetworkConfig, NetworkEvent, NetworkHandle, NetworkKeypair, Transport, Verdict,
};
use neuroshard_primitives::Hash;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// The simulated chain (gossip topics are per chain).
const GENESIS: Hash = Hash::repeat_byte(0x51);

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

/// Node `index`'s listen address.
pub fn addr(index: usize) -> Multiaddr {
    Multiaddr::empty().with(libp2p::multiaddr::Protocol::Memory(index as u64 + 1))
}

/// A running simulated node; dropping it (and every clone of its handle) stops it.
pub struct SimNode {
    pub handle: NetworkHandle,
    events: JoinHandle<()>,
}

impl Drop for SimNode {
    fn drop(&mut self) {
        // The event task holds a handle too: the service stops once it is gone.
        self.events.abort();
    }
}

/// Starts node `index`'s network service (connections authenticated with noise, or
/// with plaintext's bare key exchange). The first four bytes of every gossip message
/// are its tag: each arrival is reported on `received` as (tag, arrival time).
pub async fn spawn(
    index: usize,
    key: NetworkKeypair,
    config: &BehaviourConfig,
    noise: bool,
    received: mpsc::UnboundedSender<(u32, Instant)>,
) -> anyhow::Result<SimNode> {
    let (handle, mut events) = neuroshard_network::start(NetworkConfig {
        keypair: key,
        listen: vec![addr(index)],
        bootnodes: vec![],
        genesis: GENESIS,
        behaviour: config.clone(),
        transport: Transport::Memory { noise },
    })
    .await?;
    let validator = handle.clone();
    let events = tokio::spawn(async move {
        while let Some(event) = events.recv().await {
            let NetworkEvent::Gossip {
                id, source, data, ..
            } = event
            else {
                continue;
            };
            let at = Instant::now();
            validator.validate(id, source, Verdict::Accept);
            if let Some(&[a, b, c, d]) = data.get(..4) {
                let _ = received.send((u32::from_le_bytes([a, b, c, d]), at));
            }
        }
    });
    Ok(SimNode { handle, events })
}
