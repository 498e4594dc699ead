//! [`QuantMatrix`]: a weight matrix held in its GGUF format (or, when stacked from parts
//! of different formats, one part per run of equal formats) and its product with `m`
//! activation rows, split over sixteen-row groups across the current rayon pool.
//!
//! Each part quantizes the activations the way its format's kernel takes them (once per
//! product and activation format, shared between parts), computes every group's `m × 16`
//! results into a group-major buffer and copies them into its rows of the output.

use super::dot::{self, NibbleView};
use super::packed::{self, HalfFormat, NibbleFormat, NibbleGroups};
use super::packed_k::{self, KGroups, Q6Kx16};
use super::quant::{self, ActQ80, ActQ81, ActQ8K, Q41x16, Q80Groups, BLOCK, GROUP, SUPER};
use super::{ops, KernelError, Result};
use candle_core::quantized::{GgmlDType, QMatMul};
use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

/// Every tensor type these kernels multiply with, without widening it.
pub const FORMATS: [GgmlDType; 11] = [
    GgmlDType::Q4_0,
    GgmlDType::Q4_1,
    GgmlDType::Q5_0,
    GgmlDType::Q5_1,
    GgmlDType::Q8_0,
    GgmlDType::Q4K,
    GgmlDType::Q5K,
    GgmlDType::Q6K,
    GgmlDType::F16,
    GgmlDType::BF16,
    GgmlDType::F32,
];

/// True when weights of type `dtype` have a kernel here (see [`FORMATS`]).
pub fn has_kernel(dtype: GgmlDType) -> bool {
    FORMATS.contains(&dtype)
}

/// A weight matrix of `rows` outputs by `cols` inputs, computing `x · Wᵀ`.
#[derive(Debug)]
pub struct QuantMatrix {
    rows: usize,
    cols: usize,
    parts: Vec<Part>,
}

/// Consecutive rows of one format.
#[derive(Debug)]
struct Part {
    rows: usize,
    data: Data,
}

#[derive(Debug)]
enum Data {
    /// Sixteen-row groups, `cols / 32` entries per group.
    Q4_1(Vec<Q41x16>),
    /// Sixteen-row groups, `cols / 32` entries per group.
    Q8_0(Q80Groups),
    /// Q4_0, Q5_0 or Q5_1: sixteen-row groups, `cols / 32` entries per group.
    Nibble(NibbleFormat, NibbleGroups),
    /// Q4_K, or Q5_K when it has fifth bits: `cols / 256` entries per group.
    Q4K(KGroups),
    /// `cols / 256` entries per group.
    Q6K(Vec<Q6Kx16>),
    /// F16 or BF16: `cols` entries per group.
    Half(HalfFormat, Vec<[u16; GROUP]>),
    /// Row-major values.
    F32(Vec<f32>),
}

/// A matrix's raw content as loaded: GGML bytes of a format, or f32 values.
enum Raw {
    Bytes(GgmlDType, Vec<u8>),
    F32(Vec<f32>),
}

impl Raw {
    fn dtype(&self) -> GgmlDType {
        match self {
            Raw::Bytes(d, _) => *d,
            Raw::F32(_) => GgmlDType::F32,
        }
    }
}

fn no_kernel(what: impl std::fmt::Debug) -> KernelError {
    KernelError::BadMatrix(format!(
        "no kernel for {what:?} weights (supported: {FORMATS:?})"
    ))
}

