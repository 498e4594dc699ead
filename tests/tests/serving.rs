//! Serving the real model end to end: a validator that serves every shard of
//! SmolLM2-135M answers OpenAI-style chat completions (plain and streamed), bills each
//! generation with receipts of its three shards (signed as worker, counter-signed as
//! client, paid from its escrow), proves it holds the model every minute, and is paid
//! `layer_tokens x 0.1 / 30 + uptime_credit x 1.0` NSHD at the epoch boundary (each
//! minute's credit is its proven capacity over the chain's reference, at most one).

use neuroshard_tests::chain::{address, amount};
use neuroshard_tests::http::request;
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::{json, Value};
use std::time::Duration;

const UNIT: u128 = 1_000_000_000_000;

/// Model fetch (cold cache: a ~90 MB wheel) and load.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// A wall-clock minute boundary, then an epoch boundary.
const UPTIME_TIMEOUT: Duration = Duration::from_secs(200);

fn rewards_of(rpc: &neuroshard_tests::RpcClient, number: u64, who: &str) -> Option<Value> {
    let rewards = rpc.call("neuroshard_rewards", json!([number])).ok()?;
    rewards
        .as_array()?
        .iter()
        .find(|r| r["account"] == who)
        .cloned()
}

#[test]
fn serving_node_earns_for_tokens_and_proven_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 1000, 10).unwrap();
    let node =
        NodeProcess::validator_serving(&spec, dir.path(), "node.log", Some("0-10,10-20,20-30"))
            .unwrap();
    let rpc = node.rpc();
    let api = node.api_port();
    let alice = address("//Alice");

    wait_for("the model to load", MODEL_TIMEOUT, || {
        let r = request(api, "GET", "/v1/models", None)?;
        Ok((r.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    let body = json!({
        "messages": [{"role": "user", "content": "What is the capital of France?"}],
        "max_tokens": 12,
        "temperature": 0,
    });
    let r = request(api, "POST", "/v1/chat/completions", Some(&body.to_string())).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let text = v["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{v}");
    assert!(v["usage"]["completion_tokens"].as_u64().unwrap() >= 1);

    let mut streamed = body.clone();
    streamed["stream"] = true.into();
    let r = request(
        api,
        "POST",
        "/v1/chat/completions",
        Some(&streamed.to_string()),
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.headers.contains("text/event-stream"), "{}", r.headers);
    let chunks: Vec<Value> = r
        .body
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter(|d| *d != "[DONE]")
        .map(|d| serde_json::from_str(d).unwrap())
        .collect();
    let streamed_text: String = chunks
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert_eq!(streamed_text, text, "greedy streaming gives the same text");
    assert!(r.body.trim_end().ends_with("data: [DONE]"));

    // Tokens: both generations' receipts are paid at an epoch boundary, by the formula.
    let (mut paid_tokens, mut paid_uptime) = (false, false);
    let mut seen = 0;
    wait_for("token and uptime rewards", UPTIME_TIMEOUT, || {
        let best = rpc.best_number()?;
        while seen < best {
            seen += 1;
            if let Some(r) = rewards_of(&rpc, seen, &alice) {
                let layer_tokens = r["layer_tokens"].as_u64().unwrap() as u128;
                let minutes = r["uptime_minutes"].as_u64().unwrap() as u128;
                // Each minute pays the share of 1 NSHD its proven capacity earned.
                let credit = r["uptime_credit"].as_u64().unwrap() as u128;
                assert!(credit <= minutes * 1_000_000, "{r}");
                assert_eq!(
                    amount(&r["reward"]),
                    layer_tokens * (UNIT / 10) / 30 + credit * UNIT / 1_000_000,
                    "{r}"
                );
                if layer_tokens > 0 {
                    // Three shards of ten layers each ran every position.
                    assert_eq!(layer_tokens, 10 * r["tokens"].as_u64().unwrap() as u128);
                    paid_tokens = true;
                }
                paid_uptime |= minutes >= 1;
                if paid_tokens && paid_uptime {
                    return Ok(Some(()));
                }
            }
        }
        Ok(None)
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
}
