//! Loading a model's weights, or only the part one shard needs: the embedding (first
//! shard), transformer blocks `[start, end)`, and the final norm and LM head (last shard).
//! Sources are GGUF files of the families of [`crate::models`] (quantized, as the default
//! SmolLM2 model ships; loaded by [`crate::models::gguf`]) and Hugging Face Llama
//! safetensors checkpoints (`config.json` + `model.safetensors`). Weights are reference
//! counted, so one loaded model can be sliced into several in-process shards for free.
//!
//! GGUF matrices stay in their format for the kernels (`neuroshard_kernels::FORMATS`); a
//! matrix of a type without a kernel is a load error naming the tensor, never a silent
//! widening to f32 (only [`Precision::F32`] asks for that). The embedding table (a
//! lookup) and the norm vectors are dequantized to f32 at load.

use crate::config::ModelConfig;
use crate::error::{InferenceError, Result};
use candle_core::quantized::{gguf_file, GgmlDType, QMatMul, QTensor};
use candle_core::{DType, Device, Tensor};
use std::collections::HashMap;
use std::fs::File;
use std::io::BufReader;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where a model's weights live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ModelSource {
    /// A GGUF file (any family of [`crate::models`]).
    Gguf(PathBuf),
    /// A directory holding `config.json` and `model.safetensors` (Hugging Face Llama).
    Safetensors(PathBuf),
}

impl ModelSource {
    /// Guesses the kind from the path: a directory is a safetensors checkpoint.
    pub fn from_path(path: impl Into<PathBuf>) -> Self {
        let path = path.into();
        if path.is_dir() {
            Self::Safetensors(path)
        } else {
            Self::Gguf(path)
        }
    }

    /// The file whose hash identifies the model.
    pub fn weights_file(&self) -> PathBuf {
        match self {
            Self::Gguf(p) => p.clone(),
            Self::Safetensors(dir) => dir.join("model.safetensors"),
        }
    }
}

/// How to hold matrix weights in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Precision {
    /// As stored: quantized GGUF tensors stay quantized.
    Native,
    /// Dequantize every matrix to f32 (a slower, more exact target for a quantized drafter).
    F32,
}

/// The optional attention parts some families have (see [`crate::models`]).
#[derive(Clone, Debug, Default)]
pub struct AttnExtras {
    /// Query, key and value biases stacked (`q_dim + 2 * kv_dim`), as Qwen2 has them.
    pub qkv_bias: Option<Tensor>,
    /// RMS-norm weights (`head_dim`) applied to each query / key head before rotation
    /// (Qwen3).
    pub q_norm: Option<Tensor>,
    pub k_norm: Option<Tensor>,
}

impl AttnExtras {
    /// True when the block is the plain Llama block.
    pub fn is_empty(&self) -> bool {
        self.qkv_bias.is_none() && self.q_norm.is_none() && self.k_norm.is_none()
    }
}

/// One transformer block's weights.
#[derive(Debug)]
pub struct LayerWeights {
    pub wq: QMatMul,
    pub wk: QMatMul,
    pub wv: QMatMul,
    pub wo: QMatMul,
    pub w_gate: QMatMul,
    pub w_up: QMatMul,
    pub w_down: QMatMul,
    pub attn_norm: Tensor,
    pub ffn_norm: Tensor,
    pub extras: AttnExtras,
}

impl LayerWeights {
    /// A block from its matrices (query, key, value, output, gate, up, down), its two
    /// norms and its family's extra parts.
    pub fn new(
        matrices: [QMatMul; 7],
        attn_norm: Tensor,
        ffn_norm: Tensor,
        extras: AttnExtras,
    ) -> Self {
        let [wq, wk, wv, wo, w_gate, w_up, w_down] = matrices;
        Self {
            wq,
            wk,
            wv,
            wo,
            w_gate,
            w_up,
            w_down,
            attn_norm,
            ffn_norm,
            extras,
        }
    }
}

