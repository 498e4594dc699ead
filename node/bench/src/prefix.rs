//! `neuroshard bench prefix`: time to first token of chat completions that share a long
//! system prompt, with the shards' prefix cache hit against cold. A real dev node (this
//! binary's `dev` command in a child process) is driven over HTTP by one streaming
//! client that alternates two kinds of request with the same long system prompt and a
//! different short question each time: *warm* ones, whose system prompt the node has
//! seen (its blocks are in the prefix cache after one untimed request), and *cold*
//! ones, whose system prompt begins with a number never sent before, so that no block of
//! it matches (the prefix cache is keyed by every position from the first). Both kinds
//! go through the same node, HTTP, chat template, billing and decoding; only the
//! positions computed differ. The time to first token is from sending the request to
//! the first streamed text; the report gives p50 of each kind and their ratio, and the
//! positions the node's `/metrics` says were reused and computed. A second dev node with
//! `--prefix-cache-mib 0` then serves the cold kind, so the report also gives what the
//! cache costs a request that misses (hashing its inputs and storing its blocks).

use crate::serve::start_node;
use crate::serve_load::{metrics, open_stream};
use std::io::BufRead;
use std::time::Duration;

/// Options of the prefix benchmark.
pub struct PrefixOptions {
    /// Timed requests of each kind.
    pub requests: usize,
    /// Times the system prompt's paragraph is repeated (about 40 tokens each).
    pub paragraphs: usize,
}

const PARAGRAPH: &str = "You are the assistant of NeuroShard, a network that splits a language \
    model into shards of consecutive layers. Each node serves one shard, hidden states flow \
    from node to node, and every shard's work is paid by receipts that validators check. ";

const QUESTIONS: [&str; 6] = [
    "What is a shard?",
    "Who pays for the work?",
    "How are receipts checked?",
    "Why split a model at all?",
    "What does a validator do?",
    "How do hidden states travel?",
];

/// Sends a streaming chat completion and returns the time to its first text.
fn first_token(port: u16, system: &str, question: &str) -> anyhow::Result<Duration> {
    let body = serde_json::json!({
        "messages": [
            {"role": "system", "content": system},
            {"role": "user", "content": question},
        ],
        "max_tokens": 4, "temperature": 0, "stream": true,
    })
    .to_string();
    let (begin, reader) = open_stream(port, "/v1/chat/completions", &body)?;
    let mut first = None;
    for line in reader.lines() {
        let line = line?;
        let Some(data) = line.strip_prefix("data: ") else {
            continue;
        };
        if data == "[DONE]" {
            break;
        }
        let v: serde_json::Value = serde_json::from_str(data)?;
        let text = v
            .pointer("/choices/0/delta/content")
            .and_then(|t| t.as_str());
        if first.is_none() && text.is_some_and(|t| !t.is_empty()) {
            first = Some(begin.elapsed());
        }
    }
    first.ok_or_else(|| anyhow::anyhow!("the completion streamed no text"))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// Runs the benchmark (blocking) and prints its report.
pub fn run(opts: &PrefixOptions) -> anyhow::Result<()> {
    let cpu = crate::kernels::cpu_name();
    eprintln!("bench: starting a dev node");
    let node = start_node(&[])?;
    let system = PARAGRAPH.repeat(opts.paragraphs.max(1));
    // Untimed: the warm system prompt's blocks go into the cache.
    first_token(node.port, &system, "Hello.")?;
    let before = metrics(node.port)?;
    let (hit0, miss0) = (
        before("neuroshard_prefix_cache_hit_positions"),
        before("neuroshard_prefix_cache_miss_positions"),
    );
    let (mut warm, mut cold) = (Vec::new(), Vec::new());
    for r in 0..opts.requests {
        let question = QUESTIONS[r % QUESTIONS.len()];
        let fresh = format!("Conversation {}. {system}", 1_000_000 + r * 7919);
        cold.push(first_token(node.port, &fresh, question)?.as_secs_f64() * 1e3);
        warm.push(first_token(node.port, &system, question)?.as_secs_f64() * 1e3);
    }
    let after = metrics(node.port)?;
    let hits = after("neuroshard_prefix_cache_hit_positions") - hit0;
    let misses = after("neuroshard_prefix_cache_miss_positions") - miss0;
    drop(node);
    eprintln!("bench: starting a dev node without prefix cache");
    let plain = start_node(&["--prefix-cache-mib", "0"])?;
    first_token(plain.port, &system, "Hello.")?;
    let mut off = Vec::new();
    for r in 0..opts.requests {
        let question = QUESTIONS[r % QUESTIONS.len()];
        let fresh = format!("Conversation {}. {system}", 1_000_000 + r * 7919);
        off.push(first_token(plain.port, &fresh, question)?.as_secs_f64() * 1e3);
    }
    drop(plain);
    let (warm, cold, off) = (median(warm), median(cold), median(off));
    println!(
        "bench prefix: {cpu}, {} cores",
        rayon::current_num_threads()
    );
    println!(
        "  dev node over HTTP, streamed chat completions, system prompt of {} paragraphs, {} requests of each kind",
        opts.paragraphs, opts.requests
    );
    println!("  time to first token p50, cold (no cached prefix): {cold:.1} ms");
    println!("  time to first token p50, warm (system prompt cached): {warm:.1} ms");
    println!("  cold / warm: {:.2}x", cold / warm);
    println!(
        "  time to first token p50, no prefix cache (--prefix-cache-mib 0): {off:.1} ms \
         (cold with the cache / without: {:.3}; without / warm: {:.2}x)",
        cold / off,
        off / warm
    );
    println!(
        "  positions reused {hits:.0}, computed {misses:.0} (summed over the dev node's 3 shards)"
    );
    Ok(())
}
