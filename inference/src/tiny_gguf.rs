//! Tiny random-weight GGUF files of every supported family, written deterministically
//! (a fixed linear congruential generator, no `rand` version drift): the format tests and
//! the fuzz target use a one-layer `llama` file in chosen formats, and the families'
//! tests and llama.cpp oracle fixtures use [`tiny_family`] files. Hidden size 256 and FFN
//! 512, so every K format fits; vocabulary 256 with llama.cpp's `none` tokenizer (the
//! files carry no vocabulary: tests feed token ids).
//!
//! `scripts/make-oracle-fixtures.py` runs llama.cpp on exactly these files (written by
//! the `tiny_ggufs` example), so changing what is written here changes the files'
//! hashes and the oracle test asks for the fixtures to be regenerated.

use crate::error::{InferenceError, Result};
use candle_core::quantized::gguf_file::{self, Value};
use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{Device, Tensor};
use std::path::{Path, PathBuf};

/// Eight formats for [`write_tiny_gguf`]'s matrices: every K-quant, the other 32-value
/// formats and both 16-bit floats in one file.
pub const MIXED_FORMATS: [GgmlDType; 8] = [
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q4_0,
    GgmlDType::F16,
    GgmlDType::BF16,
];

const HIDDEN: usize = 256;
const FFN: usize = 512;
const VOCAB: usize = 256;
const HEADS: usize = 4;
const KV_HEADS: usize = 2;

/// What a tiny GGUF file holds.
#[derive(Clone, Debug)]
pub struct TinyGguf {
    /// The `general.architecture`.
    pub arch: &'static str,
    pub layers: usize,
    /// Head size (`hidden / heads` = 64 unless a family says otherwise).
    pub head_dim: usize,
    /// Formats of q, k, v, o, gate, up, down and the token embedding (and the output
    /// matrix, when untied).
    pub formats: [GgmlDType; 8],
    pub qkv_bias: bool,
    pub qk_norm: bool,
    /// Llama 3 frequency factors (`rope_freqs.weight`).
    pub rope_freqs: bool,
    /// A separate `output.weight` instead of the tied embedding.
    pub untied_output: bool,
    /// Norm weights `1 + jitter` instead of ones.
    pub norm_jitter: bool,
    /// `attn_qkv` instead of `attn_q` / `_k` / `_v` (in q's format), and `ffn_up` holding
    /// gate and up (in up's format), as Phi-3 files have them.
    pub fused: bool,
    /// Extra `{arch}.` metadata (RoPE scaling, sliding window, ...).
    pub metadata: Vec<(String, Value)>,
    pub seed: u64,
}

