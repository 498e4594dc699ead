//! `neuroshard bench serve --nodes 3`: many users at once through a real three-process
//! pipeline on loopback. This binary's `run` command starts three nodes of one dev chain:
//! Alice (the validator) serves layers 0-10 and takes the clients' completions over
//! HTTP, Bob serves 10-20 and Charlie 20-30; Bob and Charlie hold back every reply to a
//! shard call by the injected per-hop latency (`--fault-reply-delay-ms`, user space: the
//! binary must be built with `--features bench,fault-injection`). Closed-loop streaming
//! clients (the same as `bench serve`'s) run at each number of clients; for each it
//! prints the aggregate tok/s, p50/p99 inter-token latency, the ratio to one client and
//! each stage's busy share (its `neuroshard_stage_busy_seconds` over the wall time, from
//! each node's `/metrics`).
//!
//! Two pipelines are measured in the same run: batched (Alice's forwards to each remote
//! shard carry micro-batches of up to 16 sessions, four calls in flight per hop, the
//! default) and the baseline `--forward-batch 1` (every session's request sent alone,
//! one call per session in flight, as the shard protocol did before micro-batches).

use crate::serve_load::{closed_loop, scrape, Batching, Level, Scrape};
use anyhow::{bail, Context};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of the pipeline benchmark.
pub struct NodesOptions {
    pub clients: Vec<usize>,
    pub requests: usize,
    pub max_tokens: usize,
    /// Injected latency of each remote hop, ms.
    pub hop_latency_ms: u64,
}

/// The stages: (name, key, layers).
const STAGES: [(&str, &str, &str); 3] = [
    ("alice", "//Alice", "0-10"),
    ("bob", "//Bob", "10-20"),
    ("charlie", "//Charlie", "20-30"),
];

