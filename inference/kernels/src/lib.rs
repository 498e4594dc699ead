//! The shard executor's CPU kernels, kept apart from the model code the way ggml is from
//! llama.cpp: the inference crate's executor calls them, and they know nothing of models,
//! sessions or the chain.
//!
//! Weight matrices are held in their GGUF format ([`FORMATS`]: the 32-value block formats
//! Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0, the K-quants Q4_K, Q5_K and Q6_K, and F16, BF16 and
//! F32), multiplied with `m` activation rows at once by fused dequantize-and-dot kernels
//! ([`dot`]), split over sixteen-row weight groups across rayon's pool; [`ops`] has
//! attention, RMS norm, rotary embedding and SwiGLU. Nothing is widened to f32 behind the
//! caller's back: a tensor type without a kernel (Q2_K, Q3_K, ...) is an error at load
//! ([`has_kernel`] lets the loader name the tensor). A matrix stacked from parts of
//! different formats keeps each part in its own format.
//!
//! The weights are regrouped at load ([`quant`] for Q4_1 and Q8_0, [`packed`] for the
//! other 32-value formats and the 16-bit floats, [`packed_k`] for the K-quants) so that
//! each SIMD lane is one weight row. Activation rows are quantized as GGML pairs them:
//! Q8_0 for Q8_0, Q4_0 and Q5_0 weights, Q8_1 for Q4_1 and Q5_1, Q8_K (256-value
//! super-blocks) for the K-quants; the float formats take f32 activations.
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
mod matrix;
pub mod ops;
pub mod packed;
pub mod packed_k;
pub mod quant;
pub mod quantize_k;

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
pub use matrix::{has_kernel, QuantMatrix, FORMATS};

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

/// `len` reproducible pseudo-random values in [-1, 1) from `seed` (a small xorshift):
/// the weights and activations of the kernels' tests and of `neuroshard bench kernels`.
pub fn sample_values(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 2.0
        })
        .collect()
}

#[cfg(test)]
mod tests;
