//! `neuroshard bench serve`: many users at once against one real dev node. The node is
//! this binary's `dev` command in a child process (its own chain, every shard of the
//! chain's model, billing on), driven over HTTP by closed-loop streaming clients: each
//! sends a short prompt (at most 32 tokens) for a 128-token greedy completion with
//! `stream: true`, reads the server-sent events as they come, and sends the next request
//! as soon as one finishes. For each number of clients it prints the aggregate tok/s
//! (completion tokens of all requests over the wall time), the p50 and p99 inter-token
//! latency (the gaps between a stream's events) and the ratio to one client.
//!
//! In the same run it measures, in process, the executor's batched ceiling: the dev
//! chain's shards run a full batch of decoding sessions step after step (one
//! [`ShardExecutor::forward_rows`] per shard and one LM head per step, the greedy token
//! fed back), with no HTTP, scheduling or billing; the served aggregate is reported as a
//! share of it.

use crate::inference::resolve_gguf;
use anyhow::{bail, Context};
use neuroshard_inference::executor::{argmax_rows, Segment, ShardExecutor};
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_inference::KvCache;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of the serving benchmark.
pub struct ServeOptions {
    pub clients: Vec<usize>,
    pub requests: usize,
    pub max_tokens: usize,
    pub model: Option<PathBuf>,
}

/// Short prompts (well under 32 tokens), one per client in turn.
const PROMPTS: [&str; 8] = [
    "Write a story about a robot who learns to paint.",
    "Explain how a steam engine works.",
    "Describe a walk through a forest in autumn.",
    "Tell me about the history of the bicycle.",
    "Write a letter to a friend about a trip to the sea.",
    "Explain why the sky is blue, in detail.",
    "Describe the life of a honey bee.",
    "Write a short essay about the moon.",
];

/// The dev node child process, killed on drop.
pub(crate) struct DevNode {
    child: Child,
    pub(crate) port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for DevNode {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// Starts `neuroshard dev` (with `extra` arguments) and waits until its model is loaded.
pub(crate) fn start_node(extra: &[&str]) -> anyhow::Result<DevNode> {
    let dir = tempfile::tempdir()?;
    let port = free_port()?;
    let log = dir.path().join("node.log");
    let child = Command::new(std::env::current_exe()?)
        .args(["dev", "--base-path"])
        .arg(dir.path())
        .args(["--rpc-port", "0", "--api-port", &port.to_string()])
        .args(["--max-generations", "256"])
        .args(extra)
        .env("RUST_LOG", "info")
        .stdout(Stdio::from(std::fs::File::create(&log)?))
        .stderr(Stdio::from(std::fs::File::create(
            dir.path().join("err.log"),
        )?))
        .spawn()
        .context("starting the dev node")?;
    let node = DevNode {
        child,
        port,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default()
            + &std::fs::read_to_string(node._dir.path().join("err.log")).unwrap_or_default();
        if text.contains("model loaded") {
            return Ok(node);
        }
        if Instant::now() > deadline {
            bail!("the dev node did not load its model:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// One streamed completion: its completion tokens and the arrival times of its events.
struct Streamed {
    tokens: usize,
    events: Vec<Instant>,
}

/// Sends one streaming completion and reads it to the end.
fn stream_completion(port: u16, prompt: &str, max_tokens: usize) -> anyhow::Result<Streamed> {
    let body = serde_json::json!({
        "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": true, "stream_options": {"include_usage": true},
    })
    .to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        stream,
        "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status)?;
    if !status.contains(" 200") {
        let mut rest = String::new();
        let _ = reader.read_to_string(&mut rest);
        bail!("completion refused: {status}{rest}");
    }
    let (mut events, mut tokens) = (Vec::new(), 0);
    for line in reader.lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data)?;
        if let Some(n) = v
            .pointer("/usage/completion_tokens")
            .and_then(|n| n.as_u64())
        {
            tokens = n as usize;
        }
        let text = v.pointer("/choices/0/text").and_then(|t| t.as_str());
        if text.is_some_and(|t| !t.is_empty()) {
            events.push(Instant::now());
        }
    }
    Ok(Streamed { tokens, events })
}

/// The node's batched steps and the positions they ran so far (from `/metrics`).
fn batch_counters(port: u16) -> anyhow::Result<(f64, f64)> {
    let value = metrics(port)?;
    Ok((
        value("neuroshard_batch_steps"),
        value("neuroshard_batch_positions_run"),
    ))
}

/// The node's `/metrics`, as a lookup of a metric's value by name (0 when absent).
pub(crate) fn metrics(port: u16) -> anyhow::Result<impl Fn(&str) -> f64> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(move |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    })
}

/// Figures of one load level.
struct Level {
    clients: usize,
    /// Positions per batched step (over all the node's shards).
    per_step: f64,
    tok_s: f64,
    p50_ms: f64,
    p99_ms: f64,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `clients` closed-loop clients, `requests` completions each.
fn measure(port: u16, clients: usize, opts: &ServeOptions) -> anyhow::Result<Level> {
    let (steps0, positions0) = batch_counters(port)?;
    let begin = Instant::now();
    let results: Vec<anyhow::Result<Vec<Streamed>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    (0..opts.requests)
                        .map(|r| {
                            let prompt = PROMPTS[(c + r) % PROMPTS.len()];
                            stream_completion(port, prompt, opts.max_tokens)
                        })
                        .collect::<anyhow::Result<Vec<_>>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client panicked")))
            })
            .collect()
    });
    let wall = begin.elapsed().as_secs_f64();
    let (steps1, positions1) = batch_counters(port)?;
    let (mut tokens, mut gaps) = (0, Vec::new());
    for streamed in results {
        for s in streamed? {
            tokens += s.tokens;
            gaps.extend(
                s.events
                    .windows(2)
                    .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3),
            );
        }
    }
    gaps.sort_by(f64::total_cmp);
    Ok(Level {
        clients,
        per_step: (positions1 - positions0) / (steps1 - steps0).max(1.0),
        tok_s: tokens as f64 / wall,
        p50_ms: percentile(&gaps, 0.5),
        p99_ms: percentile(&gaps, 0.99),
    })
}

