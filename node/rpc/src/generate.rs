//! `neuroshard_generate`: text generation over JSON-RPC, served by the same generator
//! as the HTTP API (this node's shards, with n-gram speculative decoding unless the
//! caller asks for none). The answer carries the text, the token counts and the
//! receipts that bill the work (one per shard, signed by the worker and counter-signed
//! by the client, submitted to the chain in one `submit_receipts` extrinsic).

use crate::error::{internal, invalid_params};
use crate::http::Metrics;
use jsonrpsee::core::RpcResult;
use jsonrpsee::proc_macros::rpc;
use jsonrpsee::types::ErrorObjectOwned;
use neuroshard_client::hex_hash;
use neuroshard_primitives::{crypto, Receipt};
use neuroshard_serving::admission::{Demand, GenerationAdmission};
use neuroshard_serving::generator::{GenerationOutput, GenerationRequest, SharedGenerator};
use parity_scale_codec::Encode;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Instant;

/// Default and largest `max_tokens`.
pub const DEFAULT_MAX_TOKENS: u32 = 64;
pub const MAX_TOKENS_LIMIT: u32 = neuroshard_serving::generator::MAX_TOKENS_LIMIT;

/// JSON-RPC error code: this node cannot generate now (not serving, still loading, or
/// the model failed to load); the message says which.
pub const NOT_SERVING: i32 = 1020;
/// JSON-RPC error code: the node runs its maximum of generations; retry later.
pub const BUSY: i32 = 1021;

/// What `neuroshard_generate` returns.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct GenerateJson {
    pub model: String,
    pub text: String,
    /// Tokens generated.
    pub tokens: u32,
    /// "stop" (end of text) or "length" (max_tokens reached).
    pub finish_reason: String,
    pub usage: UsageJson,
    /// Speculative decoding: the drafter used and its proposals accepted.
    pub draft: DraftJson,
    /// Hash of the `submit_receipts` extrinsic, when the generation was billed.
    pub receipts_extrinsic: Option<String>,
    pub receipts: Vec<ReceiptJson>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct UsageJson {
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub total_tokens: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct DraftJson {
    pub mode: String,
    pub drafted: u32,
    pub accepted: u32,
}

/// One receipt: its fields, and the whole signed receipt SCALE-encoded.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptJson {
    pub worker: String,
    pub client: String,
    pub layers: String,
    pub epoch: u32,
    pub seq: u32,
    pub position_start: u32,
    pub position_end: u32,
    pub commitment: String,
    pub encoded: String,
}

impl From<&Receipt> for ReceiptJson {
    fn from(r: &Receipt) -> Self {
        let b = &r.body;
        Self {
            worker: crypto::ss58(&b.worker),
            client: crypto::ss58(&b.client),
            layers: b.layers.to_string(),
            epoch: b.epoch,
            seq: b.seq,
            position_start: b.position_start,
            position_end: b.position_end,
            commitment: hex_hash(&b.commitment),
            encoded: format!("0x{}", hex::encode(r.encode())),
        }
    }
}

#[rpc(server)]
pub trait GenerateApi {
    /// Generates up to `max_tokens` (default 64) after `prompt`, which goes through the
    /// chat template as a user message unless `raw`. `draft` is "ngram" (default) or
    /// "none"; `temperature` 0 (default) is greedy.
    #[method(name = "neuroshard_generate")]
    #[allow(clippy::too_many_arguments)]
    async fn generate(
        &self,
        prompt: String,
        max_tokens: Option<u32>,
        draft: Option<String>,
        temperature: Option<f64>,
        seed: Option<u64>,
        raw: Option<bool>,
    ) -> RpcResult<GenerateJson>;
}

pub struct Generate {
    pub generator: SharedGenerator,
    pub metrics: Arc<Metrics>,
    /// Shared with the HTTP API: how many generations run at once.
    pub admission: GenerationAdmission,
}

