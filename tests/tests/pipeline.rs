//! Pipelined micro-batches across nodes (issue 26): a generation on Alice (layers 0-10)
//! runs through Bob's 10-20 and Charlie's 20-30 in other processes, each hop's reply
//! held back 20 ms (a slow path). Sessions served at once, their requests to each hop
//! batched into shared forward calls and pipelined (`node/serving/src/outbox.rs`), give
//! exactly the text each gets when served alone, and Bob's shard ran several of them
//! in one step.

use neuroshard_tests::generation::complete_streamed;
use neuroshard_tests::http::request;
use neuroshard_tests::spec::write_spec_with;
use neuroshard_tests::{wait_for, NodeProcess};
use std::time::Duration;

const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
const MAX_TOKENS: usize = 16;
const PROMPTS: [&str; 6] = [
    "The capital of France is",
    "Once upon a time",
    "1, 2, 3, 4,",
    "The best way to learn a language is to",
    "def fibonacci(n):",
    "Water boils at",
];

fn complete(api_port: u16, prompt: &str) -> anyhow::Result<String> {
    let (tx, _rx) = std::sync::mpsc::channel();
    complete_streamed(api_port, prompt, MAX_TOKENS, tx)
}

/// The value of the `/metrics` line `name VALUE` on `port` (0 when absent).
fn metric(port: u16, name: &str) -> u64 {
    let body = request(port, "GET", "/metrics", None)
        .map(|r| r.body)
        .unwrap_or_default();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

#[test]
fn concurrent_sessions_over_three_processes_get_their_lone_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |_| {}).unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "0-10").unwrap();
    let slow = ["--fault-reply-delay-ms", "20", "--bootnodes", &boot];
    let hop = |name: &str, key: &str, shards: &str| {
        let mut args = vec!["--key", key, "--shards", shards];
        args.extend_from_slice(&slow);
        NodeProcess::run_named(&spec, dir.path(), name, &args).unwrap()
    };
    let b = hop("b", "//Bob", "10-20");
    let c = hop("c", "//Charlie", "20-30");
    for node in [&a, &b, &c] {
        node.wait_serving(MODEL_TIMEOUT);
    }
    let api = a.api_port();
    // Alone, one after the other (the first waits until Alice sees both providers).
    let first = wait_for("a route through Bob and Charlie", MODEL_TIMEOUT, || {
        Ok(complete(api, PROMPTS[0]).ok())
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", a.log_text()));
    let mut alone = vec![first];
    for prompt in &PROMPTS[1..] {
        alone.push(complete(api, prompt).unwrap_or_else(|e| panic!("{e}\n{}", a.log_text())));
    }
    assert!(b.log_text().contains("serving a new session"));
    assert!(c.log_text().contains("serving a new session"));
    // All at once.
    let together: Vec<String> = std::thread::scope(|s| {
        let running: Vec<_> = PROMPTS
            .iter()
            .map(|p| s.spawn(move || complete(api, p)))
            .collect();
        running
            .into_iter()
            .map(|h| {
                h.join()
                    .expect("a client thread")
                    .unwrap_or_else(|e| panic!("{e}\n{}", a.log_text()))
            })
            .collect()
    });
    for ((prompt, lone), batched) in PROMPTS.iter().zip(&alone).zip(&together) {
        assert_eq!(lone, batched, "prompt {prompt:?}");
    }
    let peak = metric(b.api_port(), "neuroshard_batch_sessions_peak");
    assert!(peak >= 2, "Bob never ran two sessions in one step ({peak})");
}
