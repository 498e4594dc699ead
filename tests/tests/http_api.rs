//! The HTTP API of `neuroshard dev`: the explorer page and its JSON, Prometheus
//! metrics, and OpenAI-style JSON errors for bad requests.

use neuroshard_tests::http::request;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::Value;
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(60);

#[test]
fn explorer_metrics_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let mut node = NodeProcess::dev(dir.path()).unwrap();
    let rpc = node.rpc();
    wait_for("block #2", TIMEOUT, || {
        Ok((rpc.best_number()? >= 2).then_some(()))
    })
    .unwrap();
    let api = node.api_port();

    let page = request(api, "GET", "/", None).unwrap();
    assert_eq!(page.status, 200);
    assert!(
        page.headers.contains("content-type: text/html"),
        "{}",
        page.headers
    );
    assert!(page.body.contains("NeuroShard explorer"));

    let overview = request(api, "GET", "/api/overview", None).unwrap();
    assert_eq!(overview.status, 200);
    let overview: Value = serde_json::from_str(&overview.body).unwrap();
    let blocks = overview["blocks"].as_array().unwrap();
    assert!(blocks.len() >= 2, "{overview}");
    assert_eq!(blocks[0]["hash"], overview["bestHash"]);
    // The author, decoded from the header's digest: the dev chain's only validator.
    assert_eq!(
        blocks[0]["author"],
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
    );
    let shards = overview["shards"].as_array().unwrap();
    let layers: Vec<&str> = shards.iter().filter_map(|s| s["layers"].as_str()).collect();
    assert_eq!(
        layers,
        ["0-10", "10-20", "20-30"],
        "the dev worker serves every shard"
    );

    let metrics = request(api, "GET", "/metrics", None).unwrap();
    assert_eq!(metrics.status, 200);
    let height = metric(&metrics.body, "neuroshard_best_block_height");
    assert!(height >= 2, "{}", metrics.body);

    for (method, path, body, status, needle) in [
        ("GET", "/nope", None, 404, "unknown endpoint"),
        (
            "POST",
            "/v1/chat/completions",
            Some("{not json"),
            400,
            "not valid JSON",
        ),
        (
            "POST",
            "/v1/completions",
            Some("[1, 2]"),
            400,
            "JSON object",
        ),
        (
            "GET",
            "/v1/chat/completions",
            None,
            405,
            "GET is not allowed on /v1/chat/completions",
        ),
    ] {
        let r = request(api, method, path, body).unwrap();
        assert_eq!(r.status, status, "{method} {path}: {}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        let message = v["error"]["message"].as_str().unwrap();
        assert!(message.contains(needle), "{message}");
    }
    assert!(node.is_running());
}

#[test]
fn a_node_serving_no_shards_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let spec = neuroshard_tests::spec::write_fast_dev_spec(dir.path(), 1000, 10).unwrap();
    let node = NodeProcess::validator(&spec, dir.path(), "node.log").unwrap();
    let body = r#"{"messages": [{"role": "user", "content": "hi"}]}"#;
    let r = request(node.api_port(), "POST", "/v1/chat/completions", Some(body)).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let message = v["error"]["message"].as_str().unwrap();
    assert!(message.contains("serves no model shards"), "{message}");
}