fn tensor_raw(t: &Tensor) -> Result<Raw> {
    let t = t.flatten_all()?;
    Ok(match t.dtype() {
        DType::F32 => Raw::F32(t.to_vec1()?),
        DType::F16 => Raw::Bytes(
            GgmlDType::F16,
            t.to_vec1::<half::f16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        DType::BF16 => Raw::Bytes(
            GgmlDType::BF16,
            t.to_vec1::<half::bf16>()?
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect(),
        ),
        other => return Err(no_kernel(other)),
    })
}

fn raw(m: &QMatMul) -> Result<(Raw, usize, usize)> {
    let (dims, raw) = match m {
        QMatMul::QTensor(q) => {
            let raw = match q.dtype() {
                // f32 values dequantize exactly.
                GgmlDType::F32 => Raw::F32(q.dequantize(&Device::Cpu)?.flatten_all()?.to_vec1()?),
                d if has_kernel(d) => Raw::Bytes(d, q.data()?.into_owned()),
                d => return Err(no_kernel(d)),
            };
            (q.shape().dims().to_vec(), raw)
        }
        QMatMul::Tensor(t) | QMatMul::TensorF16(t) => (t.dims().to_vec(), tensor_raw(t)?),
    };
    match dims[..] {
        [rows, cols] => Ok((raw, rows, cols)),
        _ => Err(KernelError::BadMatrix(format!(
            "weight matrix of shape {dims:?}"
        ))),
    }
}

impl Data {
    /// The data of `raws` (all of type `dtype`) stacked: `rows × cols` in all.
    fn new(
        dtype: GgmlDType,
        raws: &[(Raw, usize, usize)],
        rows: usize,
        cols: usize,
    ) -> Result<Self> {
        let bad = || KernelError::BadMatrix(format!("malformed {rows}x{cols} {dtype:?} weights"));
        let mut bytes = Vec::new();
        let mut values = Vec::new();
        for (raw, _, _) in raws {
            match raw {
                Raw::Bytes(_, b) => bytes.extend_from_slice(b),
                Raw::F32(v) => values.extend_from_slice(v),
            }
        }
        let nibbles = |f| packed::nibble_groups(f, &bytes, rows, cols).map(|g| Data::Nibble(f, g));
        let halfs = |f| packed::half_groups(&bytes, rows, cols).map(|g| Data::Half(f, g));
        let data = match dtype {
            GgmlDType::F32 => (values.len() == rows * cols).then_some(Data::F32(values)),
            GgmlDType::Q4_1 => quant::q4_1_groups(&bytes, rows, cols).map(Data::Q4_1),
            GgmlDType::Q8_0 => quant::q8_0_groups(&bytes, rows, cols).map(Data::Q8_0),
            GgmlDType::Q4_0 => nibbles(NibbleFormat::Q4_0),
            GgmlDType::Q5_0 => nibbles(NibbleFormat::Q5_0),
            GgmlDType::Q5_1 => nibbles(NibbleFormat::Q5_1),
            GgmlDType::Q4K => packed_k::q4k_q5k_groups(&bytes, rows, cols, false).map(Data::Q4K),
            GgmlDType::Q5K => packed_k::q4k_q5k_groups(&bytes, rows, cols, true).map(Data::Q4K),
            GgmlDType::Q6K => packed_k::q6k_groups(&bytes, rows, cols).map(Data::Q6K),
            GgmlDType::F16 => halfs(HalfFormat::F16),
            GgmlDType::BF16 => halfs(HalfFormat::Bf16),
            other => return Err(no_kernel(other)),
        };
        data.ok_or_else(bad)
    }
}

impl QuantMatrix {
    /// The matrix of one candle `QMatMul`.
    pub fn new(m: &QMatMul) -> Result<Self> {
        Self::stacked(&[m])
    }

    /// The rows of `parts` stacked into one matrix (for example the query, key and value
    /// projections, so one pass computes all three). Consecutive parts of one format are
    /// held as one; parts of different formats each keep their own.
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
        let mut held = Vec::new();
        let mut rest = &raws[..];
        while let Some(first) = rest.first() {
            let dtype = first.0.dtype();
            let n = rest.iter().take_while(|r| r.0.dtype() == dtype).count();
            let rows: usize = rest[..n].iter().map(|r| r.1).sum();
            held.push(Part {
                rows,
                data: Data::new(dtype, &rest[..n], rows, cols)?,
            });
            rest = &rest[n..];
        }
        Ok(Self {
            rows,
            cols,
            parts: held,
        })
    }

    /// Output size.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Input size.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// The formats of the matrix's parts, in row order.
    pub fn formats(&self) -> Vec<GgmlDType> {
        self.parts.iter().map(|p| p.data.dtype()).collect()
    }

    /// `out = x · Wᵀ` for `m` rows: `x` is `m × cols`, `out` is `m × rows`, row-major.
    pub fn matmul(&self, x: &[f32], m: usize, out: &mut [f32]) {
        self.matmul_with(dot::best(), x, m, out)
    }

    /// [`Self::matmul`] with a chosen kernel version (one of [`dot::available`]).
    pub fn matmul_with(&self, isa: dot::Isa, x: &[f32], m: usize, out: &mut [f32]) {
        assert_eq!(x.len(), m * self.cols, "activation size");
        assert_eq!(out.len(), m * self.rows, "output size");
        if m == 0 {
            return;
        }
        let mut acts = Acts::default();
        let mut r0 = 0;
        for part in &self.parts {
            let t = part.products(isa, x, m, self.cols, &mut acts);
            for (g, t) in t.chunks_exact(m).enumerate() {
                let (p0, n) = (r0 + g * GROUP, GROUP.min(part.rows - g * GROUP));
                for (i, t) in t.iter().enumerate() {
                    let at = i * self.rows + p0;
                    out[at..at + n].copy_from_slice(&t[..n]);
                }
            }
            r0 += part.rows;
        }
    }
}

