//! `neuroshard bench inference --make-model 1b --format q4_k_m,...`: our decode speed
//! against llama.cpp's on a random-weight Llama-shaped model of about a billion parameters
//! whose every dimension is a multiple of 256, so that llama.cpp's K-quant files keep
//! their matrices in K formats (the default model's 576-wide rows cannot).
//!
//! The bench writes the model once as an F16 GGUF from a seeded generator
//! ([`write_f16_model`]), has llama.cpp's own quantizer (`llama_model_quantize` through
//! llama-cpp-python) produce each format from it, and caches the files in
//! `~/.cache/neuroshard/models/bench-1b-*.gguf`. Then, per file, both engines decode the
//! same greedy continuation of the same prompt ids with the same thread count, in
//! alternating rounds (ours, llama.cpp, llama.cpp, ours, ...; llama.cpp stays loaded in
//! one driver process between its rounds), so a neighbour's load on the shared host
//! falls on both; the median of each engine's rounds and their ratio are printed, with
//! the load average before and after.

use crate::inference::timed;
use crate::llamacpp::python;
use anyhow::Context;
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use neuroshard_inference::decode::DecodeOptions;
use neuroshard_inference::generate::{client_for, local_route};
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

/// Shape of the generated model: Llama 3.2 1B's blocks with a 32,768-entry vocabulary
/// (tied head): 16 x 60.8 M + 67 M = 1.04 B parameters.
#[derive(Clone, Copy, Debug)]
pub struct ModelShape {
    pub hidden: usize,
    pub ffn: usize,
    pub layers: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub vocab: usize,
}

/// The `1b` shape.
pub const SHAPE_1B: ModelShape = ModelShape {
    hidden: 2048,
    ffn: 8192,
    layers: 16,
    heads: 32,
    kv_heads: 8,
    vocab: 32768,
};

/// llama.cpp's file types (`enum llama_ftype`) the bench knows, by their usual names.
pub const FORMATS: [(&str, u32); 8] = [
    ("q4_k_m", 15),
    ("q5_k_m", 17),
    ("q6_k", 18),
    ("q8_0", 7),
    ("q4_0", 2),
    ("q4_1", 3),
    ("q5_0", 8),
    ("q5_1", 9),
];

/// Options of [`run`].
#[derive(Clone, Debug)]
pub struct FormatsOptions {
    /// Only `1b` is known.
    pub make_model: String,
    /// Names from [`FORMATS`].
    pub formats: Vec<String>,
    /// Where the files are cached.
    pub dir: PathBuf,
    /// Greedy tokens per round.
    pub tokens: usize,
    /// Timed rounds per engine (after one warm-up round each).
    pub rounds: usize,
}

/// Seeded uniform values in `[-1, 1)` (the cached files are keyed by name, so a `rand`
/// upgrade that changes the stream only changes what a fresh cache holds).
struct Uniform(rand::rngs::StdRng);

impl Uniform {
    fn new(seed: u64) -> Self {
        Self(rand::SeedableRng::seed_from_u64(seed))
    }

    fn next(&mut self) -> f32 {
        rand::Rng::gen_range(&mut self.0, -1.0f32..1.0)
    }

    /// A `rows x cols` matrix of uniform values with unit-variance products
    /// (`sqrt(3 / cols)` bound), stored as F16.
    fn matrix(&mut self, rows: usize, cols: usize) -> anyhow::Result<QTensor> {
        let bound = (3.0 / cols as f32).sqrt();
        let v: Vec<f32> = (0..rows * cols).map(|_| self.next() * bound).collect();
        let t = Tensor::from_vec(v, (rows, cols), &Device::Cpu)?;
        Ok(QTensor::quantize(&t, GgmlDType::F16)?)
    }
}

fn ones(len: usize) -> anyhow::Result<QTensor> {
    let t = Tensor::ones(len, candle_core::DType::F32, &Device::Cpu)?;
    Ok(QTensor::quantize(&t, GgmlDType::F32)?)
}

