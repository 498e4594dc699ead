//! DiLoCo (Douillard et al. 2023) on a shard's adapter: every holder starts a round
//! from the same adapter `theta`, runs `H` local AdamW steps on its own data (the inner
//! loop, candle autograd through the frozen model), and shares the *pseudo-gradient*
//! `theta_start - theta_local`. The robust aggregate of those pseudo-gradients drives an
//! outer SGD step with Nesterov momentum; every holder applies the same outer step to the
//! same state and so ends the round with the same adapter.

use crate::dataset::Dataset;
use crate::error::Result;
use crate::lora::AdapterLayout;
use crate::model::{AdapterTensors, FrozenModel};
use candle_core::Var;
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;

/// Inner-loop hyper-parameters.
#[derive(Clone, Debug, PartialEq)]
pub struct InnerConfig {
    /// Local AdamW steps per round (DiLoCo's H).
    pub steps: usize,
    /// Windows per step.
    pub batch: usize,
    pub lr: f64,
    pub weight_decay: f64,
}

impl Default for InnerConfig {
    fn default() -> Self {
        Self {
            steps: 8,
            batch: 4,
            lr: 2e-3,
            weight_decay: 0.0,
        }
    }
}

/// What an inner loop produced.
#[derive(Clone, Debug)]
pub struct InnerResult {
    /// The adapter after the local steps.
    pub theta: Vec<f32>,
    /// Training loss of every step (before its update).
    pub losses: Vec<f32>,
}

/// Runs `config.steps` AdamW steps on `theta_start` over the windows `windows` of
/// `data` (all of them when empty; order drawn from `seed`).
pub fn inner_loop(
    model: &FrozenModel,
    layout: &AdapterLayout,
    theta_start: &[f32],
    (data, assigned): (&Dataset, &[usize]),
    config: &InnerConfig,
    seed: u64,
) -> Result<InnerResult> {
    let start = AdapterTensors::from_theta(layout, theta_start)?;
    let mut vars = Vec::with_capacity(start.pairs.len() * 2);
    let mut pairs = Vec::with_capacity(start.pairs.len());
    for (a, b) in &start.pairs {
        let (va, vb) = (Var::from_tensor(a)?, Var::from_tensor(b)?);
        pairs.push((va.as_tensor().clone(), vb.as_tensor().clone()));
        vars.push(va);
        vars.push(vb);
    }
    let trainable = AdapterTensors { layout, pairs };
    let mut opt = AdamW::new(
        vars.clone(),
        ParamsAdamW {
            lr: config.lr,
            weight_decay: config.weight_decay,
            ..Default::default()
        },
    )?;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut order: Vec<usize> = Vec::new();
    let mut losses = Vec::with_capacity(config.steps);
    for _ in 0..config.steps {
        let mut windows = Vec::with_capacity(config.batch);
        while windows.len() < config.batch.max(1) {
            if order.is_empty() {
                order = if assigned.is_empty() {
                    (0..data.len()).collect()
                } else {
                    assigned.to_vec()
                };
                order.shuffle(&mut rng);
            }
            if let Some(w) = order.pop() {
                windows.push(w);
            }
        }
        let (input, targets) = data.batch(&windows)?;
        let loss = model.loss(&input, &targets, &trainable)?;
        losses.push(loss.to_scalar::<f32>()?);
        opt.backward_step(&loss)?;
    }
    let mut theta = Vec::with_capacity(layout.len);
    for v in &vars {
        theta.extend(v.as_tensor().flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(InnerResult { theta, losses })
}

/// Mean next-token loss of `theta` over `windows` of `data` (`batch` at a time).
pub fn evaluate_windows(
    model: &FrozenModel,
    layout: &AdapterLayout,
    theta: &[f32],
    data: &Dataset,
    windows: &[usize],
    batch: usize,
) -> Result<f32> {
    let adapter = AdapterTensors::from_theta(layout, theta)?;
    let mut total = 0f64;
    for chunk in windows.chunks(batch.max(1)) {
        let (input, targets) = data.batch(chunk)?;
        let loss = model.loss(&input, &targets, &adapter)?.to_scalar::<f32>()?;
        total += f64::from(loss) * chunk.len() as f64;
    }
    Ok((total / windows.len().max(1) as f64) as f32)
}

/// `theta_start - theta_local`.
pub fn pseudo_gradient(theta_start: &[f32], theta_local: &[f32]) -> Vec<f32> {
    theta_start
        .iter()
        .zip(theta_local)
        .map(|(a, b)| a - b)
        .collect()
}

/// Outer SGD with Nesterov momentum over pseudo-gradients (DiLoCo: lr 0.7, momentum 0.9).
#[derive(Clone, Debug, PartialEq)]
pub struct OuterOptimizer {
    pub lr: f32,
    pub momentum: f32,
    velocity: Vec<f32>,
}

impl OuterOptimizer {
    pub fn new(lr: f32, momentum: f32, len: usize) -> Self {
        Self {
            lr,
            momentum,
            velocity: vec![0.0; len],
        }
    }

    /// The momentum buffer.
    pub fn velocity(&self) -> &[f32] {
        &self.velocity
    }

    /// Replaces the momentum buffer (resuming from a peer's snapshot).
    pub fn set_velocity(&mut self, velocity: Vec<f32>) {
        self.velocity = velocity;
    }

    /// `v = mu v + g; theta -= lr (g + mu v)`.
    pub fn step(&mut self, theta: &mut [f32], gradient: &[f32]) {
        for ((t, v), g) in theta.iter_mut().zip(&mut self.velocity).zip(gradient) {
            *v = self.momentum * *v + g;
            *t -= self.lr * (g + self.momentum * *v);
        }
    }
}
