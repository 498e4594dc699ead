//! `neuroshard bench`-style measurement of Proof of Training: several holders of one
//! shard train in-process for a few DiLoCo rounds; the report gives the wall time per
//! round, the bytes synchronised per round, and the held-out loss after every round.
//! The baseline measured in the same run is synchronous data-parallel training, which
//! would exchange one full gradient per inner step instead of one pseudo-gradient per
//! round: the printed ratio is the communication DiLoCo saves.

use neuroshard_inference::ModelWeights;
use neuroshard_primitives::{Hash, Keypair};
use neuroshard_training::corpus;
use neuroshard_training::in_process::{build_holders, run_round_in_process};
use neuroshard_training::{
    Dataset, FrozenModel, InProcessExchange, LoraConfig, Result, TrainerConfig,
};
use sp_core::Pair as _;
use std::ops::Range;
use std::sync::Arc;

/// What to measure.
#[derive(Clone, Debug)]
pub struct TrainingBenchOptions {
    pub holders: usize,
    pub rounds: usize,
    pub shard: Range<usize>,
    pub lora: LoraConfig,
    pub config: TrainerConfig,
    /// Tokens predicted per window.
    pub seq: usize,
    /// Most windows of local data per holder and of held-out data.
    pub max_windows: usize,
}

/// The figures of one bench run.
#[derive(Clone, Debug)]
pub struct TrainingBenchReport {
    pub holders: usize,
    pub adapter_params: usize,
    /// Encoded pseudo-gradient size (one holder's upload per round).
    pub payload_bytes: usize,
    /// Bytes every holder downloads and uploads per round, all-to-all:
    /// `holders x (holders - 1) x payload`.
    pub bytes_per_round: u64,
    /// What synchronous data-parallel training would move for the same steps
    /// (`inner steps x bytes_per_round`).
    pub baseline_bytes_per_round: u64,
    /// Wall time of every round (all holders in parallel threads).
    pub round_secs: Vec<f64>,
    /// Held-out loss before training and after every round.
    pub held_out_loss: Vec<f32>,
    /// Whether every holder ended every round with the same adapter version.
    pub holders_agree: bool,
}

