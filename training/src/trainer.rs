//! One holder's side of Proof of Training for one shard: the shared adapter state, the
//! DiLoCo round (inner loop on local data, signed gradient receipt, exchange, robust
//! aggregation, outer step) and the adapter the holder serves afterwards.
//!
//! Contributions from peers are checked before use: the receipt's signature, that it is
//! for this round, shard, model and adapter version, that the payload hashes to what the
//! receipt signs, and that it decodes to a finite vector of the adapter's size. A worker
//! that sent two different contributions is dropped entirely (equivocation). The valid
//! ones are sorted by worker so every honest holder aggregates the same list in the same
//! order, applies the same outer step and ends the round with the same adapter version.

use crate::aggregate::{aggregate, RobustRule};
use crate::codec::{self, WireFloat};
use crate::dataset::Dataset;
use crate::diloco::{evaluate_windows, inner_loop, pseudo_gradient, InnerConfig, OuterOptimizer};
use crate::error::{Result, TrainingError};
use crate::exchange::{Contribution, GradientExchange, RoundKey};
use crate::gauntlet;
use crate::lora::{merge_adapter, AdapterLayout};
use crate::model::FrozenModel;
use crate::snapshot::AdapterSnapshot;
use neuroshard_inference::ModelWeights;
use neuroshard_primitives::{
    blake2_256, loss_to_fixed, AccountId, GradientReceipt, GradientReceiptBody, Hash, Keypair,
    LayerRange, RoundResult,
};
use parity_scale_codec::Encode;
use sp_core::Pair as _;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Hyper-parameters every holder of a shard must share (they determine the adapter).
#[derive(Clone, Debug, PartialEq)]
pub struct TrainerConfig {
    pub inner: InnerConfig,
    /// DiLoCo outer learning rate and Nesterov momentum.
    pub outer_lr: f32,
    pub outer_momentum: f32,
    pub rule: RobustRule,
    pub wire: WireFloat,
    pub max_payload: usize,
    /// Seed of the initial adapter (round 0).
    pub init_seed: u64,
}

impl Default for TrainerConfig {
    fn default() -> Self {
        Self {
            inner: InnerConfig::default(),
            outer_lr: 0.7,
            outer_momentum: 0.9,
            rule: RobustRule::default(),
            wire: WireFloat::F32,
            max_payload: codec::DEFAULT_MAX_BYTES,
            init_seed: 0,
        }
    }
}

/// A holder's inner-loop result for one round.
#[derive(Clone, Debug)]
pub struct LocalUpdate {
    pub pseudo_gradient: Vec<f32>,
    /// Loss on the holder's probe windows before and after the inner loop.
    pub loss_before: f32,
    pub loss_after: f32,
    /// Training loss of each inner step.
    pub inner_losses: Vec<f32>,
}

/// What a round's aggregation decided, as this holder computed it.
#[derive(Clone, Debug, PartialEq)]
pub struct RoundOutcome {
    /// The result to report on chain.
    pub result: RoundResult,
    pub accepted: Vec<AccountId>,
    /// Valid contributions the robust rule did not keep.
    pub rejected: Vec<AccountId>,
    /// Contributions dropped before aggregation (bad signature, hash, size, ...).
    pub invalid: usize,
}

/// One holder of one shard.
pub struct ShardTrainer {
    keypair: Keypair,
    model_hash: Hash,
    layers: LayerRange,
    model: Arc<FrozenModel>,
    layout: AdapterLayout,
    theta: Vec<f32>,
    outer: OuterOptimizer,
    config: TrainerConfig,
    round: u32,
    local: Dataset,
}

impl ShardTrainer {
    /// A holder starting at round 0 with the initial adapter of `config.init_seed`.
    pub fn new(
        keypair: Keypair,
        model_hash: Hash,
        model: Arc<FrozenModel>,
        layout: AdapterLayout,
        local: Dataset,
        config: TrainerConfig,
    ) -> Result<Self> {
        if model.shard() != layout.range {
            return Err(TrainingError::BadConfig(
                "adapter layout and frozen model are for different shards".into(),
            ));
        }
        let to16 =
            |v: usize| u16::try_from(v).map_err(|_| TrainingError::BadConfig(format!("layer {v}")));
        let layers = LayerRange::new(to16(layout.range.start)?, to16(layout.range.end)?)
            .map_err(|e| TrainingError::BadConfig(e.to_string()))?;
        let theta = layout.init(config.init_seed);
        Ok(Self {
            outer: OuterOptimizer::new(config.outer_lr, config.outer_momentum, layout.len),
            keypair,
            model_hash,
            layers,
            model,
            layout,
            theta,
            config,
            round: 0,
            local,
        })
    }

