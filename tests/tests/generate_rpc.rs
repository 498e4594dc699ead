//! `neuroshard_generate` (JSON-RPC) and `neuroshard generate --rpc URL` against
//! `neuroshard dev`: greedy text is the same with and without speculative drafting and
//! through the CLI; the answer's receipts decode, carry valid worker and client
//! signatures for each of the three shards, and their extrinsic lands in a block; bad
//! parameters and a node that serves no shards get clear JSON-RPC errors.

use neuroshard_primitives::crypto::verify;
use neuroshard_primitives::{Receipt, SignedExtrinsic};
use neuroshard_tests::chain::parse_hash;
use neuroshard_tests::http::request;
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::tools::run_with_timeout;
use neuroshard_tests::{neuroshard_bin, wait_for, NodeProcess, RpcClient};
use parity_scale_codec::Decode;
use serde_json::{json, Value};
use std::process::Command;
use std::time::Duration;

/// Model fetch (cold cache: a ~90 MB wheel) and load.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
const TIMEOUT: Duration = Duration::from_secs(120);
const PROMPT: &str = "What is the capital of France?";

fn unhex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap().trim_start_matches("0x")).unwrap()
}

/// Waits for a block holding the extrinsic with hash `xt_hash`.
fn wait_for_extrinsic(rpc: &RpcClient, xt_hash: &Value) {
    let wanted = parse_hash(xt_hash).unwrap();
    let mut next = 1;
    wait_for("the receipts extrinsic in a block", TIMEOUT, || {
        while next <= rpc.best_number()? {
            let block = rpc.call(
                "chain_getBlock",
                json!([rpc.call("chain_getBlockHash", json!([next]))?]),
            )?;
            for xt in block["block"]["extrinsics"]
                .as_array()
                .into_iter()
                .flatten()
            {
                let xt = SignedExtrinsic::decode(&mut unhex(xt).as_slice())?;
                if xt.hash() == wanted {
                    return Ok(Some(()));
                }
            }
            next += 1;
        }
        Ok(None)
    })
    .unwrap();
}

#[test]
fn generate_over_rpc_and_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::dev(dir.path()).unwrap();
    let rpc = node.rpc();
    let api = node.api_port();
    wait_for("the model to load", MODEL_TIMEOUT, || {
        Ok((request(api, "GET", "/v1/models", None)?.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    // Named and positional parameters.
    let plain = rpc
        .call(
            "neuroshard_generate",
            json!({"prompt": PROMPT, "max_tokens": 8, "draft": "none"}),
        )
        .unwrap();
    let drafted = rpc
        .call("neuroshard_generate", json!([PROMPT, 8, "ngram"]))
        .unwrap();
    let text = plain["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{plain}");
    assert_eq!(
        drafted["text"], plain["text"],
        "greedy: drafting changes nothing"
    );
    assert_eq!(
        plain["draft"],
        json!({"mode": "none", "drafted": 0, "accepted": 0})
    );
    assert_eq!(drafted["draft"]["mode"], "ngram");
    let tokens = plain["tokens"].as_u64().unwrap();
    assert!((1..=8).contains(&tokens), "{plain}");
    let usage = &plain["usage"];
    assert_eq!(usage["completion_tokens"].as_u64(), Some(tokens));
    assert_eq!(
        usage["total_tokens"].as_u64().unwrap(),
        usage["prompt_tokens"].as_u64().unwrap() + tokens
    );

    // One receipt per shard, signed by the dev worker as worker and as client.
    let receipts = plain["receipts"].as_array().unwrap();
    let layers: Vec<&str> = receipts
        .iter()
        .map(|r| r["layers"].as_str().unwrap())
        .collect();
    assert_eq!(layers, ["0-10", "10-20", "20-30"], "{plain}");
    for r in receipts {
        let receipt = Receipt::decode(&mut unhex(&r["encoded"]).as_slice()).unwrap();
        assert_eq!(receipt.body.layers.to_string(), r["layers"]);
        assert_eq!(
            receipt.body.position_end,
            r["position_end"].as_u64().unwrap() as u32
        );
        assert!(receipt.body.tokens() as u64 >= tokens, "{r}");
        for signed in receipt.signed_messages() {
            assert!(
                verify(signed.signature, &signed.message, signed.signer),
                "{r}"
            );
        }
    }
    wait_for_extrinsic(&rpc, &plain["receipts_extrinsic"]);

    // The CLI prints the same text.
    let mut cli = Command::new(neuroshard_bin());
    cli.args(["generate", "--rpc", &node.http_url(), "--prompt", PROMPT])
        .args(["--max-tokens", "8", "--draft", "none"]);
    let out = run_with_timeout(cli, TIMEOUT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim_end_matches('\n'),
        text
    );
    assert!(stderr.contains("3 receipts submitted"), "{stderr}");

    // Bad parameters.
    for (params, needle) in [
        (json!({"prompt": PROMPT, "draft": "bogus"}), "unknown draft"),
        (json!({"prompt": PROMPT, "draft": "model"}), "ngram"),
        (json!({"prompt": PROMPT, "max_tokens": 0}), "max_tokens"),
        (json!({"prompt": PROMPT, "temperature": 9}), "temperature"),
        (json!({"prompt": "  "}), "prompt"),
        (json!({"max_tokens": 4}), "prompt"),
    ] {
        let err = rpc
            .try_call("neuroshard_generate", params.clone())
            .unwrap()
            .unwrap_err();
        assert_eq!(err.code, -32602, "{params}: {err}");
        assert!(err.to_string().contains(needle), "{params}: {err}");
    }
}

#[test]
fn a_node_without_shards_says_it_cannot_generate() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 1000, 10).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let err = node
        .rpc()
        .try_call("neuroshard_generate", json!({"prompt": PROMPT}))
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code, 1020, "{err}");
    assert!(err.message.contains("serves no model shards"), "{err}");

    let mut cli = Command::new(neuroshard_bin());
    cli.args(["generate", "--rpc", &node.http_url(), "--prompt", PROMPT]);
    let out = run_with_timeout(cli, TIMEOUT).unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("serves no model shards"), "{stderr}");
}
