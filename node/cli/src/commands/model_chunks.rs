//! `neuroshard model-chunks`: what a chain spec states about a model file, for whoever
//! writes a chain spec for another model: its blake2b-256 hash, its layer count, and each
//! layer's chunk root and chunk count (`ponw.model.layer_chunks`), as JSON.

use crate::cli::ModelChunksArgs;
use anyhow::Context;
use neuroshard_inference::fetch::hash_file;
use neuroshard_inference::models::config_from_gguf;
use neuroshard_inference::models::parts::GgufParts;
use neuroshard_serving::possession::layer_chunks;

pub fn run(args: ModelChunksArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.chunk_size > 0, "--chunk-size must be positive");
    let parts = GgufParts::open(&args.model)
        .with_context(|| format!("reading {}", args.model.display()))?;
    let num_layers = config_from_gguf(parts.metadata(), &args.model)?.num_layers;
    let digest = hash_file(&args.model, true)?;
    let chunks = layer_chunks(&args.model, num_layers, args.chunk_size)?;
    let out = serde_json::json!({
        "hash": format!("0x{}", hex::encode(digest.blake2b_256)),
        "num_layers": num_layers,
        "layer_chunks": chunks,
        "chunk_size": args.chunk_size,
    });
    println!("{}", serde_json::to_string_pretty(&out)?);
    Ok(())
}
