//! Turning logits into tokens: greedy argmax, temperature sampling with a seeded RNG, and
//! the acceptance rule of standard speculative sampling (accept a draft token x with
//! probability min(1, p(x)/q(x)), otherwise resample from the residual max(0, p - q)),
//! which makes speculative output follow exactly the target's distribution.

use rand::rngs::StdRng;
use rand::Rng;

/// Greedy choice: the first index of the largest logit.
pub fn argmax(logits: &[f32]) -> u32 {
    let mut best = 0usize;
    for (i, &v) in logits.iter().enumerate() {
        if v > logits[best] {
            best = i;
        }
    }
    best as u32
}

/// softmax(logits / temperature).
pub fn probabilities(logits: &[f32], temperature: f64) -> Vec<f32> {
    let t = temperature.max(1e-6) as f32;
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let mut p: Vec<f32> = logits.iter().map(|&l| ((l - max) / t).exp()).collect();
    let sum: f32 = p.iter().sum();
    p.iter_mut().for_each(|v| *v /= sum);
    p
}

/// Draws an index from the (not necessarily normalised) non-negative weights `w`.
pub fn sample_weights(w: &[f32], rng: &mut StdRng) -> u32 {
    let total: f64 = w.iter().map(|&v| v as f64).sum();
    if total <= 0.0 {
        return argmax(w);
    }
    let mut r = rng.gen::<f64>() * total;
    for (i, &v) in w.iter().enumerate() {
        r -= v as f64;
        if r < 0.0 {
            return i as u32;
        }
    }
    // Rounding left a sliver: the last non-zero weight.
    w.iter().rposition(|&v| v > 0.0).unwrap_or(0) as u32
}

/// Outcome of checking one draft token against the target distribution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    /// Rejected; the replacement token drawn from the residual distribution.
    Reject(u32),
}

/// Standard speculative-sampling test of draft token `x` with target probabilities `p`
/// and draft probabilities `q` (`None`: the drafter proposed `x` deterministically).
pub fn speculative_accept(x: u32, p: &[f32], q: Option<&[f32]>, rng: &mut StdRng) -> Verdict {
    let xi = x as usize;
    let px = p.get(xi).copied().unwrap_or(0.0);
    let qx = match q {
        Some(q) => q.get(xi).copied().unwrap_or(0.0),
        None => 1.0,
    };
    if qx > 0.0 && rng.gen::<f32>() < (px / qx).min(1.0) {
        return Verdict::Accept;
    }
    let residual: Vec<f32> = match q {
        Some(q) => p.iter().zip(q).map(|(&a, &b)| (a - b).max(0.0)).collect(),
        None => p
            .iter()
            .enumerate()
            .map(|(i, &a)| if i == xi { 0.0 } else { a })
            .collect(),
    };
    Verdict::Reject(sample_weights(&residual, rng))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    #[test]
    fn probabilities_normalise_and_sharpen() {
        let p = probabilities(&[1.0, 2.0, 3.0], 1.0);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        let cold = probabilities(&[1.0, 2.0, 3.0], 0.1);
        assert!(cold[2] > 0.99);
        assert_eq!(argmax(&[0.5, 3.0, 3.0, 1.0]), 1);
    }

    #[test]
    fn rejection_resamples_from_the_residual() {
        let mut rng = StdRng::seed_from_u64(1);
        // The draft token has zero target mass: always rejected, never resampled.
        for _ in 0..100 {
            match speculative_accept(0, &[0.0, 0.5, 0.5], None, &mut rng) {
                Verdict::Reject(y) => assert_ne!(y, 0),
                Verdict::Accept => panic!("accepted a zero-probability token"),
            }
        }
        // p == q: always accepted.
        let p = [0.2, 0.3, 0.5];
        for x in 0..3 {
            assert_eq!(
                speculative_accept(x, &p, Some(&p), &mut rng),
                Verdict::Accept
            );
        }
    }
}
