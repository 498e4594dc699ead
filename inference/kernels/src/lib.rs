//! The shard executor's CPU kernels, kept apart from the model code the way ggml is from
//! llama.cpp: the inference crate's executor calls them, and they know nothing of models,
//! sessions or the chain.
//!
//! Weight matrices are held in their GGUF quantization (Q4_1 and Q8_0, the formats of the
//! default SmolLM2 model; anything else is widened to f32 at load), multiplied with `m`
//! activation rows at once by fused dequantize-and-dot kernels ([`dot`]), split over
//! sixteen-row weight groups across rayon's pool; [`ops`] has attention, RMS norm,
//! rotary embedding and SwiGLU.
//!
//! Each activation row is quantized once per product (as candle and GGML do), and each
//! sixteen-row group of weights is read once for all `m` rows, so a speculative
//! verification of `m` drafted positions costs little more than one decoding step. Every
//! output value is computed by the same operations whatever `m`, whatever the split
//! across threads and whichever kernel version the CPU runs, so a position's result never
//! depends on the batch it was computed in nor on the machine. The products differ from
//! candle's `QMatMul` only in the last bits (candle sums each block's terms in another
//! order); the tests bound them against an f64 reference.

pub mod dot;
pub mod ops;
pub mod quant;

/// Why a matrix cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    /// The weights are not a matrix these kernels can hold.
    #[error("{0}")]
    BadMatrix(String),
    /// Reading the weights out of candle failed.
    #[error("tensor operation: {0}")]
    Candle(#[from] candle_core::Error),
}

pub type Result<T, E = KernelError> = std::result::Result<T, E>;
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device};
use quant::{ActQ80, ActQ81, Q41x16, Q80Groups, BLOCK, GROUP};
use rayon::prelude::*;

/// The thread pool the kernels run on: one thread per core (`None` if its threads could
/// not be started; the kernels then use rayon's global pool). Run a whole forward pass
/// inside it ([`in_pool`]) so the thread that drives the layers is itself one of the
/// workers: the products then start and finish without waking a blocked caller, which
/// otherwise costs two thread hand-offs for every one of the ~120 products per token.
pub fn pool() -> Option<&'static rayon::ThreadPool> {
    use std::sync::OnceLock;
    static POOL: OnceLock<Option<rayon::ThreadPool>> = OnceLock::new();
    POOL.get_or_init(|| {
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("neuroshard-kernels-{i}"))
            .build()
            .ok()
    })
    .as_ref()
}

/// Runs `f` on a thread of the kernels' [`pool`] (directly when already on one).
pub fn in_pool<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    match pool() {
        Some(pool) if pool.current_thread_index().is_none() => pool.install(f),
        _ => f(),
    }
}

/// A weight matrix of `rows` outputs by `cols` inputs, computing `x · Wᵀ`.
#[derive(Debug)]
pub struct QuantMatrix {
    rows: usize,
    cols: usize,
    data: Data,
}

#[derive(Debug)]
enum Data {
    /// Sixteen-row groups, `cols / 32` entries per group.
    Q4_1(Vec<Q41x16>),
    /// Sixteen-row groups, `cols / 32` entries per group.
    Q8_0(Q80Groups),
    /// Row-major values.
    F32(Vec<f32>),
}

/// A matrix's raw content as loaded.
enum Raw {
    Q4_1(Vec<u8>),
    Q8_0(Vec<u8>),
    F32(Vec<f32>),
}

fn raw(m: &QMatMul) -> Result<(Raw, usize, usize)> {
    let (dims, raw) = match m {
        QMatMul::QTensor(q) => {
            let dims = q.shape().dims().to_vec();
            let raw = match q.dtype() {
                GgmlDType::Q4_1 => Raw::Q4_1(q.data()?.into_owned()),
                GgmlDType::Q8_0 => Raw::Q8_0(q.data()?.into_owned()),
                _ => Raw::F32(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?),
            };
            (dims, raw)
        }
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => (
            t.dims().to_vec(),
            Raw::F32(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1()?),
        ),
    };
    match dims[..] {
        [rows, cols] => Ok((raw, rows, cols)),
        _ => Err(KernelError::BadMatrix(format!(
            "weight matrix of shape {dims:?}"
        ))),
    }
}

impl Raw {
    fn q4_1(&self) -> Option<&[u8]> {
        match self {
            Raw::Q4_1(b) => Some(b),
            _ => None,
        }
    }

    fn q8_0(&self) -> Option<&[u8]> {
        match self {
            Raw::Q8_0(b) => Some(b),
            _ => None,
        }
    }
}

/// The raw bytes of every part in order, when `pick` takes every part's format.
fn concat_bytes(raws: &[(Raw, usize, usize)], pick: fn(&Raw) -> Option<&[u8]>) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    for (raw, _, _) in raws {
        out.extend_from_slice(pick(raw)?);
    }
    Some(out)
}

fn widen(m: &QMatMul) -> Result<Vec<f32>> {
    Ok(match m {
        QMatMul::QTensor(q) => q.dequantize(&Device::Cpu)?,
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => t.to_dtype(DType::F32)?,
    }
    .flatten_all()?
    .to_vec1()?)
}

