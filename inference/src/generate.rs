//! The library entry point behind `neuroshard generate`: resolve (fetch if needed) the
//! model, build an in-process route of shards, tokenize the prompt (chat template
//! optional), decode plainly or speculatively, stream the text, and report speed.

use crate::decode::{decode, DecodeOptions, DecodeStats};
use crate::drafter::{Drafter, ModelDrafter, NgramDrafter};
use crate::error::{InferenceError, Result};
use crate::fetch::{default_cache_dir, ensure_model, hash_file, smollm2_135m_q4_1};
use crate::messages::{RecordedWork, WorkRequest};
use crate::pipeline::{Hop, PipelineClient};
use crate::shard::Shard;
use crate::tokenizer::{ChatMessage, Tokenizer};
use crate::transport::{InProcessTransport, ShardTransport};
use crate::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_primitives::{Hash, LayerRange};
use std::io::Write;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Which drafter speculative decoding uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DraftMode {
    /// Plain decoding.
    None,
    /// Prompt-lookup n-gram drafting.
    Ngram,
    /// The quantized model drafting for a dequantized (f32) target.
    Model,
}

impl FromStr for DraftMode {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "none" => Ok(Self::None),
            "ngram" => Ok(Self::Ngram),
            "model" => Ok(Self::Model),
            other => Err(format!("unknown draft mode {other:?} (ngram|model|none)")),
        }
    }
}

/// Options of [`generate`].
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    pub prompt: String,
    /// Wrap the prompt in the model's chat template as a user message.
    pub chat: bool,
    pub max_tokens: usize,
    pub draft: DraftMode,
    /// 0 = greedy.
    pub temperature: f64,
    pub seed: u64,
    /// A GGUF file or a safetensors directory; `None` = the default model from the cache.
    pub model_path: Option<PathBuf>,
    /// Model cache directory; `None` = [`default_cache_dir`].
    pub cache_dir: Option<PathBuf>,
    /// Layer ranges of the in-process pipeline; empty = one shard with every layer.
    pub shards: Vec<LayerRange>,
    /// Print progress and stream the text to stdout.
    pub print: bool,
}

impl Default for GenerateOptions {
    fn default() -> Self {
        Self {
            prompt: String::new(),
            chat: true,
            max_tokens: 64,
            draft: DraftMode::Ngram,
            temperature: 0.0,
            seed: 0,
            model_path: None,
            cache_dir: None,
            shards: Vec::new(),
            print: true,
        }
    }
}

/// What [`generate`] produced.
#[derive(Clone, Debug)]
pub struct GenerateOutput {
    pub text: String,
    pub tokens: Vec<u32>,
    pub prompt_tokens: usize,
    pub stats: DecodeStats,
    pub elapsed: Duration,
    pub tokens_per_second: f64,
    pub model_hash: Hash,
}

/// Resolves the model to load and its hash: the given path (hashed here), or the default
/// model, fetched into the cache and verified if needed.
pub fn resolve_model(
    model_path: Option<&PathBuf>,
    cache_dir: Option<&PathBuf>,
    print: bool,
) -> Result<(ModelSource, Hash)> {
    match model_path {
        Some(path) => {
            let source = ModelSource::from_path(path.clone());
            let digest = hash_file(&source.weights_file(), print)?;
            Ok((source, Hash::from(digest.blake2b_256)))
        }
        None => {
            let dir = cache_dir.cloned().unwrap_or_else(default_cache_dir);
            std::fs::create_dir_all(&dir).map_err(|e| InferenceError::io(&dir, e))?;
            let path = ensure_model(&smollm2_135m_q4_1(), &dir, print)?;
            let mut hash = [0u8; 32];
            hex::decode_to_slice(smollm2_135m_q4_1().blake2b_256, &mut hash)
                .map_err(|e| InferenceError::Fetch(e.to_string()))?;
            Ok((ModelSource::Gguf(path), Hash::from(hash)))
        }
    }
}

/// In-process shards for `ranges` of `weights` (all layers when empty), each behind an
/// [`InProcessTransport`] adding `latency` per call.
pub fn local_route(
    weights: &ModelWeights,
    hash: Hash,
    ranges: &[LayerRange],
    latency: Duration,
) -> Result<Vec<Arc<InProcessTransport>>> {
    let all = [LayerRange {
        start: 0,
        end: weights.config.num_layers as u16,
    }];
    let ranges = if ranges.is_empty() { &all[..] } else { ranges };
    ranges
        .iter()
        .map(|r| {
            let shard = Shard::new(weights.slice(r.start as usize..r.end as usize)?, hash)?;
            Ok(Arc::new(
                InProcessTransport::new(Arc::new(shard)).with_latency(latency),
            ))
        })
        .collect()
}