/// The weights of layers `range` of a model, plus embedding / head when the range
/// touches the model's ends.
#[derive(Clone, Debug)]
pub struct ModelWeights {
    pub config: ModelConfig,
    pub range: Range<usize>,
    pub embedding: Option<Tensor>,
    pub layers: Vec<Arc<LayerWeights>>,
    pub norm: Option<Tensor>,
    pub lm_head: Option<Arc<QMatMul>>,
}

pub(crate) fn check_range(range: &Range<usize>, config: &ModelConfig) -> Result<()> {
    if range.start >= range.end || range.end > config.num_layers {
        return Err(InferenceError::BadRequest(format!(
            "layer range {}-{} is not inside 0-{}",
            range.start, range.end, config.num_layers
        )));
    }
    Ok(())
}

impl ModelWeights {
    /// Loads layers `range` (all layers when `None`) from `source` onto the CPU.
    pub fn load(
        source: &ModelSource,
        range: Option<Range<usize>>,
        precision: Precision,
    ) -> Result<Self> {
        match source {
            ModelSource::Gguf(path) => crate::models::gguf::load(path, range, precision),
            ModelSource::Safetensors(dir) => load_safetensors(dir, range),
        }
    }

    /// The part of these weights a shard for `range` needs (shares the tensors).
    pub fn slice(&self, range: Range<usize>) -> Result<Self> {
        check_range(&range, &self.config)?;
        if range.start < self.range.start || range.end > self.range.end {
            return Err(InferenceError::BadRequest(format!(
                "layers {}-{} are not loaded (have {}-{})",
                range.start, range.end, self.range.start, self.range.end
            )));
        }
        let first = range.start == 0;
        let last = range.end == self.config.num_layers;
        let lo = range.start - self.range.start;
        let hi = range.end - self.range.start;
        Ok(Self {
            config: self.config.clone(),
            embedding: if first { self.embedding.clone() } else { None },
            layers: self.layers[lo..hi].to_vec(),
            norm: if last { self.norm.clone() } else { None },
            lm_head: if last { self.lm_head.clone() } else { None },
            range,
        })
    }

    /// True when this holds the embedding (it is the first shard).
    pub fn is_first(&self) -> bool {
        self.range.start == 0
    }

    /// True when this holds the final norm and LM head (it is the last shard).
    pub fn is_last(&self) -> bool {
        self.range.end == self.config.num_layers
    }
}

/// The matrix `name` of `path` as the kernels will hold it. Natively, a type without a
/// kernel is an error naming the tensor (nothing is widened to f32 behind the caller's
/// back), and F16 / BF16 stay in their format (candle's `QMatMul::from_qtensor` would
/// widen them to f32).
pub(crate) fn matmul_from(
    path: &Path,
    name: &str,
    q: QTensor,
    precision: Precision,
) -> Result<QMatMul> {
    Ok(match precision {
        Precision::Native => match q.dtype() {
            dtype if !crate::kernels::has_kernel(dtype) => {
                return Err(InferenceError::bad_file(
                    path,
                    format!(
                        "tensor {name} has type {dtype:?}, which has no kernel here \
                         (supported: {:?})",
                        crate::kernels::FORMATS
                    ),
                ))
            }
            GgmlDType::F16 | GgmlDType::BF16 => QMatMul::QTensor(Arc::new(q)),
            _ => QMatMul::from_qtensor(q)?,
        },
        Precision::F32 => QMatMul::Tensor(q.dequantize(&Device::Cpu)?),
    })
}

