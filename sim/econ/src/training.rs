//! Proof of Training in the simulation (issue 24's training fakers). Honest trainers and
//! training fakers hold the middle range and play every training round of it through the
//! training pallet's real calls, in the blocks the runtime builds: each signs a gradient
//! receipt when the round opens, every contributor reports the round's aggregate once
//! the collection window is over (the round closes on the majority, as on chain), and
//! the validator the runtime drew verifies the round. Rewards, splits and slashes are
//! the pallet's.
//!
//! The weights are not here, so the one off-chain input is the verifier's verdict on
//! each receipt: an honest trainer's is `Improved`, and a faked receipt is paid
//! (accepted by the aggregate and `Improved`) at the share of that fake the real
//! verification paid on the tiny random Llama (`training/tests/fakers.rs`, checked in as
//! `docs/training-fakers.json`); otherwise `NoImprovement`. Fakers claim the losses the
//! verifier will replay, so they are never `Contradicted`. Their best response is
//! searched over the fake and the number of accounts.
//!
//! Compute: an honest receipt costs the node's inner loop, `3 x steps x batch` window
//! passes (forward and backward) plus two probe evaluations, of [`SEQ`] positions
//! through the range's layers, at the bench's layer-token price; a fake costs one window
//! pass (its claims; two for a replayed gradient, so its cost is understated).

use crate::agents::{Strategy, MIDDLE};
use crate::chain::Key;
use crate::world::World;
use anyhow::{anyhow, ensure, Result};
use neuroshard_primitives::{
    blake2_256, AccountId, AdapterOutcome, Balance, BlockNumber, Call, ContributionCheck,
    ContributionOutcome, GradientReceipt, GradientReceiptBody, Hash, LayerRange, RoundResult,
    RoundVerification, SignedExtrinsic, TrainingCall, UNIT,
};
use neuroshard_runtime::{ponw, training};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use sp_core::Encode;
use std::collections::HashSet;

/// The node's training window, positions (`node/trainer`'s `SEQ`).
pub const SEQ: u64 = 32;
/// The node's inner loop: steps and batch (`node/trainer`'s `trainer_config`).
pub const STEPS: u64 = 4;
pub const BATCH: u64 = 2;
/// Honest trainers on the middle range.
pub const HONEST_TRAINERS: usize = 2;
/// The round reward the simulation runs with: the dev spec's 1 NSHD does not cover one
/// round's compute of one contributor at the bench's prices (`3 x 4 x 2 + 2` window
/// passes of 32 positions through 10 layers, 16.6 NSHD at 0.002 NSHD per layer-token),
/// so honest training would lose money and the comparison with fakers would say
/// nothing; 100 NSHD pays two honest contributors at up to 0.006 NSHD per layer-token.
pub const SIM_TRAINING_REWARD: Balance = 100 * UNIT;

/// One fake as measured.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct FakeMeasurement {
    pub mode: String,
    /// Faked receipts the measurement verified.
    pub receipts: u32,
    /// Share of them the pallet paid.
    pub paid: f64,
}

/// What `training/tests/fakers.rs` measured.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct TrainingFakes {
    pub produced_by: String,
    /// Share of honest receipts paid.
    pub honest_paid: f64,
    pub modes: Vec<FakeMeasurement>,
}

impl TrainingFakes {
    /// The checked-in measurement (no fake listed: not measured yet, and no training
    /// agent is played).
    pub fn checked_in() -> Result<Self> {
        let fakes: Self = serde_json::from_str(include_str!("../../../docs/training-fakers.json"))?;
        let shares = std::iter::once(fakes.honest_paid).chain(fakes.modes.iter().map(|m| m.paid));
        for s in shares {
            ensure!((0.0..=1.0).contains(&s), "paid shares must be in 0..=1");
        }
        Ok(fakes)
    }