/// The standard tiny file of each family the oracle fixtures cover, by name: `llama`
/// (Llama 3 frequency factors, mostly K-quants), `qwen2` (QKV biases, Q8_0 / Q5 formats,
/// untied head), `qwen3` (q/k norms, head size 32, YaRN, F16 embedding), `mistral3`
/// (linear RoPE scaling, BF16 and Q4 formats) and `phi3` (fused projections).
///
/// `{family}-f32` is the same file with every matrix in F32: without quantized
/// activations, both engines agree to float rounding (the quantized files' 8-bit
/// activations make tiny random models sensitive to one-ulp differences, see
/// `tests/families.rs`).
pub fn tiny_family(name: &str) -> Option<TinyGguf> {
    use GgmlDType::*;
    if let Some(family) = name.strip_suffix("-f32") {
        return tiny_family(family).map(|spec| TinyGguf {
            formats: [F32; 8],
            ..spec
        });
    }
    let base = TinyGguf {
        arch: "llama",
        layers: 3,
        head_dim: HIDDEN / HEADS,
        formats: [Q4K, Q4K, Q6K, Q4K, Q4K, Q4K, Q6K, Q8_0],
        qkv_bias: false,
        qk_norm: false,
        rope_freqs: false,
        untied_output: false,
        norm_jitter: true,
        fused: false,
        metadata: Vec::new(),
        seed: 7,
    };
    let md = |pairs: &[(&str, Value)]| -> Vec<(String, Value)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    };
    Some(match name {
        "llama" => TinyGguf {
            rope_freqs: true,
            metadata: md(&[("rope.freq_base", Value::F32(500000.0))]),
            ..base
        },
        "qwen2" => TinyGguf {
            arch: "qwen2",
            formats: [Q8_0, Q8_0, Q8_0, Q5_0, Q5_1, Q5_1, Q8_0, Q6K],
            qkv_bias: true,
            untied_output: true,
            metadata: md(&[("rope.freq_base", Value::F32(1000000.0))]),
            seed: 11,
            ..base
        },
        "qwen3" => TinyGguf {
            arch: "qwen3",
            head_dim: 32,
            // `attn_output` is 128 wide here: no K format fits it.
            formats: [Q5K, Q5K, Q8_0, Q8_0, Q5K, Q5K, Q6K, F16],
            qk_norm: true,
            metadata: md(&[
                ("rope.freq_base", Value::F32(1000000.0)),
                ("rope.scaling.type", Value::String("yarn".into())),
                ("rope.scaling.factor", Value::F32(4.0)),
                ("rope.scaling.original_context_length", Value::U32(32)),
            ]),
            seed: 13,
            ..base
        },
        "mistral3" => TinyGguf {
            arch: "mistral3",
            formats: [BF16, BF16, BF16, Q4_0, Q4_1, Q4_1, Q8_0, Q8_0],
            metadata: md(&[
                ("rope.freq_base", Value::F32(1000000.0)),
                ("rope.scaling.type", Value::String("linear".into())),
                ("rope.scaling.factor", Value::F32(2.0)),
            ]),
            seed: 17,
            ..base
        },
        "phi3" => TinyGguf {
            arch: "phi3",
            formats: [Q8_0, Q8_0, Q8_0, Q6K, Q4K, Q4K, Q5K, Q8_0],
            fused: true,
            metadata: md(&[("rope.freq_base", Value::F32(10000.0))]),
            seed: 31,
            ..base
        },
        _ => return None,
    })
}

/// The families [`tiny_family`] knows.
pub const TINY_FAMILIES: [&str; 5] = ["llama", "qwen2", "qwen3", "mistral3", "phi3"];

/// Every file name [`tiny_family`] knows: each family in its mixed formats and in F32.
pub fn tiny_family_files() -> Vec<String> {
    TINY_FAMILIES
        .iter()
        .flat_map(|f| [f.to_string(), format!("{f}-f32")])
        .collect()
}

/// A deterministic stream of small values in `[-0.1, 0.1)`.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> f32 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 0.2
    }

    fn tensor(&mut self, rows: usize, cols: usize) -> Result<Tensor> {
        let v: Vec<f32> = (0..rows * cols).map(|_| self.next()).collect();
        Ok(Tensor::from_vec(v, (rows, cols), &Device::Cpu)?)
    }

    fn vector(&mut self, len: usize, around: f32, scale: f32) -> Result<Tensor> {
        let v: Vec<f32> = (0..len).map(|_| around + self.next() * scale).collect();
        Ok(Tensor::from_vec(v, len, &Device::Cpu)?)
    }
}

/// Writes a one-layer random llama GGUF (hidden 256, so every K format fits) with its
/// matrices in `formats` (q, k, v, o, gate, up, down, token embedding): for tests of
/// the formats and for fuzzing the GGUF loader.
pub fn write_tiny_gguf(path: &Path, formats: [GgmlDType; 8]) -> Result<()> {
    let llama =
        tiny_family("llama").ok_or_else(|| InferenceError::BadRequest("no llama".into()))?;
    let spec = TinyGguf {
        layers: 1,
        formats,
        rope_freqs: false,
        norm_jitter: false,
        metadata: Vec::new(),
        seed: 1,
        ..llama
    };
    write_gguf(path, &spec)
}

