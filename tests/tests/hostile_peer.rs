//! A hostile peer against a real node process: undecodable shard calls and sync requests,
//! and garbage on every gossip topic. The node drops each message with a log line,
//! penalises the peer until it bans it, and keeps producing blocks and answering RPC.

use neuroshard_network::{start, NetworkConfig, NetworkKeypair, Protocol, Topic, Transport};
use neuroshard_tests::chain::parse_hash;
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::json;
use std::time::Duration;

#[test]
fn garbage_from_a_peer_is_dropped_penalised_and_banned() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 500, 100).unwrap();
    let node = NodeProcess::run_on_loopback(
        &spec,
        &dir.path().join("node"),
        &dir.path().join("node.log"),
        &["--key", "//Alice", "--validator"],
    )
    .unwrap();
    let addr = node.wait_p2p_addr().unwrap();
    let genesis = parse_hash(&node.rpc().call("chain_getBlockHash", json!([0])).unwrap()).unwrap();
    let peer_id: neuroshard_network::PeerId = addr.rsplit('/').next().unwrap().parse().unwrap();

    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let (hostile, _events) = start(NetworkConfig {
            keypair: NetworkKeypair::generate_ed25519(),
            listen: vec!["/ip4/127.0.0.1/tcp/0".parse().unwrap()],
            bootnodes: vec![addr.parse().unwrap()],
            genesis,
            behaviour: Default::default(),
            transport: Transport::Tcp,
        })
        .await
        .unwrap();
        // Undecodable requests: no answer, a penalty each.
        for protocol in [Protocol::Activations, Protocol::Sync] {
            let answer = hostile.request(peer_id, protocol, vec![0xff; 64]).await;
            assert!(answer.is_err(), "{protocol:?} answered garbage: {answer:?}");
        }
        // Garbage gossip on every topic until the node bans us.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let mut round = 0u32;
        while !node.log_text().contains("peer banned") {
            assert!(
                tokio::time::Instant::now() < deadline,
                "never banned:\n{}",
                node.log_text()
            );
            for topic in Topic::ALL {
                hostile.publish(topic, [round.to_le_bytes().as_slice(), b"garbage"].concat());
            }
            round += 1;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let log = node.log_text();
    assert!(log.contains("undecodable request"), "{log}");
    assert!(log.contains("peer penalised"), "{log}");
    // Still alive and producing blocks.
    let now = node.rpc().best_number().unwrap();
    wait_for("blocks after the attack", Duration::from_secs(20), || {
        Ok((node.rpc().best_number()? > now + 2).then_some(()))
    })
    .unwrap();
}
