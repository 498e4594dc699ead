//! The library side of `neuroshard bench inference`: on the real model, in one run,
//! measures plain single-process decode speed, a 3-shard in-process pipeline's speed and
//! its ratio to single-process, speculative versus plain decoding under injected per-hop
//! latency (acceptance rate, tokens per round, identical output), and the size of the
//! activation commitments. Every figure is a ratio against a baseline from the same run.

use crate::llamacpp::LlamaCppComparison;
use neuroshard_inference::decode::{decode, DecodeOptions, Decoded};
use neuroshard_inference::drafter::{Drafter, ModelDrafter, NgramDrafter};
use neuroshard_inference::generate::{client_for, local_route, record_local_work, resolve_model};
use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_primitives::LayerRange;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Options of [`bench_inference`].
#[derive(Clone, Debug)]
pub struct BenchOptions {
    pub model_path: Option<PathBuf>,
    pub cache_dir: Option<PathBuf>,
    /// Tokens generated per measurement.
    pub max_tokens: usize,
    /// The user message (chat template applied).
    pub prompt: String,
    /// Pipeline layout for the multi-shard measurements.
    pub shards: Vec<LayerRange>,
    /// Latency injected per hop for the speculative comparison.
    pub hop_latency: Duration,
    /// Also measure the Q4_1 model drafting for an f32 target (slower).
    pub model_drafter: bool,
    /// Print progress.
    pub print: bool,
}

impl Default for BenchOptions {
    fn default() -> Self {
        Self {
            model_path: None,
            cache_dir: None,
            max_tokens: 64,
            prompt: "Copy this text exactly: NeuroShard splits a language model into shards of \
                     consecutive layers. Each node serves one shard, and hidden states flow from \
                     node to node over the network. The client drafts several tokens locally and \
                     the swarm verifies them in one batched pass, so one round trip yields several \
                     tokens."
                .into(),
            shards: vec![
                LayerRange { start: 0, end: 10 },
                LayerRange { start: 10, end: 20 },
                LayerRange { start: 20, end: 30 },
            ],
            hop_latency: Duration::from_millis(50),
            model_drafter: true,
            print: true,
        }
    }
}

/// Speculative versus plain decoding through a high-latency pipeline.
#[derive(Clone, Debug)]
pub struct SpeculativeRow {
    pub drafter: String,
    /// Target precision ("q4_1" or "f32").
    pub target: String,
    pub plain_tps: f64,
    pub speculative_tps: f64,
    pub speedup: f64,
    pub acceptance_rate: f64,
    /// Tokens gained per pipeline round trip.
    pub tokens_per_round: f64,
    pub same_output: bool,
}