/// A pipeline client over `transports`, one provider per hop.
pub fn client_for(
    transports: &[Arc<InProcessTransport>],
    hash: Hash,
    session: [u8; 16],
) -> Result<PipelineClient> {
    let hops = transports
        .iter()
        .map(|t| Hop::new(vec![t.clone() as Arc<dyn ShardTransport>]))
        .collect();
    PipelineClient::new(hash, session, hops)
}

/// The work records of in-process `transports` (one per hop, as [`client_for`] routes
/// them) for `client`'s session up to `until`, each checked against what its hop was
/// sent (as a billing client checks a record before it counter-signs).
pub fn record_local_work(
    transports: &[Arc<InProcessTransport>],
    client: &PipelineClient,
    until: u32,
) -> Result<Vec<RecordedWork>> {
    client
        .served(until)
        .iter()
        .zip(transports)
        .map(|(served, t)| {
            let req = WorkRequest {
                session: served.session,
                until,
            };
            let recorded = t.record_work(&req)?;
            served.check(&recorded.record)?;
            Ok(recorded)
        })
        .collect()
}

/// Runs a generation locally. Prints progress and streams the text when `opts.print`.
pub fn generate(opts: GenerateOptions) -> anyhow::Result<GenerateOutput> {
    let (source, hash) = resolve_model(
        opts.model_path.as_ref(),
        opts.cache_dir.as_ref(),
        opts.print,
    )?;
    let tokenizer = match &source {
        ModelSource::Gguf(p) => Tokenizer::from_gguf_file(p)?,
        ModelSource::Safetensors(d) => anyhow::bail!(
            "{}: text generation needs a GGUF model (it carries the tokenizer)",
            d.display()
        ),
    };
    if opts.print {
        eprintln!("loading model {} ...", source.weights_file().display());
    }
    let precision = if opts.draft == DraftMode::Model {
        Precision::F32
    } else {
        Precision::Native
    };
    let weights = ModelWeights::load(&source, None, precision)?;
    let mut drafter: Option<Box<dyn Drafter>> = match opts.draft {
        DraftMode::None => None,
        DraftMode::Ngram => Some(Box::new(NgramDrafter::default())),
        DraftMode::Model => Some(Box::new(ModelDrafter::new(ModelWeights::load(
            &source,
            None,
            Precision::Native,
        )?)?)),
    };
    let transports = local_route(&weights, hash, &opts.shards, Duration::ZERO)?;
    let mut client = client_for(&transports, hash, rand::random())?;
    let prompt = if opts.chat {
        tokenizer.encode_chat(&[ChatMessage::new("user", &opts.prompt)])?
    } else {
        tokenizer.encode_prompt(&opts.prompt)?
    };
    let dopts = DecodeOptions {
        max_tokens: opts.max_tokens,
        temperature: opts.temperature,
        seed: opts.seed,
        eos: Some(tokenizer.eos),
        ..Default::default()
    };
    let mut produced: Vec<u32> = Vec::new();
    let mut printed = 0usize;
    let print = opts.print;
    let start = Instant::now();
    let decoded = decode(
        &mut client,
        &prompt,
        &dopts,
        drafter.as_deref_mut(),
        &mut |t| {
            produced.push(t);
            if print {
                if let Ok(text) = tokenizer.decode(&produced, true) {
                    // Print only whole characters (a multi-byte char may span tokens).
                    if text.len() > printed && !text.ends_with('\u{FFFD}') {
                        print!("{}", &text[printed..]);
                        let _ = std::io::stdout().flush();
                        printed = text.len();
                    }
                }
            }
        },
    )?;
    let elapsed = start.elapsed();
    client.close();
    let text = tokenizer.decode(&decoded.tokens, true)?;
    let tps = decoded.tokens.len() as f64 / elapsed.as_secs_f64().max(1e-9);
    if print {
        if text.len() > printed {
            print!("{}", &text[printed..]);
        }
        println!();
        eprintln!(
            "{} tokens in {:.2}s ({tps:.1} tok/s), {} rounds, acceptance {:.0}%",
            decoded.tokens.len(),
            elapsed.as_secs_f64(),
            decoded.stats.rounds,
            decoded.stats.acceptance_rate() * 100.0
        );
    }
    Ok(GenerateOutput {
        text,
        tokens: decoded.tokens,
        prompt_tokens: prompt.len(),
        stats: decoded.stats,
        elapsed,
        tokens_per_second: tps,
        model_hash: hash,
    })
}
