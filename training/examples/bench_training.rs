//! Proof-of-Training bench: in-process holders of one shard train a LoRA adapter for a
//! few DiLoCo rounds; prints time per round, bytes synchronised per round (against the
//! per-step data-parallel baseline) and the held-out loss after every round.
//!
//! cargo run -p neuroshard-training --example bench_training -- tiny
//! cargo run -p neuroshard-training --example bench_training -- smollm2 [ROUNDS] [START-END]

use neuroshard_inference::fetch::{default_cache_dir, ensure_model, smollm2_135m_q4_1};
use neuroshard_inference::tokenizer::Tokenizer;
use neuroshard_inference::{ModelSource, ModelWeights, Precision};
use neuroshard_primitives::{blake2_256, Hash, LayerRange};
use neuroshard_training::corpus::byte_tokens;
use neuroshard_training::{
    bench_training, InnerConfig, LoraConfig, TrainerConfig, TrainingBenchOptions, TrainingError,
};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let which = args.first().map(String::as_str).unwrap_or("tiny");
    let rounds: usize = args.get(1).map(|s| s.parse()).transpose()?.unwrap_or(4);
    let (weights, hash, tokenizer, shard, inner, seq, windows) = match which {
        "smollm2" => {
            let spec = smollm2_135m_q4_1();
            let path = ensure_model(&spec, &default_cache_dir(), true)?;
            let weights =
                ModelWeights::load(&ModelSource::Gguf(path.clone()), None, Precision::Native)?;
            let tok = Tokenizer::from_gguf_file(&path)?;
            let shard = LayerRange::parse(args.get(2).map(String::as_str).unwrap_or("26-30"))?;
            let inner = InnerConfig {
                steps: 4,
                batch: 2,
                lr: 1e-3,
                weight_decay: 0.0,
            };
            let hash = Hash::from_slice(&hex_decode(&spec.blake2b_256));
            (weights, hash, Some(tok), shard, inner, 64, 12)
        }
        _ => {
            let dir = tempfile_dir()?;
            neuroshard_inference::tiny::write_tiny_llama(&dir, 7)?;
            let weights = ModelWeights::load(
                &ModelSource::Safetensors(dir.clone()),
                None,
                Precision::Native,
            )?;
            std::fs::remove_dir_all(&dir)?;
            let inner = InnerConfig {
                steps: 6,
                batch: 4,
                lr: 1e-2,
                weight_decay: 0.0,
            };
            (
                weights,
                blake2_256(b"tiny"),
                None,
                LayerRange::new(2, 4)?,
                inner,
                32,
                64,
            )
        }
    };
    let tokenize = |text: &str| -> Result<Vec<u32>, TrainingError> {
        match &tokenizer {
            Some(t) => Ok(t.encode(text)?),
            None => Ok(byte_tokens(text)),
        }
    };
    let options = TrainingBenchOptions {
        holders: 3,
        rounds,
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
        "model {which}, shard {shard}, {} holders, {rounds} rounds, H = {} inner steps of {} x {seq} tokens",
        options.holders, options.config.inner.steps, options.config.inner.batch
    );
    let report = bench_training(&weights, hash, &tokenize, &options)?;
    for line in report.lines() {
        println!("{line}");
    }
    Ok(())
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).ok())
        .collect()
}

fn tempfile_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("neuroshard-bench-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
