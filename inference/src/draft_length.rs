//! Adaptive draft length for speculative decoding: each round drafts the number of tokens
//! that maximises the expected tokens gained per second, from what the decode has
//! measured so far — none at all when drafting does not pay (then one round in
//! [`PROBE_EVERY`] still drafts one token, so the estimates follow the text).
//!
//! The model (as in Leviathan et al., "Fast Inference from Transformers via Speculative
//! Decoding"): each drafted token is accepted with probability `α` given that the ones
//! before it were, so `k` drafts yield `(1 - α^(k+1)) / (1 - α)` tokens per round (the
//! accepted prefix plus the target's own token). A round of `k` drafts costs
//! `fixed + per_position × (k + 1) + per_draft × k`: `fixed` is the pipeline's round trip
//! (network hops, per-call overhead), `per_position` the verification compute each
//! extra position adds, `per_draft` the drafter's own time per token (zero for prompt
//! lookup). `α` is an exponentially weighted acceptance estimate, `fixed` and
//! `per_position` a weighted least-squares fit of round time on round size, and
//! `per_draft` an exponentially weighted mean.
//!
//! Over a slow network `fixed` dominates and long drafts are nearly free, so the length
//! grows to the cap even at modest acceptance; on one machine each extra position costs
//! real compute, so it stays short unless drafts are usually right. The length only
//! changes how many tokens a round proposes, never which tokens are accepted, so greedy
//! output is the same whatever it picks.

/// Weight of the past against a new observation (per round).
const DECAY: f64 = 0.9;
/// While no drafting pays, every this many rounds without drafts one round drafts a
/// token, so that acceptance and round cost keep being measured.
pub const PROBE_EVERY: usize = 8;

/// Picks the draft length round by round.
#[derive(Clone, Debug)]
pub struct DraftLength {
    k: usize,
    max: usize,
    /// Rounds since the last one with drafts.
    idle: usize,
    /// Weighted counts of drafted tokens tested and accepted (geometric model).
    tested: f64,
    accepted: f64,
    /// Weighted sums for the fit of round seconds `y` on round positions `x`.
    sw: f64,
    sx: f64,
    sy: f64,
    sxx: f64,
    sxy: f64,
    /// Weighted mean drafting seconds per drafted token.
    draft_secs: f64,
    draft_weight: f64,
}

impl DraftLength {
    /// Starts at `initial` drafts per round, never more than `max` (at least 1 each).
    pub fn new(initial: usize, max: usize) -> Self {
        let max = max.max(1);
        Self {
            k: initial.clamp(1, max),
            max,
            idle: 0,
            tested: 0.0,
            accepted: 0.0,
            sw: 0.0,
            sx: 0.0,
            sy: 0.0,
            sxx: 0.0,
            sxy: 0.0,
            draft_secs: 0.0,
            draft_weight: 0.0,
        }
    }

    /// Drafts to ask for in the next round (0: none pay; a probe of 1 now and then).
    pub fn get(&self) -> usize {
        match self.k {
            0 if self.idle >= PROBE_EVERY => 1,
            k => k,
        }
    }

    /// Estimated probability that a draft token is accepted after an accepted one.
    pub fn acceptance(&self) -> f64 {
        // A uniform prior: one accepted and one rejected pseudo-observation.
        (self.accepted + 1.0) / (self.tested + 2.0)
    }

    /// Fitted `(fixed, per_position)` seconds of a verification round, when the rounds
    /// seen so far had different sizes (otherwise the split cannot be told).
    pub fn round_cost(&self) -> Option<(f64, f64)> {
        let det = self.sw * self.sxx - self.sx * self.sx;
        if self.sw <= 0.0 || det <= 1e-9 * self.sw * self.sw {
            return None;
        }
        let per_position = ((self.sw * self.sxy - self.sx * self.sy) / det).max(0.0);
        let fixed = ((self.sy - per_position * self.sx) / self.sw).max(0.0);
        Some((fixed, per_position))
    }

    /// Records a round in which `drafted` proposals were verified in `verify_secs` (for
    /// `drafted + 1` positions), `accepted` of them were accepted, and drafting took
    /// `draft_secs`; then picks the next length.
    pub fn observe(&mut self, drafted: usize, accepted: usize, verify_secs: f64, draft_secs: f64) {
        let decay = |v: &mut f64| *v *= DECAY;
        for v in [
            &mut self.tested,
            &mut self.accepted,
            &mut self.sw,
            &mut self.sx,
            &mut self.sy,
            &mut self.sxx,
            &mut self.sxy,
            &mut self.draft_weight,
            &mut self.draft_secs,
        ] {
            decay(v);
        }
        // A rejection ends the round: tokens after it were never tested.
        self.tested += (accepted + usize::from(accepted < drafted)) as f64;
        self.accepted += accepted as f64;
        let (x, y) = ((drafted + 1) as f64, verify_secs.max(0.0));
        self.sw += 1.0;
        self.sx += x;
        self.sy += y;
        self.sxx += x * x;
        self.sxy += x * y;
        if drafted > 0 {
            self.draft_secs += draft_secs.max(0.0) / drafted as f64;
            self.draft_weight += 1.0;
            self.idle = 0;
        } else {
            self.idle += 1;
        }
        self.k = self.best_length(drafted, accepted);
    }

