//! Byzantine-robust aggregation of the pseudo-gradients the holders of one shard share
//! each round. Two rules:
//!
//! - **Coordinate-wise trimmed mean**: for every coordinate drop the `trim` largest and
//!   `trim` smallest values and average the rest (needs `n > 2 trim`). A contribution is
//!   *accepted* when its distance to that aggregate is at most `tolerance` times the
//!   median distance, and its cosine with the aggregate at least half the median cosine:
//!   a scaled vector lies far from the robust centre, a random one (even of an honest
//!   norm) points away from it, while honest ones cluster around it.
//! - **Multi-Krum** (Blanchard et al. 2017): score each contribution by the summed squared
//!   distances to its `n - f - 2` nearest others (at least one). The `n - f` best are kept
//!   (needs `n > 2 f`). Plain Multi-Krum always drops `f` contributions, which in a round
//!   without an attacker would leave an honest holder unpaid, so a dropped one is
//!   re-admitted when it is as close and as aligned as the kept ones: its score within
//!   `tolerance^2` times the median score, and its cosine with the kept ones' mean at least
//!   half the smallest leave-one-out cosine among them. The aggregate is the mean of the
//!   accepted contributions.
//!
//! Both are deterministic given the contributions' order (callers sort them by worker),
//! so every honest holder computes the same aggregate and the same adapter version.

use crate::error::{Result, TrainingError};

/// The robust aggregation rule of a training round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum RobustRule {
    /// Coordinate-wise trimmed mean; acceptance by distance to the aggregate.
    TrimmedMean { trim: usize, tolerance: f32 },
    /// Multi-Krum tolerating `faults` Byzantine contributions; also keeps contributions
    /// scoring within `tolerance^2` of the median score.
    Krum { faults: usize, tolerance: f32 },
}

impl Default for RobustRule {
    fn default() -> Self {
        RobustRule::Krum {
            faults: 1,
            tolerance: 3.0,
        }
    }
}

/// The result of aggregating one round.
#[derive(Clone, Debug, PartialEq)]
pub struct Aggregate {
    /// The robust pseudo-gradient the outer step applies.
    pub update: Vec<f32>,
    /// Indices (into the contributions) the rule accepted, ascending.
    pub accepted: Vec<usize>,
}

fn check(contributions: &[&[f32]], needed: usize) -> Result<usize> {
    if contributions.len() < needed {
        return Err(TrainingError::TooFewContributions {
            needed,
            got: contributions.len(),
        });
    }
    let len = contributions.first().map(|c| c.len()).unwrap_or(0);
    if contributions.iter().any(|c| c.len() != len) {
        return Err(TrainingError::BadPseudoGradient(
            "contributions of different lengths".into(),
        ));
    }
    Ok(len)
}

fn squared_distance(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| {
            let d = f64::from(*x) - f64::from(*y);
            d * d
        })
        .sum()
}

fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (x, y) in a.iter().zip(b) {
        let (x, y) = (f64::from(*x), f64::from(*y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    if na == 0.0 || nb == 0.0 {
        return 0.0;
    }
    dot / (na.sqrt() * nb.sqrt())
}

/// Coordinate mean of the chosen contributions (in index order, so it is reproducible).
fn mean_of(contributions: &[&[f32]], chosen: &[usize], len: usize) -> Vec<f32> {
    let mut sum = vec![0f64; len];
    for &i in chosen {
        for (s, v) in sum.iter_mut().zip(contributions[i]) {
            *s += f64::from(*v);
        }
    }
    let n = chosen.len().max(1) as f64;
    sum.into_iter().map(|s| (s / n) as f32).collect()
}

/// Aggregates `contributions` (equal-length vectors) with `rule`.
pub fn aggregate(rule: RobustRule, contributions: &[&[f32]]) -> Result<Aggregate> {
    match rule {
        RobustRule::TrimmedMean { trim, tolerance } => trimmed_mean(contributions, trim, tolerance),
        RobustRule::Krum { faults, tolerance } => multi_krum(contributions, faults, tolerance),
    }
}

fn trimmed_mean(contributions: &[&[f32]], trim: usize, tolerance: f32) -> Result<Aggregate> {
    let n = contributions.len();
    let len = check(contributions, 2 * trim + 1)?;
    let kept = n - 2 * trim;
    let mut column = vec![0f32; n];
    let update: Vec<f32> = (0..len)
        .map(|j| {
            for (slot, c) in column.iter_mut().zip(contributions) {
                *slot = c[j];
            }
            column.sort_by(f32::total_cmp);
            let sum: f64 = column[trim..n - trim].iter().map(|v| f64::from(*v)).sum();
            (sum / kept as f64) as f32
        })
        .collect();
    let distances: Vec<f64> = contributions
        .iter()
        .map(|c| squared_distance(c, &update).sqrt())
        .collect();
    let mut sorted = distances.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(n - 1) / 2];
    // Relative slack for contributions that coincide with the aggregate (median 0).
    let bound = f64::from(tolerance) * median + 1e-12 * (1.0 + median);
    let cosines: Vec<f64> = contributions.iter().map(|c| cosine(c, &update)).collect();
    let mut sorted = cosines.clone();
    sorted.sort_by(f64::total_cmp);
    let min_cosine = 0.5 * sorted[n / 2];
    let accepted = (0..n)
        .filter(|&i| distances[i] <= bound && cosines[i] >= min_cosine)
        .collect();
    Ok(Aggregate { update, accepted })
}

fn multi_krum(contributions: &[&[f32]], faults: usize, tolerance: f32) -> Result<Aggregate> {
    let n = contributions.len();
    let len = check(contributions, 2 * faults + 1)?;
    let mut d = vec![vec![0f64; n]; n];
    for i in 0..n {
        for j in i + 1..n {
            let v = squared_distance(contributions[i], contributions[j]);
            d[i][j] = v;
            d[j][i] = v;
        }
    }
    let neighbours = n.saturating_sub(faults + 2).max(1).min(n - 1);
    let scores: Vec<f64> = (0..n)
        .map(|i| {
            let mut others: Vec<f64> = (0..n).filter(|&j| j != i).map(|j| d[i][j]).collect();
            others.sort_by(f64::total_cmp);
            others.iter().take(neighbours).sum()
        })
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]).then(a.cmp(&b)));
    let mut sorted = scores.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[(n - 1) / 2];
    let t = f64::from(tolerance);
    let bound = t * t * median + 1e-12 * (1.0 + median);
    let mut accepted: Vec<usize> = order.iter().copied().take(n - faults).collect();
    if accepted.len() >= 2 {
        let kept_mean = mean_of(contributions, &accepted, len);
        let min_cosine = accepted
            .iter()
            .map(|&i| {
                let others: Vec<usize> = accepted.iter().copied().filter(|&j| j != i).collect();
                cosine(contributions[i], &mean_of(contributions, &others, len))
            })
            .fold(f64::INFINITY, f64::min);
        let readmitted: Vec<usize> = order
            .iter()
            .copied()
            .skip(n - faults)
            .filter(|&i| {
                scores[i] <= bound && cosine(contributions[i], &kept_mean) >= 0.5 * min_cosine
            })
            .collect();
        accepted.extend(readmitted);
    }
    accepted.sort_unstable();
    let update = mean_of(contributions, &accepted, len);
    Ok(Aggregate { update, accepted })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// Honest pseudo-gradients: a shared direction plus per-worker noise (what holders
    /// training the same shard on similar data produce).
    fn honest(rng: &mut StdRng, base: &[f32], noise: f32) -> Vec<f32> {
        base.iter()
            .map(|b| b + rng.gen_range(-noise..noise))
            .collect()
    }

    fn norm(v: &[f32]) -> f32 {
        v.iter().map(|x| x * x).sum::<f32>().sqrt()
    }

    #[derive(Clone, Copy, Debug)]
    enum Poison {
        Scaled(f32),
        Random,
    }

    fn poisoned(rng: &mut StdRng, honest: &[f32], how: Poison) -> Vec<f32> {
        match how {
            Poison::Scaled(s) => honest.iter().map(|v| v * s).collect(),
            Poison::Random => {
                // Same norm as an honest contribution, random direction: invisible to a
                // norm check, caught by the geometry.
                let r: Vec<f32> = honest.iter().map(|_| rng.gen_range(-1.0..1.0)).collect();
                let k = norm(honest) / norm(&r);
                r.iter().map(|v| v * k).collect()
            }
        }
    }

    fn poison_strategy() -> impl Strategy<Value = Poison> {
        prop_oneof![
            (prop_oneof![-50.0f32..-2.0, 5.0f32..50.0]).prop_map(Poison::Scaled),
            Just(Poison::Random),
        ]
    }

    fn rules() -> [RobustRule; 2] {
        [
            RobustRule::Krum {
                faults: 1,
                tolerance: 3.0,
            },
            RobustRule::TrimmedMean {
                trim: 1,
                tolerance: 3.0,
            },
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// One poisoned contribution among honest ones is excluded, every honest one is
        /// accepted, and the aggregate stays near the honest mean.
        #[test]
        fn poisoned_contribution_is_excluded(
            seed in any::<u64>(),
            honest_count in 2usize..6,
            poison_at in 0usize..6,
            how in poison_strategy(),
            dim in 16usize..256,
        ) {
            let mut rng = StdRng::seed_from_u64(seed);
            let base: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let mut all: Vec<Vec<f32>> = (0..honest_count).map(|_| honest(&mut rng, &base, 0.1)).collect();
            let poison_at = poison_at % (honest_count + 1);
            let bad = poisoned(&mut rng, &base, how);
            all.insert(poison_at, bad);
            let refs: Vec<&[f32]> = all.iter().map(|v| v.as_slice()).collect();
            for rule in rules() {
                let agg = aggregate(rule, &refs).unwrap();
                let expected: Vec<usize> = (0..all.len()).filter(|&i| i != poison_at).collect();
                prop_assert_eq!(&agg.accepted, &expected, "{:?} {:?}", rule, how);
                let err = norm(&agg.update.iter().zip(&base).map(|(a, b)| a - b).collect::<Vec<_>>());
                prop_assert!(err < 0.5 * norm(&base), "{:?}: aggregate strayed {}", rule, err);
            }
        }

        /// Without an attacker neither rule excludes an honest contribution.
        #[test]
        fn honest_rounds_accept_everyone(seed in any::<u64>(), n in 3usize..7, dim in 16usize..256) {
            let mut rng = StdRng::seed_from_u64(seed);
            let base: Vec<f32> = (0..dim).map(|_| rng.gen_range(-1.0..1.0)).collect();
            let all: Vec<Vec<f32>> = (0..n).map(|_| honest(&mut rng, &base, 0.1)).collect();
            let refs: Vec<&[f32]> = all.iter().map(|v| v.as_slice()).collect();
            for rule in rules() {
                let agg = aggregate(rule, &refs).unwrap();
                prop_assert_eq!(agg.accepted, (0..n).collect::<Vec<_>>(), "{:?}", rule);
            }
        }
    }

    #[test]
    fn trimmed_mean_drops_extremes_per_coordinate() {
        let rows: [&[f32]; 5] = [
            &[1.0, 10.0],
            &[2.0, 20.0],
            &[3.0, 30.0],
            &[4.0, 40.0],
            &[1000.0, -1000.0],
        ];
        let agg = aggregate(
            RobustRule::TrimmedMean {
                trim: 1,
                tolerance: 3.0,
            },
            &rows,
        )
        .unwrap();
        assert_eq!(agg.update, vec![3.0, 20.0]);
        assert_eq!(agg.accepted, vec![0, 1, 2, 3]);
    }

    #[test]
    fn too_few_or_ragged_contributions_are_errors() {
        let one: [&[f32]; 2] = [&[1.0], &[2.0]];
        assert!(matches!(
            aggregate(RobustRule::default(), &one),
            Err(TrainingError::TooFewContributions { needed: 3, got: 2 })
        ));
        let ragged: [&[f32]; 3] = [&[1.0], &[2.0, 3.0], &[1.0]];
        assert!(aggregate(RobustRule::default(), &ragged).is_err());
    }
}
