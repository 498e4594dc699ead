//! `neuroshard generate`: a local generation through an in-process pipeline of shards,
//! streamed to stdout, with speed and speculative-decoding figures on stderr; or, with
//! `--rpc URL`, the same request sent to a node's `neuroshard_generate`, whose text is
//! printed to stdout and whose usage and receipts are summarised on stderr.

use crate::cli::GenerateArgs;
use anyhow::{anyhow, Context};
use jsonrpsee::core::client::ClientT;
use jsonrpsee::core::params::ObjectParams;
use jsonrpsee::http_client::HttpClientBuilder;
use neuroshard_inference::generate::{generate, DraftMode, GenerateOptions};
use neuroshard_primitives::LayerRange;
use neuroshard_rpc::generate::GenerateJson;
use std::time::Duration;

/// How long a remote generation may take.
const RPC_TIMEOUT: Duration = Duration::from_secs(600);

pub async fn run(args: GenerateArgs) -> anyhow::Result<()> {
    if let Some(url) = args.rpc.clone() {
        return remote(&url, args).await;
    }
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

/// `neuroshard_generate` on the node at `url`.
async fn remote(url: &str, args: GenerateArgs) -> anyhow::Result<()> {
    let client = HttpClientBuilder::default()
        .request_timeout(RPC_TIMEOUT)
        .build(url)
        .with_context(|| format!("bad RPC URL {url:?}"))?;
    let mut params = ObjectParams::new();
    params.insert("prompt", &args.prompt)?;
    params.insert("max_tokens", args.max_tokens)?;
    params.insert("draft", &args.draft)?;
    params.insert("temperature", args.temperature)?;
    params.insert("seed", args.seed)?;
    params.insert("raw", args.raw)?;
    let out: GenerateJson = client
        .request("neuroshard_generate", params)
        .await
        .map_err(|e| match e {
            jsonrpsee::core::ClientError::Call(error) => {
                anyhow!("neuroshard_generate at {url}: {}", error.message())
            }
            other => anyhow!("neuroshard_generate at {url}: {other}"),
        })?;
    println!("{}", out.text);
    eprintln!(
        "{} tokens ({}; prompt {} tokens), draft {}: {}/{} accepted",
        out.tokens,
        out.finish_reason,
        out.usage.prompt_tokens,
        out.draft.mode,
        out.draft.accepted,
        out.draft.drafted
    );
    match &out.receipts_extrinsic {
        Some(hash) => {
            eprintln!("{} receipts submitted in {hash}:", out.receipts.len());
            for r in &out.receipts {
                eprintln!(
                    "  layers {} positions {}..{} worker {}",
                    r.layers, r.position_start, r.position_end, r.worker
                );
            }
        }
        None => eprintln!("not billed (no receipts)"),
    }
    Ok(())
}