    fn paid(&self, mode: &str) -> f64 {
        self.modes
            .iter()
            .find(|m| m.mode == mode)
            .map_or(0.0, |m| m.paid)
    }
}

/// The training agents' strategies: honest trainers, and every measured fake played
/// with one and with three accounts (none while nothing is measured).
pub fn strategies(fakes: &TrainingFakes) -> Vec<Strategy> {
    if fakes.modes.is_empty() {
        return Vec::new();
    }
    let honest = (0..HONEST_TRAINERS).map(|_| Strategy::Trainer);
    let fakers = fakes.modes.iter().flat_map(|m| {
        [1, 3].map(|accounts| Strategy::TrainingFaker {
            fake: m.mode.clone(),
            accounts,
        })
    });
    honest.chain(fakers).collect()
}

/// Layer-tokens one honest round costs a contributor of `layers`.
pub fn honest_round(layers: u64) -> u64 {
    (3 * STEPS * BATCH + 2) * SEQ * layers
}

/// The training rounds of the middle range, as the agents play them.
pub struct Rounds {
    fakes: TrainingFakes,
    rng: StdRng,
    model: Hash,
    layers: LayerRange,
    /// The round receipts were last submitted for, and in which block.
    submitted: Option<(u32, BlockNumber)>,
    reported: Option<u32>,
    verified: HashSet<training::RoundKey>,
}

impl Rounds {
    pub fn new(world: &World, fakes: TrainingFakes, seed: u64) -> Result<Self> {
        let model = ponw::params(&world.chain.state)
            .map_err(|e| anyhow!("{e}"))?
            .model;
        let layers = *model
            .shards
            .get(MIDDLE)
            .ok_or_else(|| anyhow!("no middle range"))?;
        Ok(Self {
            fakes,
            rng: StdRng::seed_from_u64(seed ^ 0x0074_7261_696e),
            model: model.hash,
            layers,
            submitted: None,
            reported: None,
            verified: HashSet::new(),
        })
    }

    /// The training calls of the next block, signed (they go first in it). `active`:
    /// new rounds are contributed to; otherwise only open rounds are carried through.
    pub fn calls(&mut self, world: &mut World, active: bool) -> Result<Vec<SignedExtrinsic>> {
        let number = world.chain.head.number + 1;
        let shard = training::shard(&world.chain.state, self.model, self.layers)
            .map_err(|e| anyhow!("{e}"))?;
        let key = (self.model, self.layers, shard.round);
        let records = training::receipts(&world.chain.state, &key).map_err(|e| anyhow!("{e}"))?;
        let mut xts = Vec::new();
        let retry = self
            .submitted
            .is_some_and(|(r, at)| r == shard.round && records.is_empty() && number > at + 1);
        if active && (self.submitted.map(|(r, _)| r) != Some(shard.round) || retry) {
            self.contribute(
                world,
                shard.round,
                shard.adapter.unwrap_or_default(),
                &mut xts,
            )?;
            self.submitted = Some((shard.round, number));
        }
        let collect = training::params(&world.chain.state)
            .map_err(|e| anyhow!("{e}"))?
            .collect_blocks;
        let window_over = shard
            .collecting_until(collect)
            .is_some_and(|until| number > until);
        if window_over && self.reported != Some(shard.round) && !records.is_empty() {
            self.report(world, shard.round, &records, &mut xts)?;
            self.reported = Some(shard.round);
        }
        self.verify(world, &mut xts)?;
        Ok(xts)
    }