/// Figures printed by `neuroshard bench inference`.
#[derive(Clone, Debug)]
pub struct BenchReport {
    pub tokens: usize,
    pub single_tps: f64,
    /// candle-transformers' `quantized_llama` on the same file, prompt and token count.
    pub candle_tps: f64,
    pub pipeline_tps: f64,
    pub pipeline_ratio: f64,
    pub hops: usize,
    pub hop_latency_ms: u64,
    pub speculative: Vec<SpeculativeRow>,
    /// Encoded commitment size per 32 positions.
    pub commitment_bytes_per_32: f64,
    /// llama.cpp on the same file and prompt, or why it was skipped.
    pub llama_cpp: Result<LlamaCppComparison, String>,
    /// candle's greedy tokens (`max_tokens` of them, EOS not special).
    pub candle_tokens: Vec<u32>,
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "inference benchmark ({} tokens per run, greedy)",
            self.tokens
        )?;
        writeln!(
            f,
            "  single process (1 shard, 0 latency): {:8.1} tok/s",
            self.single_tps
        )?;
        writeln!(
            f,
            "  candle-transformers quantized_llama (same GGUF and prompt): {:8.1} tok/s  ours/candle = {:.2}x",
            self.candle_tps,
            self.single_tps / self.candle_tps.max(1e-9)
        )?;
        match &self.llama_cpp {
            Ok(l) => {
                writeln!(
                    f,
                    "  llama.cpp (llama-cpp-python {}, {} threads, same GGUF and prompt): {:8.1} tok/s  \
                     ours/llama.cpp = {:.2}x",
                    l.version,
                    l.threads,
                    l.tokens_per_second,
                    self.single_tps / l.tokens_per_second.max(1e-9)
                )?;
                writeln!(
                    f,
                    "    on llama.cpp's tokens: top-1 agreement {}/{}, max |logit diff| {:.3}",
                    l.top1_agreement,
                    l.tokens.len(),
                    l.max_logit_diff
                )?;
                match l.parts_from(&self.candle_tokens) {
                    None => writeln!(f, "    candle's greedy tokens identical to llama.cpp's")?,
                    Some((step, theirs, candle, gap)) => writeln!(
                        f,
                        "    candle's greedy tokens part from llama.cpp's at step {step} \
                         (llama.cpp {theirs} vs candle {candle}); llama.cpp's gap between the \
                         two: {gap:.3}"
                    )?,
                }
                match &l.first_divergence {
                    None => writeln!(f, "    our greedy tokens identical to llama.cpp's")?,
                    Some(d) => writeln!(
                        f,
                        "    our greedy tokens part from llama.cpp's at step {}: llama.cpp {} vs \
                         ours {}; gap between the two: {:.3} in llama.cpp's logits, {:.3} in ours",
                        d.step, d.theirs, d.ours, d.their_margin, d.our_margin
                    )?,
                }
            }
            Err(why) => writeln!(f, "  llama.cpp comparison skipped: {why}")?,
        }
        writeln!(
            f,
            "  {}-shard in-process pipeline:          {:8.1} tok/s  ratio {:.3} of single-process",
            self.hops, self.pipeline_tps, self.pipeline_ratio
        )?;
        for r in &self.speculative {
            writeln!(
                f,
                "  {} hops x {} ms, {} target, {:>5} drafter: plain {:6.2} tok/s, speculative {:6.2} tok/s, \
                 speedup {:.2}x, acceptance {:.0}%, {:.2} tokens/round, same output: {}",
                self.hops,
                self.hop_latency_ms,
                r.target,
                r.drafter,
                r.plain_tps,
                r.speculative_tps,
                r.speedup,
                r.acceptance_rate * 100.0,
                r.tokens_per_round,
                if r.same_output { "yes" } else { "NO" }
            )?;
        }
        write!(
            f,
            "  activation commitment: {:.0} bytes per 32 tokens",
            self.commitment_bytes_per_32
        )
    }
}