/// Reads and sanity-checks a GGUF header, naming the file in every error.
pub fn read_gguf_header(path: &Path) -> Result<(gguf_file::Content, BufReader<File>)> {
    let file = File::open(path).map_err(|e| InferenceError::io(path, e))?;
    let file_len = file
        .metadata()
        .map_err(|e| InferenceError::io(path, e))?
        .len();
    let mut reader = BufReader::new(file);
    let content = gguf_file::Content::read(&mut reader)
        .map_err(|e| InferenceError::bad_file(path, format!("not a readable GGUF file: {e}")))?;
    // Check every tensor lies inside the file before reading any of them, so a truncated
    // download is reported as such instead of as a tensor-level failure.
    for (name, info) in content.tensor_infos.iter() {
        // Computed with checks: the shape is the file's word (`elem_count` would overflow
        // and panic on a corrupt one).
        let dims = info.shape.dims();
        let size = dims
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|elems| {
                (elems / info.ggml_dtype.block_size()).checked_mul(info.ggml_dtype.type_size())
            })
            .ok_or_else(|| {
                InferenceError::bad_file(
                    path,
                    format!("tensor {name} has an impossible shape {dims:?}"),
                )
            })? as u64;
        let end = content
            .tensor_data_offset
            .saturating_add(info.offset)
            .saturating_add(size);
        if end > file_len {
            return Err(InferenceError::bad_file(
                path,
                format!(
                    "file is truncated: tensor {name} ends at byte {end} but the file has \
                     only {file_len} bytes"
                ),
            ));
        }
    }
    Ok((content, reader))
}

fn load_safetensors(dir: &Path, range: Option<Range<usize>>) -> Result<ModelWeights> {
    let config_path = dir.join("config.json");
    let text =
        std::fs::read_to_string(&config_path).map_err(|e| InferenceError::io(&config_path, e))?;
    let config = ModelConfig::from_hf_json(&text, &config_path)?;
    let range = range.unwrap_or(0..config.num_layers);
    check_range(&range, &config)?;
    let st_path = dir.join("model.safetensors");
    let mut tensors: HashMap<String, Tensor> =
        candle_core::safetensors::load(&st_path, &Device::Cpu).map_err(|e| {
            InferenceError::bad_file(&st_path, format!("not readable safetensors: {e}"))
        })?;
    let mut take = |name: &str| -> Result<Tensor> {
        let t = tensors
            .remove(name)
            .ok_or_else(|| InferenceError::bad_file(&st_path, format!("tensor {name} missing")))?;
        Ok(t.to_dtype(DType::F32)?)
    };
    let first = range.start == 0;
    let last = range.end == config.num_layers;
    let embedding = take("model.embed_tokens.weight")?;
    let (norm, lm_head) = if last {
        let norm = take("model.norm.weight")?;
        let head = take("lm_head.weight").unwrap_or_else(|_| embedding.clone());
        (Some(norm), Some(Arc::new(QMatMul::Tensor(head))))
    } else {
        (None, None)
    };
    let mut layers = Vec::with_capacity(range.len());
    for i in range.clone() {
        let p = format!("model.layers.{i}");
        let mut m = |name: &str| -> Result<QMatMul> {
            Ok(QMatMul::Tensor(take(&format!("{p}.{name}.weight"))?))
        };
        let names = [
            "self_attn.q_proj",
            "self_attn.k_proj",
            "self_attn.v_proj",
            "self_attn.o_proj",
            "mlp.gate_proj",
            "mlp.up_proj",
            "mlp.down_proj",
        ];
        let mut matrices = Vec::with_capacity(names.len());
        for name in names {
            matrices.push(m(name)?);
        }
        let matrices: [QMatMul; 7] = matrices
            .try_into()
            .map_err(|_| InferenceError::BadRequest("seven matrices".into()))?;
        layers.push(Arc::new(LayerWeights::new(
            matrices,
            take(&format!("{p}.input_layernorm.weight"))?,
            take(&format!("{p}.post_attention_layernorm.weight"))?,
            AttnExtras::default(),
        )));
    }
    Ok(ModelWeights {
        config,
        range,
        embedding: if first { Some(embedding) } else { None },
        layers,
        norm,
        lm_head,
    })
}