/// One node process, killed on drop.
struct Node {
    child: Child,
    api: u16,
    log: std::path::PathBuf,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Node {
    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (at most 15 minutes) until the node's log has every one of `lines`.
    fn wait_for(&mut self, lines: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(900);
        loop {
            let text = self.log_text();
            if lines.iter().all(|l| text.contains(l)) {
                return Ok(text);
            }
            if let Some(status) = self.child.try_wait()? {
                bail!("the node exited ({status}):\n{text}");
            }
            if Instant::now() > deadline {
                bail!("the node did not log {lines:?}:\n{text}");
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// Starts `neuroshard run` for stage `i` under `dir` with `extra` arguments.
fn start(dir: &Path, i: usize, extra: &[&str]) -> anyhow::Result<Node> {
    let (name, key, layers) = STAGES[i];
    let base = dir.join(name);
    std::fs::create_dir_all(&base)?;
    let api = crate::serve::free_port()?;
    let log = dir.join(format!("{name}.log"));
    let out = std::fs::File::create(&log)?;
    let err = out.try_clone()?;
    let child = Command::new(std::env::current_exe()?)
        .args(["run", "--chain", "dev", "--base-path"])
        .arg(&base)
        .args(["--listen", "/ip4/127.0.0.1/tcp/0", "--rpc-port", "0"])
        .args(["--api-port", &api.to_string(), "--max-generations", "256"])
        .args(["--key", key, "--shards", layers])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    Ok(Node { child, api, log })
}

/// The three nodes, Alice's forwards carrying up to `forward_batch` sessions, Bob's
/// and Charlie's replies held back `hop_ms`; returned once a completion went through
/// all three.
fn pipeline(dir: &Path, forward_batch: usize, hop_ms: u64) -> anyhow::Result<Vec<Node>> {
    let batch = forward_batch.to_string();
    let mut alice = start(dir, 0, &["--validator", "--forward-batch", &batch])?;
    let text = alice.wait_for(&["p2p listening address="])?;
    let boot = text
        .lines()
        .find_map(|l| {
            l.split("p2p listening address=")
                .nth(1)?
                .split_whitespace()
                .next()
        })
        .context("Alice's p2p address")?
        .to_string();
    let delay = hop_ms.to_string();
    let slow = [
        "--bootnodes",
        boot.as_str(),
        "--fault-reply-delay-ms",
        &delay,
    ];
    let mut nodes = vec![alice, start(dir, 1, &slow)?, start(dir, 2, &slow)?];
    for node in &mut nodes[1..] {
        node.wait_for(&["serving shards to the network"])?;
    }
    nodes[0].wait_for(&[
        "serving shards to the network",
        "HTTP API generations enabled",
    ])?;
    // Until Alice has found both providers (a generation without a route streams an
    // error event and no tokens).
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let tried = crate::serve_load::stream_completion(nodes[0].api, "Hello", 4);
        if tried.as_ref().is_ok_and(|s| s.tokens > 0) {
            break;
        }
        if Instant::now() > deadline {
            let why = tried.err().map(|e| format!("{e:#}")).unwrap_or_default();
            bail!(
                "no route through the three nodes: {why}\n{}",
                nodes[0].log_text()
            );
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    Ok(nodes)
}

/// One level of one pipeline: the clients' figures and each stage's busy share.
struct NodesLevel {
    level: Level,
    busy: Vec<f64>,
}

fn measure(
    nodes: &[Node],
    opts: &NodesOptions,
    prompts: &[&str],
) -> anyhow::Result<Vec<NodesLevel>> {
    let mut out = Vec::new();
    for &clients in &opts.clients {
        eprintln!("bench: {clients} clients");
        let before: Vec<Scrape> = nodes
            .iter()
            .map(|n| scrape(n.api))
            .collect::<Result<_, _>>()?;
        let begin = Instant::now();
        let level = closed_loop(
            nodes[0].api,
            clients,
            opts.requests,
            opts.max_tokens,
            prompts,
        )?;
        let wall = begin.elapsed();
        let busy = nodes
            .iter()
            .zip(&before)
            .map(|(n, b)| {
                let after = scrape(n.api)?;
                let shares = Batching::between(b, &after, wall).busy;
                Ok(shares.iter().map(|(_, s)| s).sum())
            })
            .collect::<anyhow::Result<Vec<f64>>>()?;
        out.push(NodesLevel { level, busy });
    }
    Ok(out)
}

/// Runs the benchmark (blocking) and prints its report.
pub fn run(opts: &NodesOptions, prompts: &[&str]) -> anyhow::Result<()> {
    let mut runs = Vec::new();
    for (label, batch) in [("batched", 16), ("one session per call", 1)] {
        eprintln!("bench: three nodes, {label}");
        let dir = tempfile::tempdir()?;
        let nodes = pipeline(dir.path(), batch, opts.hop_latency_ms)?;
        runs.push((label, measure(&nodes, opts, prompts)?));
    }
    println!(
        "bench serve --nodes 3: {}, {} cores; Alice 0-10 (takes the clients), Bob 10-20, Charlie 20-30 on loopback",
        crate::kernels::cpu_name(),
        rayon::current_num_threads()
    );
    println!(
        "  per-hop latency injected: {} ms on every reply of Bob and Charlie; {} requests per client, {}-token greedy completions, streamed",
        opts.hop_latency_ms, opts.requests, opts.max_tokens
    );
    println!("  forwards             | clients | aggregate tok/s | vs 1 client | vs one per call | ITL p50 ms | ITL p99 ms | busy Alice | Bob | Charlie");
    let base = &runs[1].1;
    for (label, levels) in &runs {
        let one = levels.first().map_or(f64::NAN, |l| l.level.tok_s);
        for (l, b) in levels.iter().zip(base) {
            println!(
                "  {label:<20} | {:>7} | {:>15.1} | {:>10.2}x | {:>14.2}x | {:>10.1} | {:>10.1} | {:>9.0}% | {:>3.0}% | {:>6.0}%",
                l.level.clients,
                l.level.tok_s,
                l.level.tok_s / one,
                l.level.tok_s / b.level.tok_s,
                l.level.p50_ms,
                l.level.p99_ms,
                100.0 * l.busy[0],
                100.0 * l.busy[1],
                100.0 * l.busy[2],
            );
        }
    }
    Ok(())
}