impl QuantMatrix {
    /// The matrix of one candle `QMatMul`.
    pub fn new(m: &QMatMul) -> Result<Self> {
        Self::stacked(&[m])
    }

    /// The rows of `parts` stacked into one matrix (for example the query, key and value
    /// projections, so one pass computes all three). Parts of different formats are all
    /// widened to f32.
    pub fn stacked(parts: &[&QMatMul]) -> Result<Self> {
        let mut raws = Vec::with_capacity(parts.len());
        for p in parts {
            raws.push(raw(p)?);
        }
        let cols = raws.first().map(|r| r.2).unwrap_or(0);
        let rows: usize = raws.iter().map(|r| r.1).sum();
        if raws.iter().any(|r| r.2 != cols) || rows == 0 || cols == 0 {
            return Err(KernelError::BadMatrix(
                "stacked matrices must share their width".into(),
            ));
        }
        let bad = || KernelError::BadMatrix(format!("malformed {rows}x{cols} weights"));
        let data = if let Some(bytes) = concat_bytes(&raws, Raw::q4_1) {
            Data::Q4_1(quant::q4_1_groups(&bytes, rows, cols).ok_or_else(bad)?)
        } else if let Some(bytes) = concat_bytes(&raws, Raw::q8_0) {
            Data::Q8_0(quant::q8_0_groups(&bytes, rows, cols).ok_or_else(bad)?)
        } else {
            let mut values = Vec::with_capacity(rows * cols);
            for (p, r) in parts.iter().zip(raws) {
                match r.0 {
                    Raw::F32(v) => values.extend(v),
                    _ => values.extend(widen(p)?),
                }
            }
            Data::F32(values)
        };
        Ok(Self { rows, cols, data })
    }

    /// Output size.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// `out = x · Wᵀ` for `m` rows: `x` is `m × cols`, `out` is `m × rows`, row-major.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_with(dot::best(), x, m, out)
    }

    /// [`Self::matmul`] with a chosen kernel version (one of [`dot::available`]).
    pub fn matmul_with(&self, isa: dot::Isa, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation size");
        assert_eq!(out.len(), m * self.rows, "output size");
        let (rows, cols) = (self.rows, self.cols);
        let nb = cols / BLOCK;
        // Work items are sixteen-row groups; each writes its `m × 16` results contiguously
        // into `t` (group major), which is copied into `out` at the end.
        let groups = rows.div_ceil(GROUP);
        let mut t = vec![[0f32; GROUP]; groups * m];
        let per_task = groups.div_ceil(rayon::current_num_threads() * 4).max(1);
        let run = |kernel: &(dyn Fn(usize, &mut [[f32; GROUP]]) + Sync), t: &mut [[f32; GROUP]]| {
            t.par_chunks_mut(per_task * m)
                .enumerate()
                .for_each(|(task, chunk)| {
                    for (i, out) in chunk.chunks_exact_mut(m).enumerate() {
                        kernel(task * per_task + i, out);
                    }
                });
        };
        match &self.data {
            Data::Q4_1(w) => {
                let mut act = vec![zero_q81(); m * nb];
                for (x, a) in x.chunks_exact(cols).zip(act.chunks_exact_mut(nb)) {
                    quant::quantize_q8_1(x, a);
                }
                run(
                    &|g, out| dot::q4_1_group(isa, &w[g * nb..(g + 1) * nb], &act, out),
                    &mut t,
                );
            }
            Data::Q8_0(w) => {
                let mut act = vec![zero_q80(); m * nb];
                for (x, a) in x.chunks_exact(cols).zip(act.chunks_exact_mut(nb)) {
                    quant::quantize_q8_0(x, a);
                }
                let blocks = |g: usize| g * nb..(g + 1) * nb;
                run(
                    &|g, out| dot::q8_0_group(isa, &w.qs[blocks(g)], &w.d[blocks(g)], &act, out),
                    &mut t,
                );
            }
            Data::F32(w) => {
                let kernel = |g: usize, out: &mut [[f32; GROUP]]| {
                    for k in 0..GROUP.min(rows - g * GROUP) {
                        let r = g * GROUP + k;
                        let w = &w[r * cols..(r + 1) * cols];
                        for (x, out) in x.chunks_exact(cols).zip(out.iter_mut()) {
                            out[k] = ops::dot_f32(w, x);
                        }
                    }
                };
                run(&kernel, &mut t);
            }
        }
        for (g, t) in t.chunks_exact(m).enumerate() {
            let (r0, n) = (g * GROUP, GROUP.min(rows - g * GROUP));
            for (i, t) in t.iter().enumerate() {
                out[i * rows + r0..i * rows + r0 + n].copy_from_slice(&t[..n]);
            }
        }
    }
}

fn zero_q81() -> ActQ81 {
    ActQ81 {
        qs: [0; BLOCK],
        d: 0.0,
        s: 0.0,
    }
}

fn zero_q80() -> ActQ80 {
    ActQ80 {
        qs: [0; BLOCK],
        d: 0.0,
    }
}

#[cfg(test)]
mod tests;
