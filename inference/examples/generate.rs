//! Generates text locally:
//! `cargo run --release -p neuroshard-inference --example generate -- "PROMPT" [ngram|model|none] [MAX_TOKENS]`.

use neuroshard_inference::{generate, GenerateOptions};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let prompt = args
        .next()
        .unwrap_or_else(|| "What is the capital of France?".into());
    let draft = args
        .next()
        .unwrap_or_else(|| "ngram".into())
        .parse()
        .map_err(anyhow::Error::msg)?;
    let max_tokens = args.next().map(|s| s.parse()).transpose()?.unwrap_or(64);
    generate(GenerateOptions {
        prompt,
        draft,
        max_tokens,
        ..Default::default()
    })?;
    Ok(())
}