    /// Every training agent's accounts sign a receipt for `round` from `base`; their
    /// compute is billed.
    fn contribute(
        &mut self,
        world: &mut World,
        round: u32,
        base: Hash,
        xts: &mut Vec<SignedExtrinsic>,
    ) -> Result<()> {
        let layers = u64::from(self.layers.len());
        for i in 0..world.agents.len() {
            let (tag, cost) = match &world.agents[i].strategy {
                Strategy::Trainer => ("honest", honest_round(layers)),
                Strategy::TrainingFaker { .. } => ("fake", SEQ * layers),
                _ => continue,
            };
            for k in world.agents[i].workers.clone() {
                let registered =
                    ponw::worker(&world.chain.state, &k.account).map_err(|e| anyhow!("{e}"))?;
                if registered.is_none() {
                    continue;
                }
                let receipt = self.receipt(&k, round, base, tag);
                let call = Call::Training(TrainingCall::SubmitGradientReceipt { receipt });
                xts.push(world.chain.sign(&k.account, call)?);
                world.bills[i].layer_tokens += cost as f64;
            }
        }
        Ok(())
    }

    fn receipt(&self, k: &Key, round: u32, base: Hash, tag: &str) -> GradientReceipt {
        let body = GradientReceiptBody {
            worker: k.account.clone(),
            model: self.model,
            layers: self.layers,
            round,
            base_adapter: base,
            pseudo_gradient: blake2_256(
                &(b"econ/pseudo-gradient", tag, &k.account, round).encode(),
            ),
            payload_bytes: 4096,
            loss_before: 3_000_000,
            loss_after: 2_990_000,
        };
        GradientReceipt::sign(body, &k.pair)
    }

    /// Every contributor reports the same aggregate: all receipts kept (whether a fake
    /// is paid is the verifier's verdict, drawn at the measured share that covers both).
    fn report(
        &self,
        world: &mut World,
        round: u32,
        records: &[training::GradientRecord],
        xts: &mut Vec<SignedExtrinsic>,
    ) -> Result<()> {
        let mut accepted: Vec<Hash> = records.iter().map(|r| r.pseudo_gradient).collect();
        accepted.sort();
        let result = RoundResult {
            model: self.model,
            layers: self.layers,
            round,
            accepted,
            adapter: blake2_256(&(b"econ/adapter", round).encode()),
        };
        for r in records {
            let call = Call::Training(TrainingCall::ReportRoundResult {
                result: result.clone(),
            });
            xts.push(world.chain.sign(&r.worker, call)?);
        }
        Ok(())
    }

    /// The drawn validator's verification of every closed round awaiting it.
    fn verify(&mut self, world: &mut World, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let awaiting = training::awaiting(&world.chain.state).map_err(|e| anyhow!("{e}"))?;
        for a in awaiting {
            if self.verified.contains(&a.key) || !world.is_validator(&a.verifier) {
                continue;
            }
            let records =
                training::receipts(&world.chain.state, &a.key).map_err(|e| anyhow!("{e}"))?;
            let checks = records
                .iter()
                .map(|r| ContributionCheck {
                    worker: r.worker.clone(),
                    outcome: self.outcome(world, &r.worker),
                    loss_before: r.loss_before,
                    loss_after: r.loss_after,
                })
                .collect();
            let verification = RoundVerification {
                model: a.key.0,
                layers: a.key.1,
                round: a.key.2,
                checks,
                adapter: AdapterOutcome::Adopted,
                held_out_before: 0,
                held_out_after: 0,
            };
            let call = Call::Training(TrainingCall::SubmitRoundVerification { verification });
            xts.push(world.chain.sign(&a.verifier, call)?);
            self.verified.insert(a.key);
        }
        Ok(())
    }

    /// The verifier's verdict on `worker`'s receipt, at the measured share.
    fn outcome(&mut self, world: &World, worker: &AccountId) -> ContributionOutcome {
        let paid = match world.owner.get(worker).map(|&i| &world.agents[i].strategy) {
            Some(Strategy::Trainer) => self.fakes.honest_paid,
            Some(Strategy::TrainingFaker { fake, .. }) => self.fakes.paid(fake),
            _ => 0.0,
        };
        if self.rng.gen_bool(paid) {
            ContributionOutcome::Improved
        } else {
            ContributionOutcome::NoImprovement
        }
    }
}
