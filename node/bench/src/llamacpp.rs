//! Side-by-side comparison with llama.cpp on the same GGUF file, driven through the
//! `llama_cpp` Python package (llama-cpp-python) when the interpreter can import it: its greedy
//! decode speed with the same thread count and prompt, and its logits at every step, which
//! are compared with ours computed on the same token sequence (teacher forcing), so a
//! greedy divergence can be told apart as a near-tie or a real difference.
//!
//! The interpreter is `python3`, or `$NEUROSHARD_PYTHON` when set (for example a
//! virtualenv holding a llama-cpp-python built for this CPU).

use anyhow::Context;
use neuroshard_inference::executor::{argmax_rows, ExecInput, ShardExecutor};
use neuroshard_inference::weights::ModelWeights;
use std::path::Path;
use std::process::{Command, Stdio};

/// Run as `python3 driver.py <model> <steps> <threads> <logits-out> <prompt-ids-json>`;
/// writes `steps × vocab` f32 logits and prints one JSON line.
const DRIVER: &str = r#"
import sys, json, time
import numpy as np
import llama_cpp
path, steps, threads, out = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
prompt = json.loads(sys.argv[5])
llm = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                      n_ctx=len(prompt) + steps + 8, verbose=False)
vocab = llm.n_vocab()
def decode(keep):
    llm.reset()
    llm.eval(prompt)
    tokens, rows, start = [], [], None
    for i in range(steps):
        # The last evaluated position's logits, read through the C API: without
        # logits_all, Llama.scores is no longer filled by eval.
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
        if keep:
            rows.append(np.array(logits, dtype=np.float32))
        tokens.append(int(np.argmax(logits)))
        if start is None:
            start = time.perf_counter()
        if i + 1 < steps:
            llm.eval([tokens[-1]])
    return tokens, rows, time.perf_counter() - start
decode(False)
tokens, _, seconds = decode(False)
_, rows, _ = decode(True)
np.stack(rows).tofile(out)
print(json.dumps({"version": llama_cpp.__version__, "tokens": tokens, "seconds": seconds}))
"#;

/// The figures of one comparison.
#[derive(Clone, Debug)]
pub struct LlamaCppComparison {
    pub version: String,
    pub threads: usize,
    /// llama.cpp's greedy decode speed (tokens after the first over the time after it).
    pub tokens_per_second: f64,
    /// llama.cpp's greedy tokens.
    pub tokens: Vec<u32>,
    /// Steps (of `tokens.len()`) where our top-1 equals llama.cpp's on its token sequence.
    pub top1_agreement: usize,
    /// Largest |our logit - llama.cpp's logit| over every step and vocabulary entry.
    pub max_logit_diff: f32,
    /// The first step where our greedy token differs from llama.cpp's, with the gap
    /// between the two candidates in llama.cpp's logits and in ours.
    pub first_divergence: Option<Divergence>,
    /// llama.cpp's logits at every step of its own greedy sequence.
    logits: Vec<Vec<f32>>,
}

impl LlamaCppComparison {
    /// Where another engine's greedy tokens (after the same prompt) first differ from
    /// llama.cpp's: `(step, llama.cpp's token, the other's token, llama.cpp's logit of its
    /// token minus its logit of the other's)`. A small gap means a near-tie that rounding
    /// can tip; a large one a real difference in the computation.
    pub fn parts_from(&self, other: &[u32]) -> Option<(usize, u32, u32, f32)> {
        let step = self.tokens.iter().zip(other).position(|(a, b)| a != b)?;
        let (theirs, others) = (self.tokens[step], other[step]);
        let row = &self.logits[step];
        let gap = row.get(theirs as usize)? - row.get(others as usize)?;
        Some((step, theirs, others, gap))
    }
}

/// Where two greedy continuations part.
#[derive(Clone, Debug)]
pub struct Divergence {
    pub step: usize,
    pub theirs: u32,
    pub ours: u32,
    /// llama.cpp's logit of its token minus its logit of ours.
    pub their_margin: f32,
    /// Our logit of our token minus our logit of theirs (same context).
    pub our_margin: f32,
}

/// The Python interpreter that drives llama.cpp.
pub(crate) fn python() -> String {
    std::env::var("NEUROSHARD_PYTHON").unwrap_or_else(|_| "python3".into())
}

