//! Generations for the multi-process tests: the single-process oracle (`neuroshard
//! generate --raw --draft none`, optionally `--rpc URL` through a node) and a greedy
//! completion streamed from a node's HTTP API, with a signal at its first piece of text
//! (so a fault can be injected while the rest is still being computed).

use crate::http::request_watching;
use crate::neuroshard_bin;
use serde_json::{json, Value};
use std::process::Command;

/// `neuroshard generate --raw --draft none` greedy text for `prompt` (single process
/// without `extra`, or through a node with `--rpc URL`).
pub fn generate_text(prompt: &str, max_tokens: usize, extra: &[&str]) -> anyhow::Result<String> {
    let out = Command::new(neuroshard_bin())
        .args(["generate", "--raw", "--draft", "none", "--prompt", prompt])
        .args(["--max-tokens", &max_tokens.to_string()])
        .args(extra)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "generate failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(String::from_utf8(out.stdout)?
        .trim_end_matches('\n')
        .to_string())
}

/// A greedy `/v1/completions` streamed as server-sent events from the API on
/// `api_port`; `first_piece` hears once the first piece of text has arrived. Returns
/// the concatenated text.
pub fn complete_streamed(
    api_port: u16,
    prompt: &str,
    max_tokens: usize,
    first_piece: std::sync::mpsc::Sender<()>,
) -> anyhow::Result<String> {
    let body =
        json!({"prompt": prompt, "max_tokens": max_tokens, "temperature": 0, "stream": true});
    let mut told = false;
    let r = request_watching(
        api_port,
        "POST",
        "/v1/completions",
        Some(&body.to_string()),
        |received| {
            if !told && String::from_utf8_lossy(received).contains("\"finish_reason\":null") {
                told = true;
                let _ = first_piece.send(());
            }
        },
    )?;
    anyhow::ensure!(
        r.status == 200,
        "completion failed: {} {}",
        r.status,
        r.body
    );
    let mut text = String::new();
    for data in r.body.lines().filter_map(|l| l.strip_prefix("data: ")) {
        if data == "[DONE]" {
            break;
        }
        let event: Value = serde_json::from_str(data)?;
        anyhow::ensure!(event.get("error").is_none(), "generation failed: {event}");
        text.push_str(event["choices"][0]["text"].as_str().unwrap_or_default());
    }
    Ok(text)
}
