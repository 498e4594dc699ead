//! The small per-position operations of a Llama block on plain f32 slices: RMS norm,
//! rotary embedding, SwiGLU, and causal attention of one query row over the cached keys and
//! values. RMS norm, rotary embedding and SwiGLU use candle's arithmetic in candle's order
//! (so their results equal `candle_nn`'s bit for bit); attention sums its dot products in
//! its own order, which changes the last bits of the logits against candle.

/// `out = x / sqrt(mean(x²) + eps) * weight` for one row (candle's `rms_norm`).
pub fn rms_norm(x: &[f32], weight: &[f32], eps: f32, out: &mut [f32]) {
    let sum2 = x.iter().map(|&v| v * v).sum::<f32>();
    let m = (sum2 / x.len() as f32 + eps).sqrt();
    for ((o, &v), &w) in out.iter_mut().zip(x).zip(weight) {
        *o = v / m * w;
    }
}

/// Rotates one head's vector `x` (length `2 * cos.len()`) in place for one position.
/// `interleaved`: pairs are adjacent values (GGUF Llama); otherwise the two halves.
pub fn rope(x: &mut [f32], cos: &[f32], sin: &[f32], interleaved: bool) {
    let half = cos.len();
    for i in 0..half {
        let (a, b) = if interleaved {
            (2 * i, 2 * i + 1)
        } else {
            (i, i + half)
        };
        let (x0, x1) = (x[a], x[b]);
        x[a] = x0 * cos[i] - x1 * sin[i];
        x[b] = x0 * sin[i] + x1 * cos[i];
    }
}

/// `gate = silu(gate) * up`, elementwise.
pub fn silu_mul(gate: &mut [f32], up: &[f32]) {
    for (g, &u) in gate.iter_mut().zip(up) {
        *g = *g / (1.0 + (-*g).exp()) * u;
    }
}

/// Dot product with eight running partial sums (vectorizes without reassociation flags).
pub fn dot_f32(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for ((acc, &x), &y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    let mut tail = 0f32;
    for (x, y) in ra.iter().zip(rb) {
        tail += x * y;
    }
    acc.iter().sum::<f32>() + tail
}

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// Causal attention of one position's queries `q` (`heads × head_dim`) over the first
/// `visible` cached positions of `keys` and `values` (each position `kv_heads × head_dim`),
/// writing `heads × head_dim` into `out`. Heads run in parallel on the current rayon pool
/// once the context is long enough to pay for it; each head's arithmetic is the same
/// either way.
pub fn attend(
    shape: AttnShape,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    visible: usize,
    out: &mut [f32],
) {
    use rayon::prelude::*;
    /// Below this many visible positions a head is too little work to hand to a thread.
    const PARALLEL_FROM: usize = 48;
    let hd = shape.head_dim;
    let head = |(h, out): (usize, &mut [f32])| {
        let mut scores = Vec::with_capacity(visible);
        attend_head(
            shape,
            h,
            &q[h * hd..(h + 1) * hd],
            keys,
            values,
            visible,
            &mut scores,
            out,
        );
    };
    if visible >= PARALLEL_FROM {
        out.par_chunks_mut(hd).enumerate().for_each(head);
    } else {
        out.chunks_mut(hd).enumerate().for_each(head);
    }
}

/// One head `h` of [`attend`]: softmax of the scaled query-key dot products, then the
/// weighted sum of the values, into `out` (`head_dim`).
#[allow(clippy::too_many_arguments)]
fn attend_head(
    shape: AttnShape,
    h: usize,
    q: &[f32],
    keys: &[f32],
    values: &[f32],
    visible: usize,
    scores: &mut Vec<f32>,
    out: &mut [f32],
) {
    let AttnShape {
        heads,
        kv_heads,
        head_dim: hd,
    } = shape;
    let kv_dim = kv_heads * hd;
    let kvh = h / (heads / kv_heads);
    let scale = (1.0 / (hd as f64).sqrt()) as f32;
    scores.clear();
    let mut max = f32::NEG_INFINITY;
    for j in 0..visible {
        let k = &keys[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
        let s = dot_f32(q, k) * scale;
        max = max.max(s);
        scores.push(s);
    }
    let mut sum = 0f32;
    for s in scores.iter_mut() {
        *s = (*s - max).exp();
        sum += *s;
    }
    out.fill(0.0);
    for (j, &p) in scores.iter().enumerate() {
        let p = p / sum;
        let v = &values[j * kv_dim + kvh * hd..j * kv_dim + (kvh + 1) * hd];
        for (o, &v) in out.iter_mut().zip(v) {
            *o += p * v;
        }
    }
}
