//! Acceptance: the official `openai` Python client (pip) streams a chat completion from
//! `neuroshard dev`. The script (`tests/python/openai_stream.py`) lists the models,
//! streams a greedy chat completion with `include_usage`, repeats it without streaming,
//! and sends one bad request; this test checks what the client parsed.

use neuroshard_tests::http::request;
use neuroshard_tests::tools::{python_with_openai, run_with_timeout};
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Model fetch (cold cache: a ~90 MB wheel) and load.
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
/// Three short generations on a debug build.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn openai_python_client_streams_a_chat_completion() {
    let python = python_with_openai().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let node = NodeProcess::dev(dir.path()).unwrap();
    let api = node.api_port();
    wait_for("the model to load", MODEL_TIMEOUT, || {
        Ok((request(api, "GET", "/v1/models", None)?.status == 200).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log_text()));

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("python/openai_stream.py");
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(format!("http://127.0.0.1:{api}/v1"));
    let out = run_with_timeout(command, SCRIPT_TIMEOUT).unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the openai client failed: {stderr}\n{}",
        node.log_text()
    );
    let report: Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)));

    assert_eq!(
        report["models"],
        serde_json::json!(["SmolLM2-135M-Instruct.Q4_1"])
    );
    let text = report["text"].as_str().unwrap();
    assert!(!text.trim().is_empty(), "{report}");
    assert!(report["chunks"].as_u64().unwrap() >= 1, "{report}");
    assert_eq!(
        report["plain_text"], report["text"],
        "greedy: streamed and plain text agree"
    );

    let usage = &report["usage"];
    let completion = usage["completion_tokens"].as_u64().unwrap();
    let prompt = usage["prompt_tokens"].as_u64().unwrap();
    assert!((1..=12).contains(&completion), "{report}");
    assert!(prompt > 0, "{report}");
    assert_eq!(usage["total_tokens"].as_u64().unwrap(), prompt + completion);
    assert_eq!(report["plain_usage"], report["usage"], "{report}");
    match report["finish_reason"].as_str().unwrap() {
        "length" => assert_eq!(completion, 12, "{report}"),
        "stop" => {}
        other => panic!("unexpected finish_reason {other}"),
    }

    let bad = &report["bad_request"];
    assert_eq!(bad["status"], 400, "{report}");
    assert!(
        bad["message"].as_str().unwrap().contains("max_tokens"),
        "{report}"
    );
}
