//! The clients of `bench serve` and what it reads from the node: streaming completions
//! over plain HTTP/1.1 (one connection each, server-sent events read as they come),
//! closed-loop load levels (each client sends its next request when one ends) and
//! staggered arrivals (one new client every interval, long prompts, time to first token),
//! and the node's `/metrics` before and after a level (batch sizes, steps, the busy time
//! of each shard).

use anyhow::bail;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// One streamed completion: its completion tokens, when its first text came (from
/// sending the request) and the arrival times of its events.
pub(crate) struct Streamed {
    pub tokens: usize,
    pub first: Option<Duration>,
    pub events: Vec<Instant>,
}

/// POSTs `body` (JSON) to `path` and returns when it was sent and the response after a
/// `200` status line (an error with the response otherwise).
pub(crate) fn open_stream(
    port: u16,
    path: &str,
    body: &str,
) -> anyhow::Result<(Instant, BufReader<TcpStream>)> {
    let begin = Instant::now();
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(600)))?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
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
    Ok((begin, reader))
}

/// Sends one streaming completion and reads it to the end.
pub(crate) fn stream_completion(
    port: u16,
    prompt: &str,
    max_tokens: usize,
) -> anyhow::Result<Streamed> {
    let body = serde_json::json!({
        "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
        "stream": true, "stream_options": {"include_usage": true},
    })
    .to_string();
    let (begin, reader) = open_stream(port, "/v1/completions", &body)?;
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
    let first = events.first().map(|t| *t - begin);
    Ok(Streamed {
        tokens,
        first,
        events,
    })
}

/// A node's `/metrics` text.
pub(crate) struct Scrape(String);

impl Scrape {
    /// The value of the unlabelled metric `name` (0 when absent).
    pub fn value(&self, name: &str) -> f64 {
        self.0
            .lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or(0.0)
    }

    /// The values of the metric `name` with one label, as (the label's value, value) in
    /// the order listed.
    pub fn labelled(&self, name: &str) -> Vec<(String, f64)> {
        self.0
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix(name)?.strip_prefix('{')?;
                let (labels, value) = rest.split_once("} ")?;
                // One label: its value without the name and quotes.
                let label = labels.split_once('=').map_or(labels, |(_, v)| v);
                Some((
                    label.trim_matches('"').to_string(),
                    value.trim().parse().ok()?,
                ))
            })
            .collect()
    }
}

/// The node's `/metrics`.
pub(crate) fn scrape(port: u16) -> anyhow::Result<Scrape> {
    let mut stream = TcpStream::connect(("127.0.0.1", port))?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    stream.read_to_string(&mut text)?;
    Ok(Scrape(text))
}

/// The node's `/metrics`, as a lookup of an unlabelled metric's value by name (0 when
/// absent).
pub(crate) fn metrics(port: u16) -> anyhow::Result<impl Fn(&str) -> f64> {
    let scrape = scrape(port)?;
    Ok(move |name: &str| scrape.value(name))
}

/// What the node's shards did during a level, from two scrapes.
#[derive(Clone, Debug, Default)]
pub(crate) struct Batching {
    /// Sessions per batched step (mean over the shards' steps).
    pub sessions_per_step: f64,
    /// Positions per batched step.
    pub positions_per_step: f64,
    /// Mean step time, ms.
    pub step_ms: f64,
    /// Each shard's busy time over the level's wall time, in route order.
    pub busy: Vec<(String, f64)>,
    /// Steps by sessions per step (the `/metrics` histogram's buckets), over the level.
    pub histogram: Vec<(String, f64)>,
}

impl Batching {
    pub fn between(before: &Scrape, after: &Scrape, wall: Duration) -> Self {
        let delta = |name: &str| after.value(name) - before.value(name);
        let steps = delta("neuroshard_batch_steps").max(1.0);
        let labelled_delta = |name: &str| -> Vec<(String, f64)> {
            let old = before.labelled(name);
            after
                .labelled(name)
                .into_iter()
                .map(|(label, v)| {
                    let was = old.iter().find(|(l, _)| *l == label).map_or(0.0, |x| x.1);
                    (label, v - was)
                })
                .collect()
        };
        let busy_secs = labelled_delta("neuroshard_stage_busy_seconds");
        let total_busy: f64 = busy_secs.iter().map(|b| b.1).sum();
        Self {
            sessions_per_step: delta("neuroshard_batch_sessions_run") / steps,
            positions_per_step: delta("neuroshard_batch_positions_run") / steps,
            step_ms: 1e3 * total_busy / steps,
            busy: busy_secs
                .into_iter()
                .map(|(label, secs)| (label, secs / wall.as_secs_f64()))
                .collect(),
            histogram: labelled_delta("neuroshard_batch_step_sessions"),
        }
    }
}

/// Figures of one closed-loop level.
pub(crate) struct Level {
    pub clients: usize,
    pub tok_s: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub batching: Batching,
}

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs `clients(i)` on `n` threads and gathers their results.
fn on_threads<T: Send>(
    n: usize,
    client: impl Fn(usize) -> anyhow::Result<T> + Sync,
) -> anyhow::Result<Vec<T>> {
    std::thread::scope(|scope| {
        let client = &client;
        let handles: Vec<_> = (0..n).map(|c| scope.spawn(move || client(c))).collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("client panicked")))
            })
            .collect()
    })
}

/// `clients` closed-loop clients, `requests` completions of `max_tokens` each, prompts
/// taken from `prompts` in turn.
pub(crate) fn closed_loop(
    port: u16,
    clients: usize,
    requests: usize,
    max_tokens: usize,
    prompts: &[&str],
) -> anyhow::Result<Level> {
    let before = scrape(port)?;
    let begin = Instant::now();
    let results = on_threads(clients, |c| {
        (0..requests)
            .map(|r| stream_completion(port, prompts[(c + r) % prompts.len()], max_tokens))
            .collect::<anyhow::Result<Vec<_>>>()
    })?;
    let wall = begin.elapsed();
    let after = scrape(port)?;
    let (mut tokens, mut gaps) = (0, Vec::new());
    for s in results.iter().flatten() {
        tokens += s.tokens;
        gaps.extend(
            s.events
                .windows(2)
                .map(|w| (w[1] - w[0]).as_secs_f64() * 1e3),
        );
    }
    gaps.sort_by(f64::total_cmp);
    Ok(Level {
        clients,
        tok_s: tokens as f64 / wall.as_secs_f64(),
        p50_ms: percentile(&gaps, 0.5),
        p99_ms: percentile(&gaps, 0.99),
        batching: Batching::between(&before, &after, wall),
    })
}

/// Time to first token of clients arriving one every `every`, each sending one of
/// `prompts` (in order) for `max_tokens`: the sorted TTFTs in ms.
pub(crate) fn staggered(
    port: u16,
    prompts: &[String],
    every: Duration,
    max_tokens: usize,
) -> anyhow::Result<Vec<f64>> {
    let mut ttft = on_threads(prompts.len(), |c| {
        std::thread::sleep(every * c as u32);
        let s = stream_completion(port, &prompts[c], max_tokens)?;
        s.first
            .map(|d| d.as_secs_f64() * 1e3)
            .ok_or_else(|| anyhow::anyhow!("a completion streamed no text"))
    })?;
    ttft.sort_by(f64::total_cmp);
    Ok(ttft)
}