    pub fn worker(&self) -> AccountId {
        self.keypair.public().into()
    }

    pub fn round(&self) -> u32 {
        self.round
    }

    pub fn layers(&self) -> LayerRange {
        self.layers
    }

    pub fn layout(&self) -> &AdapterLayout {
        &self.layout
    }

    /// The current adapter values.
    pub fn adapter(&self) -> &[f32] {
        &self.theta
    }

    /// The current adapter version.
    pub fn adapter_hash(&self) -> Hash {
        self.layout.hash(&self.theta)
    }

    pub fn model(&self) -> &FrozenModel {
        &self.model
    }

    fn key(&self) -> RoundKey {
        RoundKey {
            model: self.model_hash,
            layers: self.layers,
            round: self.round,
        }
    }

    /// Loss of the current adapter on `data` (all windows, `batch` at a time).
    pub fn evaluate(&self, data: &Dataset, batch: usize) -> Result<f32> {
        let all: Vec<usize> = (0..data.len()).collect();
        evaluate_windows(&self.model, &self.layout, &self.theta, data, &all, batch)
    }

    /// The training data: the pool of windows assignments are drawn from.
    pub fn data(&self) -> &Dataset {
        &self.local
    }

    /// The windows of the pool this holder trains on this round (see
    /// [`gauntlet::assignment`]); the first [`gauntlet::PROBE_WINDOWS`] are the ones its
    /// claimed losses are measured on.
    pub fn assigned(&self) -> Vec<usize> {
        gauntlet::assignment(
            &self.worker(),
            (&self.model_hash, self.layers),
            self.round,
            &self.adapter_hash(),
            self.local.len(),
            gauntlet::assigned_windows(&self.config.inner),
        )
    }

    /// Runs the inner loop from the current adapter on this round's assigned windows.
    pub fn train_local(&self) -> Result<LocalUpdate> {
        let seed_bytes = (&self.worker(), self.round, self.model_hash).encode();
        let digest = blake2_256(&seed_bytes);
        let mut seed = [0u8; 8];
        seed.copy_from_slice(&digest.as_bytes()[..8]);
        let seed = u64::from_le_bytes(seed);
        let windows = self.assigned();
        let probe = &windows[..gauntlet::PROBE_WINDOWS.min(windows.len())];
        let batch = self.config.inner.batch;
        let (model, layout, data) = (&self.model, &self.layout, &self.local);
        let loss_before = evaluate_windows(model, layout, &self.theta, data, probe, batch)?;
        let inner = inner_loop(
            model,
            layout,
            &self.theta,
            (data, &windows),
            &self.config.inner,
            seed,
        )?;
        let loss_after = evaluate_windows(model, layout, &inner.theta, data, probe, batch)?;
        Ok(LocalUpdate {
            pseudo_gradient: pseudo_gradient(&self.theta, &inner.theta),
            loss_before,
            loss_after,
            inner_losses: inner.losses,
        })
    }

    /// Encodes `pseudo_gradient` and signs the gradient receipt for it.
    pub fn contribution(
        &self,
        pseudo_gradient: &[f32],
        loss_before: f32,
        loss_after: f32,
    ) -> Result<Contribution> {
        let payload = codec::encode(pseudo_gradient, self.config.wire, self.config.max_payload)?;
        let body = GradientReceiptBody {
            worker: self.worker(),
            model: self.model_hash,
            layers: self.layers,
            round: self.round,
            base_adapter: self.adapter_hash(),
            pseudo_gradient: codec::hash(&payload),
            payload_bytes: u32::try_from(payload.len()).unwrap_or(u32::MAX),
            loss_before: loss_to_fixed(loss_before),
            loss_after: loss_to_fixed(loss_after),
        };
        Ok(Contribution {
            receipt: GradientReceipt::sign(body, &self.keypair),
            payload,
        })
    }

