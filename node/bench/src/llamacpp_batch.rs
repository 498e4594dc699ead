//! llama.cpp's batched decode beside `bench serve`'s executor ceiling: through
//! llama-cpp-python's C API, `sessions` sequences of the same GGUF decode greedily in
//! lock step, one `llama_decode` of a `llama_batch` holding one position of every
//! sequence per step (each sequence its own `seq_id` in one context's KV cache), with
//! the same thread count. No HTTP: it is compared with our in-process ceiling.

use crate::llamacpp::python;
use anyhow::Context;
use std::path::Path;
use std::process::Command;

/// `python3 driver.py <model> <sessions> <steps> <threads> <prompt-ids-json>`: prints
/// one JSON line with the version and tok/s.
const DRIVER: &str = r#"
import sys, json, time
import numpy as np
import ctypes
import llama_cpp as L
# llama.cpp logs every graph it builds; printing that would be timed with the decode.
quiet = L.llama_log_callback(lambda level, text, user: None)
L.llama_log_set(quiet, ctypes.c_void_p(0))
path, n, steps, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
prompt = json.loads(sys.argv[5])
L.llama_backend_init()
model = L.llama_model_load_from_file(path.encode(), L.llama_model_default_params())
cp = L.llama_context_default_params()
cp.n_ctx = n * (len(prompt) + steps + 8)
cp.n_batch = max(n * len(prompt), 64)
cp.n_ubatch = cp.n_batch
cp.n_seq_max = n
cp.n_threads = threads
cp.n_threads_batch = threads
ctx = L.llama_init_from_model(model, cp)
vocab = L.llama_vocab_n_tokens(L.llama_model_get_vocab(model))
batch = L.llama_batch_init(cp.n_batch, 0, n)
def run(items):
    batch.n_tokens = len(items)
    for i, (t, p, s, want) in enumerate(items):
        batch.token[i] = t; batch.pos[i] = p; batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = s; batch.logits[i] = want
    if L.llama_decode(ctx, batch) != 0:
        raise SystemExit("llama_decode failed")
    out = []
    for i, item in enumerate(items):
        if item[3]:
            row = np.ctypeslib.as_array(L.llama_get_logits_ith(ctx, i), shape=(vocab,))
            out.append(int(np.argmax(row)))
    return out
nxt = run([(t, i, s, i == len(prompt) - 1) for s in range(n) for i, t in enumerate(prompt)])
start = time.perf_counter()
for step in range(steps):
    pos = len(prompt) + step
    nxt = run([(nxt[s], pos, s, True) for s in range(n)])
seconds = time.perf_counter() - start
print(json.dumps({"version": L.__version__, "tok_s": n * steps / seconds}))
"#;

/// llama.cpp's batched greedy decode: `sessions` sequences after `prompt` (token ids),
/// `steps` tokens each, tok/s over all of them, and the package version.
pub fn batched_tok_s(
    model: &Path,
    prompt: &[u32],
    sessions: usize,
    steps: usize,
    threads: usize,
) -> anyhow::Result<(String, f64)> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("batched.py");
    std::fs::write(&script, DRIVER)?;
    let out = Command::new(python())
        .arg(&script)
        .arg(model)
        .args([sessions, steps, threads].map(|v| v.to_string()))
        .arg(serde_json::to_string(prompt)?)
        .output()
        .context("running the llama.cpp driver")?;
    if !out.status.success() {
        anyhow::bail!(
            "llama.cpp driver failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = serde_json::from_str(line.trim().lines().last().unwrap_or(""))
        .context("reading the llama.cpp driver's output")?;
    let tok_s = v["tok_s"].as_f64().context("no tok_s")?;
    Ok((v["version"].as_str().unwrap_or("?").to_string(), tok_s))
}