/// The activation rows quantized to each format some part takes (each made when first
/// needed).
#[derive(Default)]
struct Acts {
    q81: Vec<ActQ81>,
    q80: Vec<ActQ80>,
    q8k: Vec<ActQ8K>,
}

impl Acts {
    fn q81(&mut self, x: &[f32], m: usize, cols: usize) -> &[ActQ81] {
        if self.q81.is_empty() {
            let nb = cols / BLOCK;
            let zero = ActQ81 {
                qs: [0; BLOCK],
                d: 0.0,
                s: 0.0,
                sum: 0,
            };
            self.q81 = vec![zero; m * nb];
            for (x, a) in x.chunks_exact(cols).zip(self.q81.chunks_exact_mut(nb)) {
                quant::quantize_q8_1(x, a);
            }
        }
        &self.q81
    }

    fn q80(&mut self, x: &[f32], m: usize, cols: usize) -> &[ActQ80] {
        if self.q80.is_empty() {
            let nb = cols / BLOCK;
            let zero = ActQ80 {
                qs: [0; BLOCK],
                d: 0.0,
                sum: 0,
            };
            self.q80 = vec![zero; m * nb];
            for (x, a) in x.chunks_exact(cols).zip(self.q80.chunks_exact_mut(nb)) {
                quant::quantize_q8_0(x, a);
            }
        }
        &self.q80
    }

    fn q8k(&mut self, x: &[f32], m: usize, cols: usize) -> &[ActQ8K] {
        if self.q8k.is_empty() {
            let nb = cols / SUPER;
            self.q8k = vec![ActQ8K::default(); m * nb];
            for (x, a) in x.chunks_exact(cols).zip(self.q8k.chunks_exact_mut(nb)) {
                quant::quantize_q8_k(x, a);
            }
        }
        &self.q8k
    }
}

/// A group's kernel: group index, its `m` outputs.
type Kernel<'a> = &'a (dyn Fn(usize, &mut [[f32; GROUP]]) + Sync);

impl Data {
    fn dtype(&self) -> GgmlDType {
        match self {
            Data::Q4_1(_) => GgmlDType::Q4_1,
            Data::Q8_0(_) => GgmlDType::Q8_0,
            Data::Nibble(NibbleFormat::Q4_0, _) => GgmlDType::Q4_0,
            Data::Nibble(NibbleFormat::Q5_0, _) => GgmlDType::Q5_0,
            Data::Nibble(NibbleFormat::Q5_1, _) => GgmlDType::Q5_1,
            Data::Q4K(g) if g.qh.is_empty() => GgmlDType::Q4K,
            Data::Q4K(_) => GgmlDType::Q5K,
            Data::Q6K(_) => GgmlDType::Q6K,
            Data::Half(HalfFormat::F16, _) => GgmlDType::F16,
            Data::Half(HalfFormat::Bf16, _) => GgmlDType::BF16,
            Data::F32(_) => GgmlDType::F32,
        }
    }
}