    /// The valid contributions of this round, one per worker, sorted by worker, decoded.
    fn validate(
        &self,
        contributions: &[Contribution],
    ) -> (Vec<(AccountId, Hash, Vec<f32>)>, usize) {
        let base = self.adapter_hash();
        let mut by_worker: BTreeMap<AccountId, Option<(Hash, Vec<f32>)>> = BTreeMap::new();
        let mut invalid = 0;
        for c in contributions {
            let b = &c.receipt.body;
            let checked = (|| -> Result<(Hash, Vec<f32>)> {
                let reject = |why: &str| Err(TrainingError::BadPseudoGradient(why.into()));
                if b.model != self.model_hash || b.layers != self.layers || b.round != self.round {
                    return reject("receipt for another model, shard or round");
                }
                if b.base_adapter != base {
                    return reject("receipt starts from another adapter version");
                }
                let hash = codec::hash(&c.payload);
                if hash != b.pseudo_gradient || b.payload_bytes as usize != c.payload.len() {
                    return reject("payload does not match its receipt");
                }
                if !c.receipt.signature_is_valid() {
                    return reject("bad receipt signature");
                }
                let values = codec::decode(&c.payload, self.layout.len, self.config.max_payload)?;
                Ok((hash, values))
            })();
            match checked {
                Ok(v) => match by_worker.get(&b.worker) {
                    None => {
                        by_worker.insert(b.worker.clone(), Some(v));
                    }
                    Some(Some((h, _))) if *h == v.0 => {}
                    Some(_) => {
                        tracing::warn!(worker = %b.worker, "two different pseudo-gradients: dropped");
                        by_worker.insert(b.worker.clone(), None);
                        invalid += 1;
                    }
                },
                Err(e) => {
                    tracing::warn!(worker = %b.worker, error = %e, "contribution dropped");
                    invalid += 1;
                }
            }
        }
        let valid = by_worker
            .into_iter()
            .filter_map(|(w, v)| v.map(|(h, values)| (w, h, values)))
            .collect();
        (valid, invalid)
    }

    /// Aggregates the round's `contributions` with the robust rule, applies the outer
    /// step and moves to the next round.
    pub fn apply_round(&mut self, contributions: &[Contribution]) -> Result<RoundOutcome> {
        let (valid, invalid) = self.validate(contributions);
        let vectors: Vec<&[f32]> = valid.iter().map(|(_, _, v)| v.as_slice()).collect();
        let agg = aggregate(self.config.rule, &vectors)?;
        self.outer.step(&mut self.theta, &agg.update);
        let mut accepted_hashes: Vec<Hash> = agg.accepted.iter().map(|&i| valid[i].1).collect();
        accepted_hashes.sort();
        let accepted: Vec<AccountId> = agg.accepted.iter().map(|&i| valid[i].0.clone()).collect();
        let rejected = valid
            .iter()
            .enumerate()
            .filter(|(i, _)| !agg.accepted.contains(i))
            .map(|(_, (w, _, _))| w.clone())
            .collect();
        let result = RoundResult {
            model: self.model_hash,
            layers: self.layers,
            round: self.round,
            accepted: accepted_hashes,
            adapter: self.adapter_hash(),
        };
        self.round += 1;
        Ok(RoundOutcome {
            result,
            accepted,
            rejected,
            invalid,
        })
    }

    /// A whole round through `exchange`: train, publish, wait for `expected`
    /// contributions (or `timeout`), aggregate.
    pub fn run_round(
        &mut self,
        exchange: &dyn GradientExchange,
        expected: usize,
        timeout: Duration,
    ) -> Result<(LocalUpdate, RoundOutcome)> {
        let update = self.train_local()?;
        let mine = self.contribution(
            &update.pseudo_gradient,
            update.loss_before,
            update.loss_after,
        )?;
        let key = self.key();
        exchange.publish(key, mine)?;
        let all = exchange.collect(key, expected, timeout)?;
        let outcome = self.apply_round(&all)?;
        Ok((update, outcome))
    }

    /// The holder's state for a peer to resume from.
    pub fn snapshot(&self) -> AdapterSnapshot {
        AdapterSnapshot {
            round: self.round,
            theta: self.theta.clone(),
            velocity: self.outer.velocity().to_vec(),
        }
    }

    /// Resumes from a peer's `snapshot`, which must hold adapter `version` (the one the
    /// chain recorded for the round before `snapshot.round`).
    pub fn restore(&mut self, snapshot: AdapterSnapshot, version: &Hash) -> Result<()> {
        snapshot.verify(&self.layout, version)?;
        self.round = snapshot.round;
        self.theta = snapshot.theta;
        self.outer.set_velocity(snapshot.velocity);
        Ok(())
    }

    /// `weights` (whole model or any slice) with the current adapter merged in, ready
    /// for the inference executor.
    pub fn merged_weights(&self, weights: &ModelWeights) -> Result<ModelWeights> {
        merge_adapter(weights, &self.layout, &self.theta)
    }
}
