//! Serving and replaying for `bench verify` ([`crate::verify`]): generations over three
//! in-process shards (the middle one optionally cheating), the validator's re-run of
//! each receipt, the cheats the bench measures, and the honest "other machine" the
//! validators can be made to be.
//!
//! A cheat is one a rational worker would run to save compute or memory ([`CheatMode`]):
//! skip a random share of positions; skip the quietest positions (an oracle's worst case:
//! it computes, then fakes the positions its layers change least, which a commitment of
//! only the largest values never looks at); skip the shard's last layer; attend only to
//! the first 4 and the last 32 positions (StreamingLLM); run Q4_0 weights instead of the
//! model's Q4_1.

use crate::inference::BenchModel;
use candle_core::quantized::GgmlDType;
use candle_core::Tensor;
use neuroshard_inference::commitment::Distance;
use neuroshard_inference::decode::decode;
use neuroshard_inference::executor::ExecInput;
use neuroshard_inference::fault::{Fault, SkipWork};
use neuroshard_inference::generate::{client_for, record_local_work};
use neuroshard_inference::messages::ShardInput;
use neuroshard_inference::spot_check::{recompute, SpotCheckMaterial};
use neuroshard_inference::transport::InProcessTransport;
use neuroshard_inference::weights::{LayerWeights, ModelWeights};
use neuroshard_inference::{shard::Shard, DecodeOptions, NgramDrafter};
use neuroshard_inference::{Drafter, ShardExecutor, WorkRecord};
use neuroshard_primitives::{Hash, LayerRange};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The shards of the served model.
pub const RANGES: [LayerRange; 3] = [
    LayerRange { start: 0, end: 10 },
    LayerRange { start: 10, end: 20 },
    LayerRange { start: 20, end: 30 },
];

/// Every receipt of a served run with the shard that issued it.
pub type ServedReceipts = Vec<(WorkRecord, Arc<Shard>)>;

/// A cheat the middle shard runs while its receipts are checked.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum CheatMode {
    /// A random share of positions (millionths) returns the input rows.
    SkipRandom { permill: u32 },
    /// The quietest share of positions (millionths, by the honest run's work norms)
    /// returns the input rows.
    SkipQuiet { permill: u32 },
    /// The last `layers` layers are not run.
    SkipLastLayers { layers: usize },
    /// Attention over the first `sink` and the last `window` positions only.
    AttentionWindow { sink: usize, window: usize },
    /// Weights re-quantized to Q4_0 (the model ships Q4_1).
    Q4_0Weights,
}

impl CheatMode {
    /// An upper bound on the share of the shard's compute the cheat saves (for
    /// `bench econ`, which must overstate a cheater's gain, never understate it):
    /// skipped positions save their share; skipping `l` of the shard's layers saves
    /// `l / layers`; an attention window saves at most the attention half of a layer's
    /// work; re-quantized weights save at most a quarter (cheaper dequantization).
    pub fn saved(&self) -> f64 {
        let shard_layers = f64::from(RANGES[1].len());
        match self {
            CheatMode::SkipRandom { permill } | CheatMode::SkipQuiet { permill } => {
                f64::from(*permill) / 1e6
            }
            CheatMode::SkipLastLayers { layers } => (*layers as f64 / shard_layers).min(1.0),
            CheatMode::AttentionWindow { .. } => 0.5,
            CheatMode::Q4_0Weights => 0.25,
        }
    }

    /// What the cheater does, for the report.
    pub fn label(&self) -> String {
        let pct = |p: u32| f64::from(p) / 1e4;
        match self {
            CheatMode::SkipRandom { permill } => {
                format!("skip {:.1}% random positions", pct(*permill))
            }
            CheatMode::SkipQuiet { permill } => {
                format!("skip {:.0}% quietest positions", pct(*permill))
            }
            CheatMode::SkipLastLayers { layers } => format!("skip last {layers} layer(s)"),
            CheatMode::AttentionWindow { sink, window } => {
                format!("attend to first {sink} + last {window}")
            }
            CheatMode::Q4_0Weights => "weights re-quantized Q4_1 -> Q4_0".into(),
        }
    }