/// Whether `draft` asks for speculative decoding.
fn parse_draft(draft: Option<&str>) -> Result<bool, ErrorObjectOwned> {
    match draft.unwrap_or("ngram") {
        "ngram" => Ok(true),
        "none" => Ok(false),
        "model" => Err(invalid_params(
            "draft \"model\" drafts with the quantized model for an f32 target; this node \
             serves the quantized model itself: use \"ngram\" or \"none\"",
        )),
        other => Err(invalid_params(format!(
            "unknown draft {other:?}: use \"ngram\" or \"none\""
        ))),
    }
}

#[jsonrpsee::core::async_trait]
impl GenerateApiServer for Generate {
    async fn generate(
        &self,
        prompt: String,
        max_tokens: Option<u32>,
        draft: Option<String>,
        temperature: Option<f64>,
        seed: Option<u64>,
        raw: Option<bool>,
    ) -> RpcResult<GenerateJson> {
        let max_tokens = max_tokens.unwrap_or(DEFAULT_MAX_TOKENS);
        if !(1..=MAX_TOKENS_LIMIT).contains(&max_tokens) {
            return Err(invalid_params(format!(
                "max_tokens must be from 1 to {MAX_TOKENS_LIMIT}, got {max_tokens}"
            )));
        }
        let temperature = temperature.unwrap_or(0.0);
        if !(0.0..=2.0).contains(&temperature) {
            return Err(invalid_params(format!(
                "temperature must be from 0 to 2, got {temperature}"
            )));
        }
        if prompt.trim().is_empty() {
            return Err(invalid_params("prompt must not be empty"));
        }
        let speculative = parse_draft(draft.as_deref())?;
        let gen = self
            .generator
            .read()
            .await
            .ready()
            .map_err(|why| ErrorObjectOwned::owned(NOT_SERVING, why, None::<()>))?;
        let prompt = if raw.unwrap_or(false) {
            prompt
        } else {
            let message = neuroshard_serving::generator::ChatMessage {
                role: "user".into(),
                content: prompt,
            };
            gen.render_chat(&[message])
                .map_err(|e| invalid_params(e.to_string()))?
        };
        let request = GenerationRequest {
            prompt,
            max_tokens,
            temperature: temperature as f32,
            seed: seed.unwrap_or(0),
            stop: Vec::new(),
            speculative,
            payer: None,
        };
        let metrics = self.metrics.clone();
        let model = gen.model_id();
        let tokens = gen
            .prompt_tokens(&request.prompt)
            .map_err(|e| invalid_params(format!("{e:#}")))?
            .saturating_add(u64::from(request.max_tokens));
        let demand = Demand {
            tokens,
            kv_bytes: tokens.saturating_mul(gen.kv_bytes_per_position()),
        };
        let permit = self.admission.try_admit(None, demand).map_err(|why| {
            self.metrics.record_refused();
            ErrorObjectOwned::owned(BUSY, why.to_string(), None::<()>)
        })?;
        let out = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let started = Instant::now();
            let out = gen.generate(&request, &mut |_| true)?;
            metrics.record_generation(out.completion_tokens, started.elapsed());
            anyhow::Ok(out)
        })
        .await
        .map_err(|e| internal(format!("generation panicked: {e}")))?
        .map_err(|e| internal(format!("generation failed: {e:#}")))?;
        Ok(to_json(model, out, speculative))
    }
}

fn to_json(model: String, out: GenerationOutput, speculative: bool) -> GenerateJson {
    let (receipts_extrinsic, receipts) = match &out.billing {
        Some(b) => (
            Some(hex_hash(&b.extrinsic)),
            b.receipts.iter().map(ReceiptJson::from).collect(),
        ),
        None => (None, Vec::new()),
    };
    GenerateJson {
        model,
        tokens: out.completion_tokens,
        finish_reason: out.finish_reason.as_str().into(),
        usage: UsageJson {
            prompt_tokens: out.prompt_tokens,
            completion_tokens: out.completion_tokens,
            total_tokens: out.prompt_tokens + out.completion_tokens,
        },
        draft: DraftJson {
            mode: if speculative { "ngram" } else { "none" }.into(),
            drafted: out.drafted,
            accepted: out.accepted_drafts,
        },
        receipts_extrinsic,
        receipts,
        text: out.text,
    }
}