/// Admission control: with `--max-generations 1`, while one generation streams, another
/// is refused at once as busy (HTTP 503 with Retry-After, JSON-RPC error 1021) instead
/// of queueing; the slot comes back when the first client goes away (its generation
/// stops).
#[test]
fn generations_beyond_the_maximum_are_refused_as_busy() {
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(dir.path(), &["--max-generations", "1", "--max-batch", "4"]);
    let port = node.api_port();

    // A long greedy generation (counting goes on past any end of text), streamed.
    let long = r#"{"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4096, "temperature": 0, "stream": true}"#;
    let first = first_streamed_piece(post(port, long, None));

    let short = r#"{"prompt": "Hello", "max_tokens": 4}"#;
    let busy = request(port, "POST", "/v1/completions", Some(short)).unwrap();
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(busy.headers.contains("retry-after: 1"), "{}", busy.headers);
    let v: Value = serde_json::from_str(&busy.body).unwrap();
    assert_eq!(v["error"]["type"], "server_busy", "{v}");
    let rpc = node
        .rpc()
        .try_call("neuroshard_generate", serde_json::json!(["Hello", 4]))
        .unwrap();
    assert_eq!(rpc.unwrap_err().code, 1021);
    let metrics = request(port, "GET", "/metrics", None).unwrap();
    assert!(
        metrics
            .body
            .contains("neuroshard_generations_refused_busy_total 2"),
        "{}",
        metrics.body
    );

    // --max-batch reaches the shards: the prompt's prefill ran in chunks of at most 4.
    let peak = metric(&metrics.body, "neuroshard_batch_positions_peak");
    assert_eq!(peak, 4, "{}", metrics.body);

    // The first client goes away: its generation stops and the slot is free again.
    drop(first);
    wait_for("the generation slot to come back", TIMEOUT, || {
        let r = request(port, "POST", "/v1/completions", Some(short))?;
        Ok((r.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
}

/// Continuous batching, end to end: while one client streams a long generation, a short
/// completion from another client is served at once, in the same batched steps (today's
/// attack: one generation at a time made the short one wait for the whole long one), and
/// `/metrics` shows the queue and the batch.
#[test]
fn a_short_completion_is_not_held_behind_a_long_one() {
    use std::io::Read;
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(dir.path(), &[]);
    let port = node.api_port();
    let long = r#"{"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4096, "temperature": 0, "stream": true}"#;
    let mut first = first_streamed_piece(post(port, long, None));
    let short = r#"{"prompt": "Hello", "max_tokens": 4, "temperature": 0}"#;
    let r = request(port, "POST", "/v1/completions", Some(short)).unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    // The long generation is still running: its stream goes on after the short one.
    let (mut seen, mut buf) = (Vec::new(), [0u8; 4096]);
    while seen.iter().filter(|&&b| b == b'\n').count() < 8 {
        let n = first.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the long stream ended before the short one came back"
        );
        seen.extend_from_slice(&buf[..n]);
    }
    let text = String::from_utf8_lossy(&seen);
    assert!(
        !text.contains("[DONE]"),
        "the long one had finished: {text}"
    );
    let metrics = request(port, "GET", "/metrics", None).unwrap().body;
    assert!(
        metrics.contains("neuroshard_batch_queue_length"),
        "{metrics}"
    );
    let peak = metric(&metrics, "neuroshard_batch_sessions_peak");
    assert!(peak >= 2, "both ran in one step: {peak}\n{metrics}");
}

/// The value of the `/metrics` line `name VALUE` (an integer gauge or counter).
fn metric(metrics: &str, name: &str) -> u64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {metrics}"))
}

/// `neuroshard dev --base-path BASE EXTRA...`, once its model is loaded.
fn dev_node(base: &std::path::Path, extra: &[&str]) -> NodeProcess {
    let mut args = vec!["dev", "--base-path", base.to_str().unwrap()];
    args.extend_from_slice(extra);
    std::fs::create_dir_all(base).unwrap();
    let node = NodeProcess::start(&args, &base.join("node.log")).unwrap();
    wait_for("the model to load", Duration::from_secs(600), || {
        Ok(node.log_text().contains("model loaded").then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
    node
}

/// Opens a connection and sends `POST /v1/completions` with `body` (and
/// `Authorization: Bearer key`), leaving the response to be read.
fn post(port: u16, body: &str, key: Option<&str>) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: Bearer {k}\r\n"));
    write!(
        stream,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n{auth}\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

/// `stream` (a streamed completion) once its first piece of text has arrived with
/// status 200: the generation is running.
fn first_streamed_piece(mut stream: std::net::TcpStream) -> std::net::TcpStream {
    use std::io::Read;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&seen).contains("\"text\"") {
        let n = stream.read(&mut buf).unwrap();
        assert!(
            n > 0,
            "the stream ended early: {}",
            String::from_utf8_lossy(&seen)
        );
        seen.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&seen).starts_with("HTTP/1.1 200"));
    stream
}

/// Sends a completion with `Authorization: Bearer key` (none when `key` is `None`).
fn complete_with_key(port: u16, key: Option<&str>) -> neuroshard_tests::http::Response {
    use std::io::Read;
    let body = r#"{"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}"#;
    let mut stream = post(port, body, key);
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    neuroshard_tests::http::Response {
        status: head.split_whitespace().nth(1).unwrap().parse().unwrap(),
        headers: head.to_ascii_lowercase(),
        body: body.to_string(),
    }
}

/// API keys: with `--api-keys`, a request without a key or with a wrong one is refused
/// (401); a key whose account has no escrow gets 402 before any work is done; once that
/// account locks escrow, its key's generations are billed to it (the receipts name it
/// as the client). Exposing the API without keys is refused at startup.
#[test]
fn api_keys_bill_each_key_to_its_account() {
    use neuroshard_primitives::{Call, PonwCall};
    use neuroshard_tests::chain;
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("node");
    let keys = dir.path().join("keys");
    let (bob_key, charlie_key) = (
        "sk-bob-000000000000000000000",
        "sk-charlie-0000000000000000000",
    );
    std::fs::write(
        &keys,
        format!("# test keys\n{bob_key} //Bob\n{charlie_key} //Charlie\n"),
    )
    .unwrap();

    // Listening beyond loopback without keys: refused.
    let open = NodeProcess::start(
        &[
            "dev",
            "--base-path",
            base.to_str().unwrap(),
            "--api-listen",
            "0.0.0.0",
        ],
        &dir.path().join("open.log"),
    );
    assert!(
        open.is_err(),
        "a node exposing its API without keys started"
    );
    let log = std::fs::read_to_string(dir.path().join("open.log")).unwrap();
    assert!(log.contains("give --api-keys"), "{log}");

    let node = dev_node(
        &base,
        &[
            "--api-keys",
            keys.to_str().unwrap(),
            "--max-generations-per-key",
            "1",
        ],
    );
    let port = node.api_port();

    for key in [None, Some("sk-nobody-00000000000000000000")] {
        let r = complete_with_key(port, key);
        assert_eq!(r.status, 401, "{key:?}: {}", r.body);
        assert!(r.body.contains("invalid_api_key"), "{}", r.body);
    }
    let r = complete_with_key(port, Some(charlie_key));
    assert_eq!(r.status, 402, "{}", r.body);
    assert!(r.body.contains("escrow"), "{}", r.body);

    // Bob locks escrow (enough for a 4096-token generation below); his key's
    // generation is billed to him.
    let rpc = node.rpc();
    let deposit = Call::Ponw(PonwCall::DepositEscrow {
        amount: 2000 * neuroshard_primitives::UNIT,
    });
    chain::submit_and_wait(&rpc, "//Bob", deposit, TIMEOUT).unwrap();
    let from = rpc.best_number().unwrap();
    let r = complete_with_key(port, Some(bob_key));
    assert_eq!(r.status, 200, "{}", r.body);
    let bob = chain::address("//Bob");
    let mut next = from;
    wait_for("the generation's receipts, billed to Bob", TIMEOUT, || {
        let events = rpc.new_events(&mut next)?;
        let accepted: Vec<_> = events
            .iter()
            .filter(|e| e["event"] == "ReceiptAccepted")
            .collect();
        if accepted.is_empty() {
            return Ok(None);
        }
        assert!(
            accepted.iter().all(|e| e["client"] == bob.as_str()),
            "{accepted:?}"
        );
        Ok(Some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    // One key runs at most its share (here 1) at once: while Bob's long generation
    // streams, his next request gets 429 with Retry-After, not the node's 503; his slot
    // comes back when that client goes away.
    let long = r#"{"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4096, "temperature": 0, "stream": true}"#;
    let first = first_streamed_piece(post(port, long, Some(bob_key)));
    let r = complete_with_key(port, Some(bob_key));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.headers.contains("retry-after: 1"), "{}", r.headers);
    assert!(r.body.contains("rate_limit_exceeded"), "{}", r.body);
    drop(first);
    wait_for("Bob's slot to come back", TIMEOUT, || {
        let r = complete_with_key(port, Some(bob_key));
        Ok((r.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
}

/// The value of a response's `Retry-After` header, in seconds.
fn retry_after(r: &neuroshard_tests::http::Response) -> u64 {
    r.headers
        .lines()
        .find_map(|l| l.strip_prefix("retry-after:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After in {}", r.headers))
}

/// Tokens per minute per API key: with `--max-tokens-per-minute-per-key 1`, Bob's first
/// completion runs from his full bucket and leaves it in debt by its prompt and
/// completion tokens, so his next request gets 429 with a Retry-After of at least a
/// minute per token owed (the bucket refills one token a minute), not the node's 503.
#[test]
fn a_key_over_its_tokens_per_minute_is_told_when_to_come_back() {
    use neuroshard_primitives::{Call, PonwCall};
    use neuroshard_tests::chain;
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    let bob_key = "sk-bob-000000000000000000000";
    std::fs::write(&keys, format!("{bob_key} //Bob\n")).unwrap();
    let node = dev_node(
        &dir.path().join("node"),
        &[
            "--api-keys",
            keys.to_str().unwrap(),
            "--max-tokens-per-minute-per-key",
            "1",
        ],
    );
    let port = node.api_port();
    let deposit = Call::Ponw(PonwCall::DepositEscrow {
        amount: 100 * neuroshard_primitives::UNIT,
    });
    chain::submit_and_wait(&node.rpc(), "//Bob", deposit, TIMEOUT).unwrap();
    let first = complete_with_key(port, Some(bob_key));
    assert_eq!(first.status, 200, "{}", first.body);
    let usage: Value = serde_json::from_str(&first.body).unwrap();
    let used = usage["usage"]["total_tokens"].as_u64().unwrap();
    assert!(used >= 2, "{usage}");

    let r = complete_with_key(port, Some(bob_key));
    assert_eq!(r.status, 429, "{}", r.body);
    assert!(r.body.contains("rate_limit_exceeded"), "{}", r.body);
    assert!(r.body.contains("tokens per minute"), "{}", r.body);
    // The bucket owes `used - 1` tokens and needs 1 more; it refills 1 a minute (a
    // slower first completion would only have refilled part of one).
    let wait = retry_after(&r);
    assert!(
        wait > (used - 1) * 60 && wait <= (used + 1) * 60,
        "Retry-After {wait} for {used} tokens used"
    );
}

/// The KV budget: with `--max-kv-mib 1` (22 positions of the model's 46 KB), a long
/// generation runs alone (one larger than the whole budget is admitted only when
/// nothing else holds any), and while it runs a short one is refused at once with 503
/// and Retry-After instead of growing the caches; it runs once the first client goes
/// away. Then the prefix caches at work through the API (`/metrics`).
#[test]
fn generations_beyond_the_kv_budget_wait_outside_with_503() {
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(dir.path(), &["--max-kv-mib", "1"]);
    let port = node.api_port();
    let long = r#"{"prompt": "1, 2, 3, 4, 5, 6, 7, 8,", "max_tokens": 4096, "temperature": 0, "stream": true}"#;
    let first = first_streamed_piece(post(port, long, None));
    let short = r#"{"prompt": "Hello", "max_tokens": 4}"#;
    let r = request(port, "POST", "/v1/completions", Some(short)).unwrap();
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(retry_after(&r), 1);
    assert!(r.body.contains("KV cache budget"), "{}", r.body);
    drop(first);
    wait_for("the KV budget to come back", TIMEOUT, || {
        let r = request(port, "POST", "/v1/completions", Some(short))?;
        Ok((r.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    // The prefix caches: a prompt sent again (by the same payer, here the node) reuses
    // its whole blocks on each of the three shards, as `/metrics` counts.
    let text = "NeuroShard splits a language model into shards of consecutive layers. \
                Each node serves one shard, and hidden states flow from node to node. \
                Every shard's work is paid by receipts that validators check.";
    let body = format!(r#"{{"prompt": "{text}", "max_tokens": 2, "temperature": 0}}"#);
    let mut answers = Vec::new();
    for _ in 0..2 {
        let r = request(port, "POST", "/v1/completions", Some(&body)).unwrap();
        assert_eq!(r.status, 200, "{}", r.body);
        let v: Value = serde_json::from_str(&r.body).unwrap();
        answers.push(v["choices"][0]["text"].clone());
    }
    assert_eq!(answers[0], answers[1]);
    let metrics = request(port, "GET", "/metrics", None).unwrap().body;
    let hits = metric(&metrics, "neuroshard_prefix_cache_hit_positions");
    assert!(hits >= 3 * 16 && hits.is_multiple_of(16), "{metrics}");
    let budget = metric(&metrics, "neuroshard_prefix_cache_budget_bytes");
    assert_eq!(budget, (3 * 64) << 20);
}

/// Peak resident memory a dev node with `--max-kv-mib 512` and otherwise default limits
/// stays under, however many clients arrive (docs/SERVING.md): the model and its packed
/// shards (under 1 GiB), the running generations' KV caches (512 MiB), and the prefix
/// caches and spot-check archives of its three shards (3 x 64 and 3 x 192 MiB).
const DEV_NODE_MEMORY_BOUND: u64 = 3 << 30;

/// Overload: 200 clients at once, each sending completions back to back (waiting what
/// Retry-After says when refused), against one dev node with its default limits but a
/// KV budget of 512 MiB. Every
/// answer is a completion or a refusal (503 or 429) carrying Retry-After — no request
/// hangs, fails or kills the node — and while they keep it overloaded the node goes on
/// producing blocks (the clients stop once two more blocks are in). Its peak memory
/// stays under [`DEV_NODE_MEMORY_BOUND`].
#[test]
fn two_hundred_clients_at_once_are_served_or_told_to_retry() {
    use std::sync::atomic::{AtomicBool, Ordering};
    const CLIENTS: usize = 200;
    let dir = tempfile::tempdir().unwrap();
    let node = dev_node(dir.path(), &["--max-kv-mib", "512"]);
    let port = node.api_port();
    let rpc = node.rpc();
    let start = rpc.best_number().unwrap();
    let done = AtomicBool::new(false);
    let answers: Vec<Vec<(u16, Option<u64>)>> = std::thread::scope(|scope| {
        let clients: Vec<_> = (0..CLIENTS)
            .map(|i| {
                let done = &done;
                scope.spawn(move || {
                    let body = format!(
                        r#"{{"prompt": "Client {i} asks: what is a shard?", "max_tokens": 16, "temperature": 0}}"#
                    );
                    let mut answers = Vec::new();
                    while !done.load(Ordering::SeqCst) {
                        let r = request(port, "POST", "/v1/completions", Some(&body))
                            .unwrap_or_else(|e| panic!("client {i}: {e}"));
                        let wait = (r.status != 200).then(|| retry_after(&r));
                        answers.push((r.status, wait));
                        if let Some(wait) = wait {
                            std::thread::sleep(Duration::from_secs(wait));
                        }
                    }
                    answers
                })
            })
            .collect();
        let produced = wait_for(
            "two blocks while overloaded",
            Duration::from_secs(120),
            || Ok((rpc.best_number()? >= start + 2).then_some(())),
        );
        done.store(true, Ordering::SeqCst);
        let answers = clients.into_iter().map(|c| c.join().unwrap()).collect();
        produced.unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
        answers
    });
    let all: Vec<_> = answers.iter().flatten().collect();
    let served = all.iter().filter(|(s, _)| *s == 200).count();
    let refused = all.iter().filter(|(s, _)| [429, 503].contains(s)).count();
    eprintln!(
        "{} answers: {served} completions, {refused} refusals",
        all.len()
    );
    assert_eq!(served + refused, all.len(), "{all:?}");
    assert!(
        served > 0 && refused > 0,
        "{served} served, {refused} refused"
    );
    assert!(all.iter().all(|(s, wait)| *s == 200 || wait.is_some()));
    let peak = node.peak_rss_bytes().unwrap();
    eprintln!("peak resident memory {} MiB", peak >> 20);
    assert!(peak <= DEV_NODE_MEMORY_BOUND, "{} MiB", peak >> 20);
    wait_for("blocks after the overload", TIMEOUT, || {
        Ok((rpc.best_number()? >= start + 3).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));
}
