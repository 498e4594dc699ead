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
use crate::serve_load::{closed_loop, percentile, staggered, Level};
use anyhow::{bail, Context};
use neuroshard_inference::executor::{argmax_rows, Segment, ShardExecutor};
use neuroshard_inference::tokenizer::Tokenizer;
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_inference::KvCache;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Options of the serving benchmark.
pub struct ServeOptions {
    pub clients: Vec<usize>,
    pub requests: usize,
    pub max_tokens: usize,
    pub model: Option<PathBuf>,
    /// Staggered arrivals for the time to first token (0: none).
    pub arrivals: usize,
    /// Time between two arrivals.
    pub arrival_every: Duration,
    /// Prompt tokens of an arriving client.
    pub arrival_prompt: usize,
    /// Completion tokens of an arriving client.
    pub arrival_tokens: usize,
    /// Where to write the SVG chart (`None`: no chart).
    pub svg: Option<PathBuf>,
    /// 3: a three-process pipeline instead of one dev node ([`crate::serve_nodes`]).
    pub nodes: u8,
    /// Injected latency of each remote hop of the three-process pipeline, ms.
    pub hop_latency_ms: u64,
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

pub(crate) fn free_port() -> anyhow::Result<u16> {
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

/// Prompts of at least `tokens` tokens, each different from its first words on (so that
/// no two share a prefix-cache block).
fn long_prompts(tokenizer: &Tokenizer, n: usize, tokens: usize) -> anyhow::Result<Vec<String>> {
    (0..n)
        .map(|i| {
            let mut prompt = format!("Request number {i}.");
            let mut k = 0;
            while tokenizer.encode_prompt(&prompt)?.len() < tokens {
                prompt.push(' ');
                prompt.push_str(PROMPTS[(i + k) % PROMPTS.len()]);
                k += 1;
            }
            Ok(prompt)
        })
        .collect()
}

/// Everything one run measured.
pub(crate) struct ServeReport {
    pub cpu: String,
    pub ceiling: f64,
    pub ceiling_batch: usize,
    pub single: f64,
    pub levels: Vec<Level>,
    /// Sorted times to first token of the staggered arrivals, ms.
    pub ttft: Vec<f64>,
    /// llama.cpp's batched decode in process: its version, tok/s of one sequence and of
    /// `ceiling_batch` sequences; or why it was skipped.
    pub llama: Result<(String, f64, f64), String>,
}

/// llama.cpp's batched decode of `batch` sequences and of one, after the ceiling's
/// 16-token prompt, `steps` tokens each (or why it cannot run).
fn llama_side(path: &Path, batch: usize, steps: usize) -> Result<(String, f64, f64), String> {
    crate::llamacpp::available()?;
    let prompt: Vec<u32> = (0..16).map(|i| 100 + i).collect();
    let threads = rayon::current_num_threads();
    let run = |n| {
        crate::llamacpp_batch::batched_tok_s(path, &prompt, n, steps, threads)
            .map_err(|e| format!("{e:#}"))
    };
    let (version, many) = run(batch)?;
    let (_, one) = run(1)?;
    Ok((version, one, many))
}

/// Runs the benchmark (blocking) and prints its report.
pub fn run(opts: &ServeOptions) -> anyhow::Result<()> {
    if opts.nodes == 2 {
        bail!("--nodes is 1 (a dev node) or 3 (a three-process pipeline)");
    }
    if opts.nodes == 3 {
        let nodes = crate::serve_nodes::NodesOptions {
            clients: opts.clients.clone(),
            requests: opts.requests,
            max_tokens: opts.max_tokens,
            hop_latency_ms: opts.hop_latency_ms,
        };
        return crate::serve_nodes::run(&nodes, &PROMPTS);
    }
    let (_, _, path) = resolve_gguf(opts.model.as_ref(), None, true)?;
    let tokenizer = Tokenizer::from_gguf_file(&path)?;
    let arrivals = long_prompts(&tokenizer, opts.arrivals, opts.arrival_prompt)?;
    let top = opts.clients.iter().copied().max().unwrap_or(1);
    eprintln!("bench: executor ceiling, {top} sessions in one batch");
    let ceiling = ceiling(&path, top, opts.max_tokens)?;
    let single = self::ceiling(&path, 1, opts.max_tokens)?;
    eprintln!("bench: llama.cpp batched decode");
    let llama = llama_side(&path, top, opts.max_tokens);
    eprintln!("bench: starting a dev node");
    let node = start_node(&[])?;
    let mut levels = Vec::new();
    for &clients in &opts.clients {
        eprintln!("bench: {clients} clients");
        levels.push(closed_loop(
            node.port,
            clients,
            opts.requests,
            opts.max_tokens,
            &PROMPTS,
        )?);
    }
    let ttft = match arrivals.is_empty() {
        true => Vec::new(),
        false => {
            eprintln!("bench: {} staggered arrivals", arrivals.len());
            staggered(
                node.port,
                &arrivals,
                opts.arrival_every,
                opts.arrival_tokens,
            )?
        }
    };
    drop(node);
    let report = ServeReport {
        cpu: crate::kernels::cpu_name(),
        ceiling,
        ceiling_batch: top,
        single,
        levels,
        ttft,
        llama,
    };
    print_report(&report, opts);
    if let Some(svg) = &opts.svg {
        std::fs::write(svg, crate::serve_plot::serve_svg(&report))?;
        println!("  chart written to {}", svg.display());
    }
    Ok(())
}

fn print_report(r: &ServeReport, opts: &ServeOptions) {
    let one = r
        .levels
        .iter()
        .find(|l| l.clients == 1)
        .map_or(f64::NAN, |l| l.tok_s);
    println!(
        "bench serve: {}, {} cores",
        r.cpu,
        rayon::current_num_threads()
    );
    println!(
        "  {} requests per client, <= 32-token prompts, {}-token greedy completions, streamed",
        opts.requests, opts.max_tokens
    );
    println!(
        "  executor batched ceiling ({} sessions, no HTTP): {:.1} tok/s",
        r.ceiling_batch, r.ceiling
    );
    println!("  executor, 1 session (no HTTP): {:.1} tok/s", r.single);
    match &r.llama {
        Ok((version, one, many)) => println!(
            "  llama.cpp {version} (llama-cpp-python), same GGUF and threads, no HTTP: 1 sequence {one:.1} tok/s, {} sequences in one llama_batch {many:.1} tok/s; our ceiling / llama.cpp's: {:.2}x",
            r.ceiling_batch,
            r.ceiling / many
        ),
        Err(why) => println!("  llama.cpp batched decode skipped: {why}"),
    }
    println!("  clients | aggregate tok/s | vs 1 client | share of ceiling | ITL p50 ms | ITL p99 ms | sessions/step | positions/step | step ms");
    for l in &r.levels {
        let b = &l.batching;
        println!(
            "  {:>7} | {:>15.1} | {:>10.2}x | {:>15.0}% | {:>10.1} | {:>10.1} | {:>13.1} | {:>14.1} | {:>7.1}",
            l.clients,
            l.tok_s,
            l.tok_s / one,
            100.0 * l.tok_s / r.ceiling,
            l.p50_ms,
            l.p99_ms,
            b.sessions_per_step,
            b.positions_per_step,
            b.step_ms,
        );
        let busy: Vec<String> = b
            .busy
            .iter()
            .map(|(shard, share)| format!("{shard} {:.0}%", 100.0 * share))
            .collect();
        let hist: Vec<String> = b
            .histogram
            .iter()
            .map(|(le, n)| format!("{le} {n:.0}"))
            .collect();
        println!(
            "          busy: {}; steps by sessions: {}",
            busy.join(", "),
            hist.join(", ")
        );
    }
    if !r.ttft.is_empty() {
        println!(
            "  staggered arrivals: {} clients, one every {} ms, {}-token prompts, {} completion tokens: TTFT p50 {:.1} ms, p99 {:.1} ms",
            r.ttft.len(),
            opts.arrival_every.as_millis(),
            opts.arrival_prompt,
            opts.arrival_tokens,
            percentile(&r.ttft, 0.5),
            percentile(&r.ttft, 0.99),
        );
    }
}