/// Decodes and returns the result plus decode speed (tokens after the first over the time
/// after the first, so the prompt's prefill is excluded).
pub fn timed(
    client: &mut neuroshard_inference::pipeline::PipelineClient,
    prompt: &[u32],
    opts: &DecodeOptions,
    drafter: Option<&mut (dyn Drafter + '_)>,
) -> anyhow::Result<(Decoded, f64)> {
    let mut first: Option<Instant> = None;
    let d = decode(client, prompt, opts, drafter, &mut |_| {
        first.get_or_insert_with(Instant::now);
    })?;
    let elapsed = first.map(|t| t.elapsed()).unwrap_or_default().as_secs_f64();
    let tps = d.tokens.len().saturating_sub(1) as f64 / elapsed.max(1e-9);
    Ok((d, tps))
}

/// Greedy decode speed of candle-transformers' `quantized_llama` (the executor's oracle) for
/// `tokens` tokens after `prompt`, measured like [`timed`] (after the first token), and
/// the tokens.
fn candle_decode(
    path: &std::path::Path,
    prompt: &[u32],
    tokens: usize,
) -> anyhow::Result<(f64, Vec<u32>)> {
    use candle_core::{Device, Tensor};
    use candle_transformers::models::quantized_llama::ModelWeights as CandleLlama;
    let mut file = std::fs::File::open(path)?;
    let content = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let mut model = CandleLlama::from_gguf(content, &mut file, &Device::Cpu)?;
    let mut input = prompt.to_vec();
    let mut pos = 0;
    let mut first = None;
    let mut out = Vec::with_capacity(tokens);
    for _ in 0..tokens {
        let x = Tensor::new(input.as_slice(), &Device::Cpu)?.unsqueeze(0)?;
        let logits = model.forward(&x, pos)?;
        let next = neuroshard_inference::executor::argmax_rows(&logits)?[0];
        first.get_or_insert_with(Instant::now);
        out.push(next);
        pos += input.len();
        input = vec![next];
    }
    let elapsed = first.map(|t| t.elapsed()).unwrap_or_default().as_secs_f64();
    Ok((tokens.saturating_sub(1) as f64 / elapsed.max(1e-9), out))
}

/// What every decode benchmark starts from: the GGUF's tokenizer and weights, a chat
/// prompt, and greedy decode options for `max_tokens`.
pub struct BenchModel {
    pub tokenizer: Tokenizer,
    pub prompt: Vec<u32>,
    pub weights: ModelWeights,
    pub dopts: DecodeOptions,
}

impl BenchModel {
    /// Loads the GGUF at `path` and encodes `prompt` as a user message.
    pub fn load(path: &std::path::Path, prompt: &str, max_tokens: usize) -> anyhow::Result<Self> {
        let tokenizer = Tokenizer::from_gguf_file(path)?;
        let prompt = tokenizer.encode_chat(&[ChatMessage::new("user", prompt)])?;
        let weights = ModelWeights::load(
            &ModelSource::Gguf(path.to_path_buf()),
            None,
            Precision::Native,
        )?;
        let dopts = DecodeOptions {
            max_tokens,
            eos: Some(tokenizer.eos),
            ..Default::default()
        };
        Ok(Self {
            tokenizer,
            prompt,
            weights,
            dopts,
        })
    }

    /// The baseline: the whole model as one in-process shard, after a short warm-up
    /// (page in weights, spin up thread pools). Returns the output and its tok/s.
    pub fn single_process(
        &self,
        hash: neuroshard_primitives::Hash,
    ) -> anyhow::Result<(Decoded, f64)> {
        let single = local_route(&self.weights, hash, &[], Duration::ZERO)?;
        let warm_up = DecodeOptions {
            max_tokens: 8,
            ..self.dopts.clone()
        };
        timed(
            &mut client_for(&single, hash, [0; 16])?,
            &self.prompt,
            &warm_up,
            None,
        )?;
        timed(
            &mut client_for(&single, hash, [1; 16])?,
            &self.prompt,
            &self.dopts,
            None,
        )
    }
}

/// The benchmark model: `model_path` or the chain's model (fetched into `cache_dir` if
/// needed), which must be a GGUF file (it carries the tokenizer). Returns the source, its
/// hash and the file.
pub fn resolve_gguf(
    model_path: Option<&PathBuf>,
    cache_dir: Option<&PathBuf>,
    print: bool,
) -> anyhow::Result<(ModelSource, neuroshard_primitives::Hash, PathBuf)> {
    let (source, hash) = resolve_model(model_path, cache_dir, print)?;
    let ModelSource::Gguf(path) = &source else {
        anyhow::bail!("the benchmark needs a GGUF model (it carries the tokenizer)");
    };
    let path = path.clone();
    Ok((source, hash, path))
}

/// Runs the inference benchmark on the real model (fetched if needed) and prints it.
pub fn bench_inference(opts: BenchOptions) -> anyhow::Result<BenchReport> {
    let (source, hash, path) = resolve_gguf(
        opts.model_path.as_ref(),
        opts.cache_dir.as_ref(),
        opts.print,
    )?;
    let path = &path;
    let say = |s: &str| {
        if opts.print {
            eprintln!("bench: {s}");
        }
    };
    let model = BenchModel::load(path, &opts.prompt, opts.max_tokens)?;
    say("single process");
    let (plain, single_tps) = model.single_process(hash)?;
    let BenchModel {
        prompt,
        weights,
        dopts,
        ..
    } = model;
    say("candle-transformers quantized_llama");
    let (candle_tps, candle_tokens) = candle_decode(path, &prompt, opts.max_tokens)?;
    let llama_cpp = match crate::llamacpp::available() {
        Err(why) => Err(why),
        Ok(()) => {
            say("llama.cpp through llama-cpp-python");
            crate::llamacpp::compare(
                path,
                &weights,
                &prompt,
                &plain.tokens,
                opts.max_tokens,
                rayon::current_num_threads(),
            )
            .map_err(|e| format!("llama-cpp-python failed: {e:#}"))
        }
    };
    say("in-process pipeline");
    let multi = local_route(&weights, hash, &opts.shards, Duration::ZERO)?;
    let mut multi_client = client_for(&multi, hash, [2; 16])?;
    let (piped, pipeline_tps) = timed(&mut multi_client, &prompt, &dopts, None)?;
    if piped.tokens != plain.tokens {
        anyhow::bail!("the pipeline's output differs from single-process output");
    }
    let records = record_local_work(&multi, &multi_client, piped.accepted_positions as u32)?;
    let commitment_bytes_per_32 = records
        .iter()
        .map(|r| {
            (r.commitment.encode().len() - 10) as f64 * 32.0
                / r.commitment.positions.len().max(1) as f64
        })
        .sum::<f64>()
        / records.len().max(1) as f64;

    let mut speculative = Vec::new();
    let slow = local_route(&weights, hash, &opts.shards, opts.hop_latency)?;
    say("plain decoding under injected latency");
    let (slow_plain, slow_plain_tps) = timed(
        &mut client_for(&slow, hash, [3; 16])?,
        &prompt,
        &dopts,
        None,
    )?;
    say("n-gram speculative decoding under injected latency");
    let mut ngram = NgramDrafter::default();
    let (spec, spec_tps) = timed(
        &mut client_for(&slow, hash, [4; 16])?,
        &prompt,
        &dopts,
        Some(&mut ngram),
    )?;
    speculative.push(SpeculativeRow {
        drafter: "ngram".into(),
        target: "q4_1".into(),
        plain_tps: slow_plain_tps,
        speculative_tps: spec_tps,
        speedup: spec_tps / slow_plain_tps.max(1e-9),
        acceptance_rate: spec.stats.acceptance_rate(),
        tokens_per_round: spec.stats.tokens_per_round(),
        same_output: spec.tokens == slow_plain.tokens,
    });
    if opts.model_drafter {
        say("f32 target, plain, under injected latency");
        let target = ModelWeights::load(&source, None, Precision::F32)?;
        let slow32 = local_route(&target, hash, &opts.shards, opts.hop_latency)?;
        let (plain32, plain32_tps) = timed(
            &mut client_for(&slow32, hash, [5; 16])?,
            &prompt,
            &dopts,
            None,
        )?;
        say("f32 target, q4_1 model drafter, under injected latency");
        let mut drafter = ModelDrafter::new(weights.clone())?;
        let (spec32, spec32_tps) = timed(
            &mut client_for(&slow32, hash, [6; 16])?,
            &prompt,
            &dopts,
            Some(&mut drafter),
        )?;
        speculative.push(SpeculativeRow {
            drafter: "model".into(),
            target: "f32".into(),
            plain_tps: plain32_tps,
            speculative_tps: spec32_tps,
            speedup: spec32_tps / plain32_tps.max(1e-9),
            acceptance_rate: spec32.stats.acceptance_rate(),
            tokens_per_round: spec32.stats.tokens_per_round(),
            same_output: spec32.tokens == plain32.tokens,
        });
    }
    let report = BenchReport {
        tokens: plain.tokens.len(),
        single_tps,
        candle_tps,
        pipeline_tps,
        pipeline_ratio: pipeline_tps / single_tps.max(1e-9),
        hops: opts.shards.len(),
        hop_latency_ms: opts.hop_latency.as_millis() as u64,
        speculative,
        commitment_bytes_per_32,
        llama_cpp,
        candle_tokens,
    };
    if opts.print {
        println!("{report}");
    }
    Ok(report)
}