/// Writes the random model of `shape` as an F16 GGUF (norms F32, tokenizer `none`).
pub fn write_f16_model(path: &Path, shape: &ModelShape, seed: u64) -> anyhow::Result<()> {
    let s = shape;
    let hd = s.hidden / s.heads;
    let mut rng = Uniform::new(seed);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    for l in 0..s.layers {
        for (name, rows, cols) in [
            ("attn_q", s.hidden, s.hidden),
            ("attn_k", s.kv_heads * hd, s.hidden),
            ("attn_v", s.kv_heads * hd, s.hidden),
            ("attn_output", s.hidden, s.hidden),
            ("ffn_gate", s.ffn, s.hidden),
            ("ffn_up", s.ffn, s.hidden),
            ("ffn_down", s.hidden, s.ffn),
        ] {
            tensors.push((format!("blk.{l}.{name}.weight"), rng.matrix(rows, cols)?));
        }
        tensors.push((format!("blk.{l}.attn_norm.weight"), ones(s.hidden)?));
        tensors.push((format!("blk.{l}.ffn_norm.weight"), ones(s.hidden)?));
    }
    // The embedding (also the tied head) in unit-ish entries: `matrix` with cols = 3.
    tensors.push(("token_embd.weight".into(), {
        let mut e = Uniform::new(seed ^ 0x5eed);
        let v: Vec<f32> = (0..s.vocab * s.hidden).map(|_| e.next()).collect();
        QTensor::quantize(
            &Tensor::from_vec(v, (s.vocab, s.hidden), &Device::Cpu)?,
            GgmlDType::F16,
        )?
    }));
    tensors.push(("output_norm.weight".into(), ones(s.hidden)?));
    let u = |v: usize| Value::U32(v as u32);
    let md: Vec<(&str, Value)> = vec![
        ("general.architecture", Value::String("llama".into())),
        ("general.name", Value::String("neuroshard bench 1b".into())),
        ("llama.context_length", u(4096)),
        ("llama.embedding_length", u(s.hidden)),
        ("llama.block_count", u(s.layers)),
        ("llama.feed_forward_length", u(s.ffn)),
        ("llama.rope.dimension_count", u(hd)),
        ("llama.attention.head_count", u(s.heads)),
        ("llama.attention.head_count_kv", u(s.kv_heads)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
        ("llama.rope.freq_base", Value::F32(500000.0)),
        ("llama.vocab_size", u(s.vocab)),
        ("tokenizer.ggml.model", Value::String("none".into())),
    ];
    let md: Vec<_> = md.iter().map(|(k, v)| (*k, v)).collect();
    let tensors: Vec<_> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let tmp = path.with_extension("gguf.part");
    let mut file = std::io::BufWriter::new(
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?,
    );
    gguf_file::write(&mut file, &md, &tensors)?;
    file.flush()?;
    drop(file);
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// `python quantize.py <in> <out> <ftype> <threads>`: llama.cpp's quantizer, with
/// `allow_requantize` (so a quantized source works too).
const QUANTIZE: &str = r#"
import sys, ctypes, llama_cpp
src, dst, ftype, threads = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
p = llama_cpp.llama_model_quantize_default_params()
p.ftype = ftype
p.nthread = threads
p.allow_requantize = True
rc = llama_cpp.llama_model_quantize(src.encode(), dst.encode(), ctypes.byref(p))
sys.exit(0 if rc == 0 else 1)
"#;

/// Quantizes `src` to llama.cpp's file type `ftype` into `dst` with its own quantizer.
pub fn llama_quantize(src: &Path, dst: &Path, ftype: u32, threads: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let script = dir.path().join("quantize.py");
    std::fs::write(&script, QUANTIZE)?;
    let tmp = dst.with_extension("gguf.part");
    let out = Command::new(python())
        .arg(&script)
        .arg(src)
        .arg(&tmp)
        .arg(ftype.to_string())
        .arg(threads.to_string())
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {}", python()))?;
    if !out.status.success() {
        anyhow::bail!(
            "llama.cpp's quantizer failed on {} (type {ftype}): {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    std::fs::rename(&tmp, dst)?;
    Ok(())
}

/// `python driver.py <model> <threads> <tokens> <prompt-ids-json>`: loads the model once,
/// then for every line on stdin decodes `tokens` greedy tokens after the prompt and
/// prints `{"seconds": s, "tokens": [...]}` (time after the first token).
const DRIVER: &str = r#"
import sys, json, time
import numpy as np
import llama_cpp
path, threads, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
prompt = json.loads(sys.argv[4])
llm = llama_cpp.Llama(model_path=path, n_threads=threads, n_threads_batch=threads,
                      n_ctx=len(prompt) + steps + 8, verbose=False)
vocab = llm.n_vocab()
print(json.dumps({"version": llama_cpp.__version__}), flush=True)
for _ in sys.stdin:
    llm.reset()
    llm.eval(prompt)
    tokens, start = [], None
    for i in range(steps):
        logits = np.ctypeslib.as_array(llama_cpp.llama_get_logits_ith(llm.ctx, -1), shape=(vocab,))
        tokens.append(int(np.argmax(logits)))
        if start is None:
            start = time.perf_counter()
        if i + 1 < steps:
            llm.eval([tokens[-1]])
    print(json.dumps({"seconds": time.perf_counter() - start, "tokens": tokens}), flush=True)
"#;

/// llama.cpp loaded in a driver process, decoding on request.
struct LlamaDriver {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
    version: String,
    _dir: tempfile::TempDir,
}

#[derive(serde::Deserialize)]
struct Round {
    seconds: f64,
    tokens: Vec<u32>,
}

impl LlamaDriver {
    fn start(model: &Path, threads: usize, steps: usize, prompt: &[u32]) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let script = dir.path().join("driver.py");
        std::fs::write(&script, DRIVER)?;
        let mut child = Command::new(python())
            .arg(&script)
            .arg(model)
            .arg(threads.to_string())
            .arg(steps.to_string())
            .arg(serde_json::to_string(prompt)?)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("running {}", python()))?;
        let stdin = child.stdin.take().context("driver stdin")?;
        let stdout = BufReader::new(child.stdout.take().context("driver stdout")?);
        let mut driver = Self {
            child,
            stdin,
            stdout,
            version: String::new(),
            _dir: dir,
        };
        #[derive(serde::Deserialize)]
        struct Hello {
            version: String,
        }
        let hello: Hello = serde_json::from_str(&driver.line()?).context("driver greeting")?;
        driver.version = hello.version;
        Ok(driver)
    }

    fn line(&mut self) -> anyhow::Result<String> {
        let mut line = String::new();
        if self.stdout.read_line(&mut line)? == 0 {
            anyhow::bail!("the llama-cpp-python driver exited (see its stderr above)");
        }
        Ok(line)
    }

    /// One greedy decode: tok/s after the first token, and the tokens.
    fn round(&mut self) -> anyhow::Result<(f64, Vec<u32>)> {
        writeln!(self.stdin, "go")?;
        self.stdin.flush()?;
        let r: Round = serde_json::from_str(&self.line()?).context("driver reply")?;
        let tps = r.tokens.len().saturating_sub(1) as f64 / r.seconds.max(1e-9);
        Ok((tps, r.tokens))
    }
}

impl Drop for LlamaDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One file's figures.
#[derive(Clone, Debug)]
pub struct FormatRow {
    pub format: String,
    pub file_mib: f64,
    pub ours: Vec<f64>,
    pub theirs: Vec<f64>,
    /// Where our greedy tokens first differ from llama.cpp's (None: all equal).
    pub parts_at: Option<usize>,
}

fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => 0.0,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Compares both engines on `path`, `rounds` alternating rounds each after a warm-up.
fn compare_file(path: &Path, format: &str, opts: &FormatsOptions) -> anyhow::Result<FormatRow> {
    let weights = ModelWeights::load(
        &ModelSource::Gguf(path.to_path_buf()),
        None,
        Precision::Native,
    )?;
    let vocab = weights.config.vocab_size as u64;
    let mut rng = Uniform::new(99);
    let prompt: Vec<u32> = (0..32)
        .map(|_| ((rng.next() + 1.0) * 0.5 * vocab as f32) as u32 % vocab as u32)
        .collect();
    let hash = neuroshard_primitives::Hash::from([0x1b; 32]);
    let route = local_route(&weights, hash, &[], Duration::ZERO)?;
    let dopts = DecodeOptions {
        max_tokens: opts.tokens,
        ..Default::default()
    };
    let threads = rayon::current_num_threads();
    let mut llama = LlamaDriver::start(path, threads, opts.tokens, &prompt)?;
    let mut session = 0u8;
    let mut ours_round = || -> anyhow::Result<(f64, Vec<u32>)> {
        session = session.wrapping_add(1);
        let (d, tps) = timed(
            &mut client_for(&route, hash, [session; 16])?,
            &prompt,
            &dopts,
            None,
        )?;
        Ok((tps, d.tokens))
    };
    let (_, our_tokens) = ours_round()?;
    let (_, their_tokens) = llama.round()?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for r in 0..opts.rounds {
        if r % 2 == 0 {
            ours.push(ours_round()?.0);
            theirs.push(llama.round()?.0);
        } else {
            theirs.push(llama.round()?.0);
            ours.push(ours_round()?.0);
        }
    }
    let parts_at = our_tokens
        .iter()
        .zip(&their_tokens)
        .position(|(a, b)| a != b);
    eprintln!(
        "bench: {format}: llama-cpp-python {}, {threads} threads",
        llama.version
    );
    Ok(FormatRow {
        format: format.into(),
        file_mib: std::fs::metadata(path)?.len() as f64 / (1 << 20) as f64,
        ours,
        theirs,
        parts_at,
    })
}

/// The cached file of `format` (made from the F16 source if missing).
fn model_file(opts: &FormatsOptions, format: &str) -> anyhow::Result<PathBuf> {
    let &(_, ftype) = FORMATS
        .iter()
        .find(|(name, _)| *name == format)
        .with_context(|| {
            let known: Vec<_> = FORMATS.iter().map(|(n, _)| *n).collect();
            format!("unknown format {format} (known: {})", known.join(", "))
        })?;
    std::fs::create_dir_all(&opts.dir)?;
    let stem = format!("bench-{}", opts.make_model);
    let src = opts.dir.join(format!("{stem}-f16.gguf"));
    if !src.exists() {
        eprintln!("bench: writing {}", src.display());
        write_f16_model(&src, &SHAPE_1B, 1)?;
    }
    let dst = opts.dir.join(format!("{stem}-{format}.gguf"));
    if !dst.exists() {
        eprintln!("bench: quantizing {} with llama.cpp", dst.display());
        llama_quantize(&src, &dst, ftype, rayon::current_num_threads())?;
    }
    Ok(dst)
}

/// Runs the comparison for every format of `opts` and prints the table.
pub fn run(opts: &FormatsOptions) -> anyhow::Result<Vec<FormatRow>> {
    if opts.make_model != "1b" {
        anyhow::bail!("--make-model knows only 1b, not {}", opts.make_model);
    }
    crate::llamacpp::available().map_err(anyhow::Error::msg)?;
    let mut rows = Vec::new();
    let load_before = load_average();
    for format in &opts.formats {
        let path = model_file(opts, format)?;
        let row = compare_file(&path, format, opts)?;
        println!("{}", row_line(&row));
        rows.push(row);
    }
    println!(
        "load average before {load_before}, after {} ({} tokens per round, {} rounds per engine, alternating)",
        load_average(),
        opts.tokens,
        opts.rounds
    );
    Ok(rows)
}

fn row_line(r: &FormatRow) -> String {
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.1}"))
            .collect::<Vec<_>>()
            .join(" / ")
    };
    let (o, t) = (median(&r.ours), median(&r.theirs));
    let parts = match r.parts_at {
        None => "greedy tokens identical".to_string(),
        Some(s) => format!("greedy tokens part at step {s}"),
    };
    format!(
        "{:>7} ({:.0} MiB): ours {o:6.2} tok/s [{}], llama.cpp {t:6.2} tok/s [{}], ours/llama.cpp = {:.2}x; {parts}",
        r.format,
        r.file_mib,
        fmt(&r.ours),
        fmt(&r.theirs),
        o / t.max(1e-9)
    )
}