/// Writes the file `spec` describes.
pub fn write_gguf(path: &Path, spec: &TinyGguf) -> Result<()> {
    write(path, spec, &tensors(spec)?)
}

/// Writes the model `spec` describes split into `count` parts as llama.cpp's
/// `gguf-split` does (`STEM-00001-of-0000N.gguf`, ...: the metadata and `split.*` keys in
/// the first, consecutive runs of tensors in each); returns the first part's path.
pub fn write_split_gguf(dir: &Path, stem: &str, spec: &TinyGguf, count: usize) -> Result<PathBuf> {
    let tensors = tensors(spec)?;
    let per_part = tensors.len().div_ceil(count.max(1));
    let none = vec![("tokenizer.ggml.model".into(), Value::String("none".into()))];
    let mut first = None;
    for (no, chunk) in tensors.chunks(per_part).enumerate() {
        let path = dir.join(format!("{stem}-{:05}-of-{count:05}.gguf", no + 1));
        let mut md = if no == 0 {
            metadata(spec, none.clone())
        } else {
            Vec::new()
        };
        md.push(("split.no".into(), Value::U16(no as u16)));
        md.push(("split.count".into(), Value::U16(count as u16)));
        md.push((
            "split.tensors.count".into(),
            Value::I32(tensors.len() as i32),
        ));
        write_file(&path, &md, chunk)?;
        first.get_or_insert(path);
    }
    first.ok_or_else(|| InferenceError::BadRequest("no parts".into()))
}

/// The tensors of the model `spec` describes, in file order.
fn tensors(spec: &TinyGguf) -> Result<Vec<(String, QTensor)>> {
    let mut rng = Lcg(spec.seed);
    let (h, hd) = (HIDDEN, spec.head_dim);
    let (q_dim, kv_dim) = (HEADS * hd, KV_HEADS * hd);
    let f = spec.formats;
    let q = |t: Tensor, dtype: GgmlDType| QTensor::quantize(&t, dtype);
    let mut tensors: Vec<(String, QTensor)> = Vec::new();
    let norm = |rng: &mut Lcg, len: usize| -> Result<QTensor> {
        let jitter = if spec.norm_jitter { 1.0 } else { 0.0 };
        Ok(q(rng.vector(len, 1.0, jitter)?, GgmlDType::F32)?)
    };
    for l in 0..spec.layers {
        let shapes = [
            ("attn_q", q_dim, h),
            ("attn_k", kv_dim, h),
            ("attn_v", kv_dim, h),
            ("attn_output", h, q_dim),
            ("ffn_gate", FFN, h),
            ("ffn_up", FFN, h),
            ("ffn_down", h, FFN),
        ];
        let mut drawn = Vec::with_capacity(shapes.len());
        for (name, rows, cols) in shapes {
            drawn.push((format!("blk.{l}.{name}.weight"), rng.tensor(rows, cols)?));
        }
        if spec.fused {
            let cat = |ts: &[&Tensor]| Tensor::cat(ts, 0);
            let qkv = cat(&[&drawn[0].1, &drawn[1].1, &drawn[2].1])?;
            let gate_up = cat(&[&drawn[4].1, &drawn[5].1])?;
            tensors.push((format!("blk.{l}.attn_qkv.weight"), q(qkv, f[0])?));
            tensors.push((format!("blk.{l}.ffn_up.weight"), q(gate_up, f[5])?));
            for i in [3, 6] {
                tensors.push((drawn[i].0.clone(), q(drawn[i].1.clone(), f[i])?));
            }
        } else {
            for ((name, t), dtype) in drawn.into_iter().zip(f) {
                tensors.push((name, q(t, dtype)?));
            }
        }
        tensors.push((format!("blk.{l}.attn_norm.weight"), norm(&mut rng, h)?));
        tensors.push((format!("blk.{l}.ffn_norm.weight"), norm(&mut rng, h)?));
        if spec.qkv_bias {
            for (name, len) in [("attn_q", q_dim), ("attn_k", kv_dim), ("attn_v", kv_dim)] {
                let bias = q(rng.vector(len, 0.0, 5.0)?, GgmlDType::F32)?;
                tensors.push((format!("blk.{l}.{name}.bias"), bias));
            }
        }
        if spec.qk_norm {
            tensors.push((format!("blk.{l}.attn_q_norm.weight"), norm(&mut rng, hd)?));
            tensors.push((format!("blk.{l}.attn_k_norm.weight"), norm(&mut rng, hd)?));
        }
    }
    tensors.push(("token_embd.weight".into(), q(rng.tensor(VOCAB, h)?, f[7])?));
    tensors.push(("output_norm.weight".into(), norm(&mut rng, h)?));
    if spec.untied_output {
        tensors.push(("output.weight".into(), q(rng.tensor(VOCAB, h)?, f[7])?));
    }
    if spec.rope_freqs {
        // Llama 3's shape: 1 for the fast dimensions, rising to 8 for the slow ones.
        let half = hd / 2;
        let factors: Vec<f32> = (0..half)
            .map(|i| 1.0 + 7.0 * i.saturating_sub(half / 2) as f32 / (half / 2) as f32)
            .collect();
        let t = Tensor::from_vec(factors, hd / 2, &Device::Cpu)?;
        tensors.push(("rope_freqs.weight".into(), q(t, GgmlDType::F32)?));
    }
    Ok(tensors)
}