    fn best_length(&self, drafted: usize, accepted: usize) -> usize {
        let Some((fixed, per_position)) = self.round_cost() else {
            // No cost model yet: grow while everything is accepted, shrink when most is not.
            return if drafted == 0 {
                self.k
            } else if accepted == drafted {
                (self.k * 2).clamp(1, self.max)
            } else if accepted * 2 < drafted {
                (self.k / 2).max(1)
            } else {
                self.k
            };
        };
        let per_draft = if self.draft_weight > 0.0 {
            self.draft_secs / self.draft_weight
        } else {
            0.0
        };
        let alpha = self.acceptance();
        let rate = |k: usize| {
            let tokens = (1.0 - alpha.powi(k as i32 + 1)) / (1.0 - alpha);
            let secs = fixed + per_position * (k + 1) as f64 + per_draft * k as f64;
            tokens / secs.max(1e-12)
        };
        // A round of one position (no drafts) is a candidate too: on one machine an
        // extra position can cost more than its expected acceptance brings.
        (0..=self.max)
            .max_by(|&a, &b| rate(a).total_cmp(&rate(b)).then(b.cmp(&a)))
            .unwrap_or(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use rand::{rngs::StdRng, Rng, SeedableRng};

    /// Runs 300 rounds of a pipeline with the given costs whose drafts are each accepted
    /// with probability `alpha` until the first rejection.
    fn settle(alpha: f64, fixed: f64, per_position: f64, per_draft: f64) -> DraftLength {
        let mut c = DraftLength::new(4, 16);
        let mut rng = StdRng::seed_from_u64(7);
        run(
            &mut c,
            &mut rng,
            300,
            alpha,
            (fixed, per_position, per_draft),
        );
        c
    }

    /// Runs `rounds` rounds (costs: fixed, per position, per draft) and returns how many
    /// of them drafted.
    fn run(
        c: &mut DraftLength,
        rng: &mut StdRng,
        rounds: usize,
        alpha: f64,
        (fixed, per_position, per_draft): (f64, f64, f64),
    ) -> usize {
        let mut drafting = 0;
        for round in 0..rounds {
            // Now and then a lookup finds nothing, as prompt lookup does.
            let k = if round % 5 == 0 { 0 } else { c.get() };
            drafting += usize::from(k > 0);
            let accepted = (0..k).take_while(|_| rng.gen_bool(alpha)).count();
            let secs = fixed + per_position * (k + 1) as f64;
            c.observe(k, accepted, secs, per_draft * k as f64);
        }
        drafting
    }

    #[test]
    fn drafting_stops_when_it_does_not_pay_and_resumes_when_it_does() {
        // One process (bench serve's 1-client figures on the 2-core EPYC): a round costs
        // ~3.9 ms plus ~4.2 ms per position, and ~16% of drafts are accepted: an extra
        // position costs more than it brings, so rounds carry no drafts but the probes
        // (and a round or two after a lucky one). Drafting every round it can: 160.
        let costs = (0.0039, 0.0042, 0.0);
        let mut rng = StdRng::seed_from_u64(7);
        let mut c = DraftLength::new(4, 16);
        run(&mut c, &mut rng, 200, 0.16, costs);
        let drafting = run(&mut c, &mut rng, 200, 0.16, costs);
        assert!(drafting <= 200 / 4, "{drafting} {c:?}");
        // The text turns repetitive (prompt lookup is then nearly always right): the
        // probes see it and drafting resumes.
        run(&mut c, &mut rng, 200, 0.95, costs);
        assert!(c.get() >= 2, "{c:?}");
    }

    #[test]
    fn a_slow_network_makes_drafts_long_and_fast_compute_keeps_them_short() {
        // 150 ms of round trip, 1 ms per position, good drafts: draft (nearly) to the cap.
        let slow = settle(0.9, 0.150, 0.001, 0.0);
        assert!(slow.get() >= 12, "{slow:?}");
        assert!((slow.acceptance() - 0.9).abs() < 0.1, "{slow:?}");
        // No network, 15 ms per position: an extra position costs nearly a whole step.
        assert!(settle(0.6, 0.001, 0.015, 0.0).get() <= 2);
        // A drafter as slow per token as the whole round trip: short drafts.
        assert!(settle(0.9, 0.150, 0.001, 0.150).get() <= 2);
    }

    #[test]
    fn the_cost_fit_recovers_the_round_cost() {
        let mut c = DraftLength::new(4, 16);
        for k in [0, 3, 7, 1, 15, 4] {
            c.observe(k, 0, 0.1 + 0.002 * (k + 1) as f64, 0.0);
        }
        let (fixed, per_position) = c.round_cost().unwrap();
        assert!((fixed - 0.1).abs() < 1e-9, "{fixed}");
        assert!((per_position - 0.002).abs() < 1e-9, "{per_position}");
    }

    #[test]
    fn without_size_variation_it_falls_back_to_doubling_and_halving() {
        let mut c = DraftLength::new(4, 16);
        c.observe(4, 4, 0.1, 0.0);
        assert_eq!(c.get(), 8);
        c.observe(4, 4, 0.1, 0.0);
        assert_eq!(c.get(), 16);
        c.observe(16, 16, 0.1, 0.0);
        // Rounds of 5 and 17 positions: now a cost model exists.
        assert!(c.round_cost().is_some());
    }
}