/// Quantizes every matrix of `weights` to `dtype` (for example Q4_1 of an f32 tiny model,
/// to make a cheap drafter that shares the target's tokenizer). Matrix widths must be
/// multiples of the quantization block size.
pub fn quantize_weights(weights: &ModelWeights, dtype: GgmlDType) -> Result<ModelWeights> {
    let q = |m: &QMatMul| -> Result<QMatMul> {
        let t = match m {
            QMatMul::QTensor(q) => q.dequantize(&Device::Cpu)?,
            QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32)?,
        };
        Ok(QMatMul::from_qtensor(QTensor::quantize(&t, dtype)?)?)
    };
    let layers = weights
        .layers
        .iter()
        .map(|l| {
            Ok(Arc::new(LayerWeights {
                wq: q(&l.wq)?,
                wk: q(&l.wk)?,
                wv: q(&l.wv)?,
                wo: q(&l.wo)?,
                w_gate: q(&l.w_gate)?,
                w_up: q(&l.w_up)?,
                w_down: q(&l.w_down)?,
                attn_norm: l.attn_norm.clone(),
                ffn_norm: l.ffn_norm.clone(),
                extras: l.extras.clone(),
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    let lm_head = match &weights.lm_head {
        Some(h) => Some(Arc::new(q(h)?)),
        None => None,
    };
    Ok(ModelWeights {
        layers,
        lm_head,
        ..weights.clone()
    })
}

#[cfg(test)]
mod tests {
    //! GGUF files of mixed formats load into the kernels' formats (and compute what the
    //! dequantized model computes); a tensor type without a kernel is a load error naming
    //! the tensor.

    use super::*;
    use crate::executor::{ExecInput, ShardExecutor};

    fn logits(path: &Path, precision: Precision) -> Vec<f32> {
        let source = ModelSource::Gguf(path.to_path_buf());
        let exec =
            ShardExecutor::new(ModelWeights::load(&source, None, precision).unwrap()).unwrap();
        let out = exec.forward(
            &mut exec.new_cache(),
            ExecInput::Tokens(&[3, 1, 4, 1, 5]),
            0,
        );
        out.unwrap().flatten_all().unwrap().to_vec1().unwrap()
    }

    #[test]
    fn mixed_format_files_compute_what_their_dequantized_weights_do() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("mixed.gguf");
        crate::tiny::write_tiny_gguf(&path, crate::tiny::MIXED_FORMATS).unwrap();
        let native = logits(&path, Precision::Native);
        let widened = logits(&path, Precision::F32);
        assert_eq!(native.len(), widened.len());
        let scale = widened.iter().fold(0f32, |a, v| a.max(v.abs()));
        for (n, w) in native.iter().zip(&widened) {
            // Only the 8-bit quantization of the activations separates them.
            assert!((n - w).abs() <= 0.05 * scale, "{n} vs {w} (scale {scale})");
        }
    }

    #[test]
    fn a_tensor_shape_whose_size_overflows_is_a_load_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("huge.gguf");
        crate::tiny::write_tiny_gguf(&path, crate::tiny::MIXED_FORMATS).unwrap();
        let mut bytes = std::fs::read(&path).unwrap();
        let name = b"output_norm.weight";
        let at = bytes.windows(name.len()).position(|w| w == name).unwrap() + name.len();
        // The tensor info: its number of dimensions (u32, 1 here), then each (u64).
        assert_eq!(bytes[at..at + 4], 1u32.to_le_bytes());
        bytes[at + 4..at + 12].copy_from_slice(&u64::MAX.to_le_bytes());
        std::fs::write(&path, &bytes).unwrap();
        let source = ModelSource::Gguf(path.clone());
        let msg = ModelWeights::load(&source, None, Precision::Native)
            .unwrap_err()
            .to_string();
        assert!(msg.contains("impossible shape"), "{msg}");
        assert!(msg.contains(&path.display().to_string()), "{msg}");
    }

    #[test]
    fn a_tensor_type_without_a_kernel_is_a_load_error_naming_it() {
        use GgmlDType::*;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q2k.gguf");
        crate::tiny::write_tiny_gguf(&path, [Q4K, Q4K, Q4K, Q4K, Q2K, Q4K, Q4K, Q8_0]).unwrap();
        let source = ModelSource::Gguf(path.clone());
        let err = ModelWeights::load(&source, None, Precision::Native).unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("blk.0.ffn_gate.weight") && msg.contains("Q2K"),
            "{msg}"
        );
        assert!(msg.contains("q2k.gguf"), "{msg}");
        // Dequantizing on purpose still works.
        assert!(ModelWeights::load(&source, None, Precision::F32).is_ok());
    }
}