impl Part {
    /// Every group's products with the `m` rows of `x`, group major (`m` entries each).
    fn products(
        &self,
        isa: dot::Isa,
        x: &[f32],
        m: usize,
        cols: usize,
        acts: &mut Acts,
    ) -> Vec<[f32; GROUP]> {
        let mut t = vec![[0f32; GROUP]; self.rows.div_ceil(GROUP) * m];
        let run = |kernel: Kernel, t: &mut [[f32; GROUP]]| run_groups(t, m, kernel);
        let nb = cols / BLOCK;
        let blocks = |g: usize| g * nb..(g + 1) * nb;
        let nk = cols / SUPER;
        let supers = |g: usize| g * nk..(g + 1) * nk;
        match &self.data {
            Data::Q4_1(w) => {
                let act = acts.q81(x, m, cols);
                run(
                    &|g, out| dot::q4_1_group(isa, &w[blocks(g)], act, out),
                    &mut t,
                );
            }
            Data::Q8_0(w) => {
                let act = acts.q80(x, m, cols);
                let kernel = |g, out: &mut _| {
                    dot::q8_0_group(isa, &w.qs[blocks(g)], &w.d[blocks(g)], act, out)
                };
                run(&kernel, &mut t);
            }
            Data::Nibble(f, w) => {
                let act = acts.q81(x, m, cols);
                let view = |g| NibbleView {
                    qs: &w.qs[blocks(g)],
                    qh: if f.high() { &w.qh[blocks(g)] } else { &[] },
                    d: &w.d[blocks(g)],
                    m: if f.has_min() { &w.m[blocks(g)] } else { &[] },
                };
                run(
                    &|g, out| dot::nibble_group(isa, *f, &view(g), act, out),
                    &mut t,
                );
            }
            Data::Q4K(w) => {
                let act = acts.q8k(x, m, cols);
                let qh = |g| {
                    if w.qh.is_empty() {
                        &[][..]
                    } else {
                        &w.qh[supers(g)]
                    }
                };
                run(
                    &|g, out| dot::q4k_group(isa, &w.q[supers(g)], qh(g), act, out),
                    &mut t,
                );
            }
            Data::Q6K(w) => {
                let act = acts.q8k(x, m, cols);
                run(
                    &|g, out| dot::q6k_group(isa, &w[supers(g)], act, out),
                    &mut t,
                );
            }
            Data::Half(f, w) => {
                let columns = |g: usize| &w[g * cols..(g + 1) * cols];
                run(
                    &|g, out| dot::half_group(isa, *f, columns(g), x, out),
                    &mut t,
                );
            }
            Data::F32(w) => {
                let rows = self.rows;
                run(&|g, out| f32_group(w, rows, cols, g, x, out), &mut t);
            }
        }
        t
    }
}

/// Runs `kernel` on every group of `t` (`m` outputs each), split over the current rayon
/// pool: a few tasks per thread, each a run of consecutive groups.
fn run_groups(t: &mut [[f32; GROUP]], m: usize, kernel: Kernel) {
    let groups = t.len() / m;
    let per_task = groups.div_ceil(rayon::current_num_threads() * 4).max(1);
    t.par_chunks_mut(per_task * m)
        .enumerate()
        .for_each(|(task, chunk)| {
            for (i, out) in chunk.chunks_exact_mut(m).enumerate() {
                kernel(task * per_task + i, out);
            }
        });
}

/// Group `g` of a row-major f32 matrix (`rows × cols`) against the rows of `x`.
fn f32_group(w: &[f32], rows: usize, cols: usize, g: usize, x: &[f32], out: &mut [[f32; GROUP]]) {
    for k in 0..GROUP.min(rows - g * GROUP) {
        let r = g * GROUP + k;
        let w = &w[r * cols..(r + 1) * cols];
        for (x, out) in x.chunks_exact(cols).zip(out.iter_mut()) {
            out[k] = ops::dot_f32(w, x);
        }
    }
}