    /// The fault the middle shard runs; `quiet_norms` are the honest run's per-position
    /// work norms, ascending.
    pub fn fault(&self, quiet_norms: &[f32]) -> Fault {
        match *self {
            CheatMode::SkipRandom { permill } => Fault::SkipWork(SkipWork { permill, seed: 11 }),
            CheatMode::SkipQuiet { permill } => {
                let n = quiet_norms.len();
                let at = (n as u64 * u64::from(permill) / 1_000_000) as usize;
                let max_norm = quiet_norms
                    .get(at.min(n.saturating_sub(1)))
                    .copied()
                    .unwrap_or(0.0);
                Fault::SkipQuiet { max_norm }
            }
            CheatMode::SkipLastLayers { layers } => Fault::SkipLastLayers { layers },
            CheatMode::AttentionWindow { sink, window } => Fault::AttentionWindow { sink, window },
            CheatMode::Q4_0Weights => Fault::Requantize(GgmlDType::Q4_0),
        }
    }
}

/// The modes `bench verify` measures by default.
pub fn default_modes() -> Vec<CheatMode> {
    vec![
        CheatMode::SkipRandom { permill: 1_000_000 },
        CheatMode::SkipRandom { permill: 100_000 },
        CheatMode::SkipRandom { permill: 20_000 },
        CheatMode::SkipQuiet { permill: 250_000 },
        CheatMode::SkipQuiet { permill: 100_000 },
        CheatMode::SkipQuiet { permill: 30_000 },
        CheatMode::SkipLastLayers { layers: 1 },
        CheatMode::AttentionWindow {
            sink: 4,
            window: 32,
        },
        CheatMode::Q4_0Weights,
    ]
}

/// Serves one greedy generation per prompt (the middle shard running `fault`; every
/// other generation speculative with the n-gram drafter when `speculative`), returning
/// every receipt with its shard and the decode time.
pub fn serve(
    weights: &ModelWeights,
    hash: Hash,
    fault: Option<Fault>,
    prompts: &[Vec<u32>],
    dopts: &DecodeOptions,
    speculative: bool,
) -> anyhow::Result<(ServedReceipts, Duration)> {
    let shards: Vec<Arc<Shard>> = RANGES
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut s = Shard::new(weights.slice(r.start as usize..r.end as usize)?, hash)?;
            if let (1, Some(f)) = (i, fault) {
                s = s.try_with_fault(f)?;
            }
            Ok(Arc::new(s))
        })
        .collect::<anyhow::Result<_>>()?;
    let route: Vec<Arc<InProcessTransport>> = shards
        .iter()
        .map(|s| Arc::new(InProcessTransport::new(s.clone())))
        .collect();
    let mut receipts = Vec::new();
    let mut busy = Duration::ZERO;
    for (g, prompt) in prompts.iter().enumerate() {
        let mut session = [40u8; 16];
        session[..8].copy_from_slice(&(g as u64).to_le_bytes());
        let mut client = client_for(&route, hash, session)?;
        let mut ngram = NgramDrafter::default();
        let drafter = (speculative && g % 2 == 1).then_some(&mut ngram as &mut dyn Drafter);
        let started = Instant::now();
        let out = decode(&mut client, prompt, dopts, drafter, &mut |_| {})?;
        busy += started.elapsed();
        for (recorded, shard) in record_local_work(&route, &client, out.accepted_positions as u32)?
            .into_iter()
            .zip(&shards)
        {
            receipts.push((recorded.record, shard.clone()));
        }
        client.close();
        for s in &shards {
            s.end_session(&session);
        }
    }
    Ok((receipts, busy))
}

/// The prompts of the main measurement: the bench prompt with `g` of its tokens repeated.
pub fn bench_prompts(model: &BenchModel, generations: usize) -> Vec<Vec<u32>> {
    (0..generations)
        .map(|g| {
            let mut prompt = model.prompt.clone();
            prompt.extend(model.prompt.iter().take(g).copied());
            prompt
        })
        .collect()
}

const TOPICS: [&str; 12] = [
    "What is the capital of France?",
    "Write a haiku about the sea.",
    "List three prime numbers.",
    "Explain what a CPU does in one sentence.",
    "Give me a recipe for pancakes.",
    "Why is the sky blue?",
    "Translate 'good morning' into Spanish.",
    "Name a famous painter and one of their works.",
    "What does a compiler do?",
    "Summarise the plot of Romeo and Juliet.",
    "How many legs does a spider have?",
    "Suggest a name for a pet turtle.",
];

/// Varied prompts for the false-positive count: `count` chat prompts, each a topic with
/// a numbered variation so no two are the same.
pub fn varied_prompts(
    model: &BenchModel,
    from: usize,
    count: usize,
) -> anyhow::Result<Vec<Vec<u32>>> {
    use neuroshard_inference::tokenizer::ChatMessage;
    (from..from + count)
        .map(|i| {
            let text = format!(
                "{} (question {i}, answer briefly)",
                TOPICS[i % TOPICS.len()]
            );
            Ok(model
                .tokenizer
                .encode_chat(&[ChatMessage::new("user", &text)])?)
        })
        .collect()
}