/// The executor's batched ceiling: `batch` sessions decoding `steps` tokens in lock step
/// through the dev chain's shards, tok/s.
fn ceiling(path: &Path, batch: usize, steps: usize) -> anyhow::Result<f64> {
    let weights = ModelWeights::load(&ModelSource::Gguf(path.into()), None, Precision::Native)?;
    let shards = neuroshard_chain_spec::load("dev")?.model.shards;
    let execs = shards
        .iter()
        .map(|r| ShardExecutor::new(weights.slice(r.start as usize..r.end as usize)?))
        .collect::<neuroshard_inference::Result<Vec<_>>>()?;
    let mut caches: Vec<Vec<KvCache>> = execs
        .iter()
        .map(|e| (0..batch).map(|_| e.new_cache()).collect())
        .collect();
    // Every session starts from a 16-token prompt, prefilled before timing.
    let mut tokens: Vec<Vec<u32>> = (0..batch)
        .map(|s| (0..16).map(|i| 100 + (s * 16 + i) as u32).collect())
        .collect();
    let mut timed = Duration::ZERO;
    let mut produced = 0;
    for step in 0..=steps {
        let begin = Instant::now();
        let starts: Vec<usize> = caches[0].iter().map(|c| c.len()).collect();
        let seqs: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
        let mut x: Vec<f32> = Vec::new();
        for t in &tokens {
            x.extend(execs[0].input_rows(neuroshard_inference::executor::ExecInput::Tokens(t))?);
        }
        for (exec, caches) in execs.iter().zip(caches.iter_mut()) {
            let mut segments: Vec<Segment<'_>> = caches
                .iter_mut()
                .zip(starts.iter().zip(&seqs))
                .map(|(cache, (&start, &seq))| Segment { cache, start, seq })
                .collect();
            exec.forward_rows(&mut segments, &mut x)?;
        }
        let last = execs.last().context("no shards")?;
        let width = last.config().hidden_size;
        let rows = x.len() / width;
        let hidden = candle_core::Tensor::from_vec(x, (1, rows, width), &candle_core::Device::Cpu)?;
        let next = argmax_rows(&last.head(&hidden)?)?;
        let mut end = 0;
        for (t, seq) in tokens.iter_mut().zip(&seqs) {
            end += seq;
            *t = vec![next[end - 1]];
        }
        if step > 0 {
            timed += begin.elapsed();
            produced += batch;
        }
    }
    Ok(produced as f64 / timed.as_secs_f64())
}

/// Runs the benchmark (blocking) and prints its report.
pub fn run(opts: &ServeOptions) -> anyhow::Result<()> {
    let (_, _, path) = resolve_gguf(opts.model.as_ref(), None, true)?;
    let cpu = crate::kernels::cpu_name();
    let top = opts.clients.iter().copied().max().unwrap_or(1);
    eprintln!("bench: executor ceiling, {top} sessions in one batch");
    let ceiling = ceiling(&path, top, opts.max_tokens)?;
    let single = self::ceiling(&path, 1, opts.max_tokens)?;
    eprintln!("bench: starting a dev node");
    let node = start_node(&[])?;
    let mut levels = Vec::new();
    for &clients in &opts.clients {
        eprintln!("bench: {clients} clients");
        levels.push(measure(node.port, clients, opts)?);
    }
    drop(node);
    let one = levels
        .iter()
        .find(|l| l.clients == 1)
        .map_or(f64::NAN, |l| l.tok_s);
    println!("bench serve: {cpu}, {} cores", rayon::current_num_threads());
    println!(
        "  {} requests per client, <= 32-token prompts, {}-token greedy completions, streamed",
        opts.requests, opts.max_tokens
    );
    println!("  executor batched ceiling ({top} sessions, no HTTP): {ceiling:.1} tok/s");
    println!("  executor, 1 session (no HTTP): {single:.1} tok/s");
    println!("  clients | aggregate tok/s | vs 1 client | share of ceiling | ITL p50 ms | ITL p99 ms | positions/step");
    for l in &levels {
        println!(
            "  {:>7} | {:>15.1} | {:>10.2}x | {:>15.0}% | {:>10.1} | {:>10.1} | {:>14.1}",
            l.clients,
            l.tok_s,
            l.tok_s / one,
            100.0 * l.tok_s / ceiling,
            l.p50_ms,
            l.p99_ms,
            l.per_step
        );
    }
    Ok(())
}