fn write(path: &Path, spec: &TinyGguf, tensors: &[(String, QTensor)]) -> Result<()> {
    let none = vec![("tokenizer.ggml.model".into(), Value::String("none".into()))];
    write_file(path, &metadata(spec, none), tensors)
}

/// The file's metadata: the architecture's hyper-parameters, `tokenizer` (after them)
/// and the spec's extra keys.
pub(crate) fn metadata(spec: &TinyGguf, tokenizer: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let a = spec.arch;
    let mut md: Vec<(String, Value)> = vec![
        ("general.architecture".into(), Value::String(a.into())),
        (format!("{a}.context_length"), Value::U32(128)),
        (format!("{a}.embedding_length"), Value::U32(HIDDEN as u32)),
        (format!("{a}.block_count"), Value::U32(spec.layers as u32)),
        (format!("{a}.feed_forward_length"), Value::U32(FFN as u32)),
        (
            format!("{a}.attention.head_count"),
            Value::U32(HEADS as u32),
        ),
        (
            format!("{a}.attention.head_count_kv"),
            Value::U32(KV_HEADS as u32),
        ),
        (
            format!("{a}.attention.layer_norm_rms_epsilon"),
            Value::F32(1e-5),
        ),
        (format!("{a}.vocab_size"), Value::U32(VOCAB as u32)),
    ];
    md.extend(tokenizer);
    if spec.head_dim != HIDDEN / HEADS {
        md.push((
            format!("{a}.attention.key_length"),
            Value::U32(spec.head_dim as u32),
        ));
        md.push((
            format!("{a}.attention.value_length"),
            Value::U32(spec.head_dim as u32),
        ));
    }
    md.extend(
        spec.metadata
            .iter()
            .map(|(k, v)| (format!("{a}.{k}"), v.clone())),
    );
    md
}

/// Writes a GGUF file of `md` and `tensors`.
pub(crate) fn write_file(
    path: &Path,
    md: &[(String, Value)],
    tensors: &[(String, QTensor)],
) -> Result<()> {
    let md: Vec<_> = md.iter().map(|(k, v)| (k.as_str(), v)).collect();
    let tensors: Vec<_> = tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
    let mut file = std::fs::File::create(path).map_err(|e| InferenceError::io(path, e))?;
    gguf_file::write(&mut file, &md, &tensors)?;
    Ok(())
}
