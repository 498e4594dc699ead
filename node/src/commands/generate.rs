//! `neuroshard generate`: a local generation through an in-process pipeline of shards,
//! streamed to stdout, with speed and speculative-decoding figures on stderr.

use crate::cli::GenerateArgs;
use anyhow::Context;
use neuroshard_inference::generate::{generate, DraftMode, GenerateOptions};
use neuroshard_primitives::LayerRange;

pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    let draft: DraftMode = args
        .draft
        .parse()
        .map_err(anyhow::Error::msg)
        .context("--draft")?;
    let shards = match args.shards.as_deref() {
        Some(text) => LayerRange::parse_list(text).with_context(|| format!("--shards {text:?}"))?,
        None => Vec::new(),
    };
    let opts = GenerateOptions {
        prompt: args.prompt,
        chat: !args.raw,
        max_tokens: args.max_tokens,
        draft,
        temperature: args.temperature,
        seed: args.seed,
        model_path: args.model,
        shards,
        print: true,
        ..GenerateOptions::default()
    };
    tokio::task::spawn_blocking(move || generate(opts)).await??;
    Ok(())
}