/// Whether the interpreter can import `llama_cpp` (the reason when it cannot).
pub fn available() -> Result<(), String> {
    match Command::new(python())
        .args(["-c", "import llama_cpp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(s) if s.success() => Ok(()),
        Ok(_) => Err(format!(
            "{} cannot import llama_cpp (pip install llama-cpp-python, or point \
             NEUROSHARD_PYTHON at an interpreter that has it)",
            python()
        )),
        Err(e) => Err(format!("{} not runnable: {e}", python())),
    }
}

/// Decodes `steps` greedy tokens after `prompt` with llama.cpp on `model` and compares
/// them and its logits with ours (`weights` must be the whole model from the same file).
/// `our_tokens` are our greedy tokens after the same prompt.
pub fn compare(
    model: &Path,
    weights: &ModelWeights,
    prompt: &[u32],
    our_tokens: &[u32],
    steps: usize,
    threads: usize,
) -> anyhow::Result<LlamaCppComparison> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("driver.py");
    std::fs::write(&script, DRIVER)?;
    let logits_path = dir.path().join("logits.f32");
    let out = Command::new(python())
        .arg(&script)
        .arg(model)
        .arg(steps.to_string())
        .arg(threads.to_string())
        .arg(&logits_path)
        .arg(serde_json::to_string(prompt)?)
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", python()))?;
    if !out.status.success() {
        anyhow::bail!(
            "{} driving llama-cpp-python exited with {}: {}",
            python(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    #[derive(serde::Deserialize)]
    struct Reply {
        version: String,
        tokens: Vec<u32>,
        seconds: f64,
    }
    let reply: Reply = serde_json::from_slice(&out.stdout).context("llama-cpp-python's reply")?;
    let raw = std::fs::read(&logits_path)?;
    let vocab = weights.config.vocab_size;
    let theirs: Vec<f32> = raw
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if reply.tokens.len() != steps || theirs.len() != steps * vocab {
        anyhow::bail!(
            "llama-cpp-python returned {} tokens and {} logits",
            reply.tokens.len(),
            theirs.len()
        );
    }
    if theirs
        .chunks_exact(vocab)
        .any(|row| row.iter().all(|&v| v == row[0]))
    {
        anyhow::bail!("llama-cpp-python returned constant logits (its scores were not filled)");
    }
    // Our logits on llama.cpp's sequence: the prompt, then its tokens one step at a time.
    let exec = ShardExecutor::new(weights.clone())?;
    let mut cache = exec.new_cache();
    let mut ours = Vec::with_capacity(steps * vocab);
    let mut input = prompt.to_vec();
    let mut pos = 0;
    for &t in &reply.tokens {
        let h = exec.forward(&mut cache, ExecInput::Tokens(&input), pos)?;
        let last = h.narrow(1, input.len() - 1, 1)?;
        ours.extend(exec.head(&last)?.flatten_all()?.to_vec1::<f32>()?);
        pos += input.len();
        input = vec![t];
    }
    let step_rows = |v: &[f32]| {
        v.chunks_exact(vocab)
            .map(<[f32]>::to_vec)
            .collect::<Vec<_>>()
    };
    let (ours, theirs) = (step_rows(&ours), step_rows(&theirs));
    let top1 = |row: &[f32]| -> anyhow::Result<u32> {
        let t = candle_core::Tensor::from_slice(row, (1, row.len()), &candle_core::Device::Cpu)?;
        Ok(argmax_rows(&t)?[0])
    };
    let mut top1_agreement = 0;
    for (o, t) in ours.iter().zip(&theirs) {
        if top1(o)? == top1(t)? {
            top1_agreement += 1;
        }
    }
    let max_logit_diff = ours
        .iter()
        .zip(&theirs)
        .flat_map(|(o, t)| o.iter().zip(t).map(|(a, b)| (a - b).abs()))
        .fold(0f32, f32::max);
    let first_divergence = reply
        .tokens
        .iter()
        .zip(our_tokens)
        .position(|(a, b)| a != b)
        .map(|step| {
            let (theirs_tok, ours_tok) = (reply.tokens[step], our_tokens[step]);
            let (o, t) = (&ours[step], &theirs[step]);
            Divergence {
                step,
                theirs: theirs_tok,
                ours: ours_tok,
                their_margin: t[theirs_tok as usize] - t[ours_tok as usize],
                our_margin: o[ours_tok as usize] - o[theirs_tok as usize],
            }
        });
    Ok(LlamaCppComparison {
        version: reply.version,
        threads,
        tokens_per_second: steps.saturating_sub(1) as f64 / reply.seconds.max(1e-9),
        tokens: reply.tokens,
        top1_agreement,
        max_logit_diff,
        first_divergence,
        logits: theirs,
    })
}