/// A validator's verdict on one receipt: whether it passes ([`recompute`] and
/// `matches`, as `check_work` decides) and the commitments' distance (the relative
/// tolerance it would need; infinite when the material itself is wrong).
pub fn verdict(
    exec: &ShardExecutor,
    work: &WorkRecord,
    shard: &Shard,
) -> anyhow::Result<(bool, Distance)> {
    let material = shard
        .material(&work.id())
        .ok_or_else(|| anyhow::anyhow!("receipt material not archived"))?;
    Ok(match recompute(exec, work, &material)? {
        Ok((claimed, recomputed)) => (recomputed.matches(&claimed), recomputed.distance(&claimed)),
        Err(_) => (
            false,
            Distance {
                max: f32::INFINITY,
                mean: f32::INFINITY,
            },
        ),
    })
}

/// The L2 norms of the work (output minus input) of the positions a receipt covers.
pub fn work_norms(
    exec: &ShardExecutor,
    work: &WorkRecord,
    material: &SpotCheckMaterial,
) -> anyhow::Result<Vec<f32>> {
    let input = material.inputs.as_shard_input()?;
    let hidden;
    let (exec_input, input_rows) = match &input {
        ShardInput::Tokens(t) => (ExecInput::Tokens(t), None),
        ShardInput::Hidden(a) => {
            hidden = a.to_tensor()?;
            (ExecInput::Hidden(&hidden), Some(hidden.clone()))
        }
    };
    let out = exec.forward(&mut exec.new_cache(), exec_input, 0)?;
    let delta = match input_rows {
        Some(x) => (&out - x.to_dtype(out.dtype())?)?,
        None => return Ok(Vec::new()),
    };
    let norms = delta.sqr()?.sum(2)?.sqrt()?.squeeze(0)?.to_vec1::<f32>()?;
    Ok(norms[work.position_start as usize..].to_vec())
}

/// The honest "other machine": the same weights with every RMS-norm gain scaled by
/// `1 + eps * u` (`u` a fixed pseudo-random value in [-1, 1] per element), so every
/// layer's arithmetic differs in its last bits the way another machine's would.
pub fn perturbed(weights: &ModelWeights, eps: f32) -> anyhow::Result<ModelWeights> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64;
    let mut jitter = |t: &Tensor| -> anyhow::Result<Tensor> {
        let v: Vec<f32> = t.to_dtype(candle_core::DType::F32)?.to_vec1()?;
        let v: Vec<f32> = v
            .iter()
            .map(|x| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let u = ((state >> 40) as f32 / (1u64 << 24) as f32) * 2.0 - 1.0;
                x * (1.0 + eps * u)
            })
            .collect();
        Ok(Tensor::from_vec(v, t.dims(), t.device())?.to_dtype(t.dtype())?)
    };
    let layers = weights
        .layers
        .iter()
        .map(|l| {
            Ok(Arc::new(LayerWeights {
                wq: l.wq.clone(),
                wk: l.wk.clone(),
                wv: l.wv.clone(),
                wo: l.wo.clone(),
                w_gate: l.w_gate.clone(),
                w_up: l.w_up.clone(),
                w_down: l.w_down.clone(),
                attn_norm: jitter(&l.attn_norm)?,
                ffn_norm: jitter(&l.ffn_norm)?,
                extras: l.extras.clone(),
            }))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let norm = match &weights.norm {
        Some(n) => Some(jitter(n)?),
        None => None,
    };
    Ok(ModelWeights {
        layers,
        norm,
        ..weights.clone()
    })
}

/// One validator executor per shard range.
pub fn checkers(weights: &ModelWeights) -> anyhow::Result<Vec<ShardExecutor>> {
    RANGES
        .iter()
        .map(|r| {
            ShardExecutor::new(weights.slice(r.start as usize..r.end as usize)?)
                .map_err(anyhow::Error::from)
        })
        .collect()
}

/// The checker of `layers` among [`checkers`]' output.
pub fn checker_for<'a>(
    checkers: &'a [ShardExecutor],
    layers: &LayerRange,
) -> anyhow::Result<&'a ShardExecutor> {
    RANGES
        .iter()
        .position(|r| r == layers)
        .and_then(|i| checkers.get(i))
        .ok_or_else(|| anyhow::anyhow!("no checker for {layers}"))
}