impl TrainingBenchReport {
    /// Human-readable summary lines.
    pub fn lines(&self) -> Vec<String> {
        let mean = self.round_secs.iter().sum::<f64>() / self.round_secs.len().max(1) as f64;
        vec![
            format!(
                "holders {}  adapter params {}  pseudo-gradient {} bytes",
                self.holders, self.adapter_params, self.payload_bytes
            ),
            format!(
                "time per round: mean {mean:.2} s  ({})",
                self.round_secs
                    .iter()
                    .map(|s| format!("{s:.2}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            format!(
                "bytes synchronised per round: {} (all-to-all); per-step data-parallel \
                 baseline {}; ratio {:.1}x less",
                self.bytes_per_round,
                self.baseline_bytes_per_round,
                self.baseline_bytes_per_round as f64 / self.bytes_per_round.max(1) as f64
            ),
            format!(
                "held-out loss by round: {}",
                self.held_out_loss
                    .iter()
                    .map(|l| format!("{l:.4}"))
                    .collect::<Vec<_>>()
                    .join(" -> ")
            ),
            format!(
                "holders agree on every adapter version: {}",
                self.holders_agree
            ),
        ]
    }
}

/// Trains `options.shard` of `weights` with `options.holders` in-process holders.
pub fn bench_training(
    weights: &ModelWeights,
    model_hash: Hash,
    tokenize: &dyn Fn(&str) -> Result<Vec<u32>>,
    options: &TrainingBenchOptions,
) -> Result<TrainingBenchReport> {
    let model = Arc::new(FrozenModel::new(weights, options.shard.clone())?);
    let keys: Vec<Keypair> = (0..options.holders)
        .map(|i| Keypair::from_seed(&[i as u8 + 1; 32]))
        .collect();
    let mut trainers = build_holders(
        model.clone(),
        model_hash,
        &keys,
        &options.lora,
        &options.config,
        tokenize,
        options.seq,
        options.max_windows,
    )?;
    let held_out = Dataset::new(
        &model,
        &tokenize(corpus::HELD_OUT)?,
        options.seq,
        options.max_windows,
    )?;
    let exchange = InProcessExchange::new(options.config.max_payload);
    let eval_batch = options.config.inner.batch;
    let mut held_out_loss = vec![trainers[0].evaluate(&held_out, eval_batch)?];
    let mut round_secs = Vec::new();
    let mut holders_agree = true;
    let mut published = 0;
    let mut payload_bytes = 0;
    for _ in 0..options.rounds {
        let (outcomes, elapsed) = run_round_in_process(&mut trainers, &exchange)?;
        round_secs.push(elapsed.as_secs_f64());
        holders_agree &= outcomes.windows(2).all(|w| w[0].result == w[1].result);
        let now = exchange.bytes_published();
        payload_bytes = ((now - published) / options.holders.max(1) as u64) as usize;
        published = now;
        held_out_loss.push(trainers[0].evaluate(&held_out, eval_batch)?);
    }
    let n = options.holders as u64;
    let bytes_per_round = n * n.saturating_sub(1) * payload_bytes as u64;
    Ok(TrainingBenchReport {
        holders: options.holders,
        adapter_params: trainers[0].layout().len,
        payload_bytes,
        bytes_per_round,
        baseline_bytes_per_round: bytes_per_round * options.config.inner.steps as u64,
        round_secs,
        held_out_loss,
        holders_agree,
    })
}

/// `neuroshard bench training`: three holders train `args.shard` of the tiny random model
/// or of the chain's model for `args.rounds` rounds; prints the report.
pub fn run(args: &crate::command::TrainingBenchArgs) -> anyhow::Result<()> {
    use neuroshard_inference::fetch::{default_cache_dir, ensure_model, smollm2_135m_q4_1};
    use neuroshard_inference::tokenizer::Tokenizer;
    use neuroshard_inference::{ModelSource, Precision};
    use neuroshard_primitives::{blake2_256, LayerRange};
    use neuroshard_training::InnerConfig;

    let tiny_dir;
    let (weights, hash, tokenizer, shard, inner, seq, windows) = match args.model.as_str() {
        "smollm2" => {
            let spec = smollm2_135m_q4_1();
            let path = ensure_model(&spec, &default_cache_dir(), true)?;
            let weights =
                ModelWeights::load(&ModelSource::Gguf(path.clone()), None, Precision::Native)?;
            let tok = Tokenizer::from_gguf_file(&path)?;
            let shard = LayerRange::parse(args.shard.as_deref().unwrap_or("26-30"))?;
            let inner = InnerConfig {
                steps: 4,
                batch: 2,
                lr: 1e-3,
                weight_decay: 0.0,
            };
            let hash = Hash::from_slice(&hex::decode(&spec.blake2b_256)?);
            (weights, hash, Some(tok), shard, inner, 64, 12)
        }
        "tiny" => {
            anyhow::ensure!(
                args.shard.is_none(),
                "--shard is for --model smollm2; the tiny model trains layers 2-4"
            );
            tiny_dir = tempfile::tempdir()?;
            neuroshard_inference::tiny::write_tiny_llama(tiny_dir.path(), 7)?;
            let weights = ModelWeights::load(
                &ModelSource::Safetensors(tiny_dir.path().to_path_buf()),
                None,
                Precision::Native,
            )?;
            let inner = InnerConfig {
                steps: 6,
                batch: 4,
                lr: 1e-2,
                weight_decay: 0.0,
            };
            let shard = LayerRange::new(2, 4)?;
            (weights, blake2_256(b"tiny"), None, shard, inner, 32, 64)
        }
        other => anyhow::bail!("--model {other:?}: expected tiny or smollm2"),
    };
    let tokenize = |text: &str| -> Result<Vec<u32>> {
        match &tokenizer {
            Some(t) => Ok(t.encode(text)?),
            None => Ok(corpus::byte_tokens(text)),
        }
    };
    let options = TrainingBenchOptions {
        holders: 3,
        rounds: args.rounds,
        shard: shard.start as usize..shard.end as usize,
        lora: LoraConfig::default(),
        config: TrainerConfig {
            inner,
            ..Default::default()
        },
        seq,
        max_windows: windows,
    };
    println!(
        "model {}, shard {shard}, {} holders, {} rounds, H = {} inner steps of {} x {seq} tokens",
        args.model,
        options.holders,
        args.rounds,
        options.config.inner.steps,
        options.config.inner.batch
    );
    let report = bench_training(&weights, hash, &tokenize, &options)?;
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}
