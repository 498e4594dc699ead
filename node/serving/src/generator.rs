//! What the HTTP API and the `neuroshard_generate` RPC call to turn prompts into text:
//! the [`TextGenerator`] trait (implemented by the node's [`crate::local::LocalWorker`]
//! over its pipeline of shards), its requests and outputs, the [`Billing`] of a
//! generation, and the [`GeneratorSlot`] that says whether the node can generate yet
//! (how many generations may run at once is [`crate::admission`]'s).

use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// Most tokens one request may ask for.
pub const MAX_TOKENS_LIMIT: u32 = 4096;

/// One chat message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: String,
    pub content: String,
}

/// What to generate.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationRequest {
    /// The full prompt (chat template already applied for chat requests).
    pub prompt: String,
    pub max_tokens: u32,
    /// 0 = greedy.
    pub temperature: f32,
    pub seed: u64,
    /// Generation stops before any of these strings.
    pub stop: Vec<String>,
    /// Speculative decoding with the n-gram (prompt lookup) drafter; the output is the
    /// same either way (greedy: identical; sampled: the same distribution).
    pub speculative: bool,
    /// Whose escrow pays (its key counter-signs the receipts); `None`: the node's own.
    pub payer: Option<Payer>,
}

/// The account a generation is billed to, with the key that counter-signs its receipts
/// (an HTTP API key's account, see the node's `--api-keys`).
#[derive(Clone)]
pub struct Payer(pub Arc<neuroshard_primitives::Keypair>);

impl Payer {
    pub fn account(&self) -> neuroshard_primitives::AccountId {
        use sp_core::Pair as _;
        self.0.public().into()
    }
}

impl std::fmt::Debug for Payer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Payer({})",
            neuroshard_primitives::crypto::ss58(&self.account())
        )
    }
}

impl PartialEq for Payer {
    fn eq(&self, other: &Self) -> bool {
        self.account() == other.account()
    }
}

/// A generation refused before it started because its payer's escrow cannot pay for
/// it (the HTTP API answers 402).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PayerCannotPay(pub String);

/// Why generation ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FinishReason {
    Stop,
    Length,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
        }
    }
}

/// What was generated.
#[derive(Clone, Debug, PartialEq)]
pub struct GenerationOutput {
    pub text: String,
    pub prompt_tokens: u32,
    pub completion_tokens: u32,
    pub finish_reason: FinishReason,
    /// Draft tokens proposed and accepted (0 and 0 without speculative decoding).
    pub drafted: u32,
    pub accepted_drafts: u32,
    /// The receipts that bill this generation, when it could be billed.
    pub billing: Option<Billing>,
}

/// The receipts of one generation (one per shard, signed by worker and client) and
/// the `submit_receipts` extrinsic that carries them to the chain.
#[derive(Clone, Debug, PartialEq)]
pub struct Billing {
    pub extrinsic: neuroshard_primitives::Hash,
    pub receipts: Vec<neuroshard_primitives::Receipt>,
}

pub use neuroshard_inference::batcher::{BatchFigures, HISTOGRAM_BOUNDS};
pub use neuroshard_inference::prefix_cache::PrefixFigures;

/// Something that turns prompts into text: the local model or a pipeline of peers.
pub trait TextGenerator: Send + Sync {
    /// The model id shown by `/v1/models`.
    fn model_id(&self) -> String;
    /// Applies the model's chat template.
    fn render_chat(&self, messages: &[ChatMessage]) -> anyhow::Result<String>;
    /// Checks, before a generation of up to `max_tokens` after `prompt` starts, that
    /// `payer` can pay for it (`Err` holding [`PayerCannotPay`] when it cannot).
    fn check_payer(&self, payer: &Payer, prompt: &str, max_tokens: u32) -> anyhow::Result<()>;
    /// Generates, calling `on_text` with each new piece of text; generation stops early
    /// when `on_text` returns false (the client went away).
    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> anyhow::Result<GenerationOutput>;
    /// The continuous-batching figures of the generator's shards, summed (queue length,
    /// positions and sessions of the last step); `None` when it runs no shards.
    fn batch_figures(&self) -> Option<BatchFigures> {
        None
    }
    /// The continuous-batching figures of each of the generator's shards (its layer range
    /// and figures, in route order); empty when it runs no shards.
    fn stage_figures(&self) -> Vec<(String, BatchFigures)> {
        Vec::new()
    }
    /// Tokens of `prompt` (what a client's token rate is charged for it).
    fn prompt_tokens(&self, prompt: &str) -> anyhow::Result<u64> {
        Ok(prompt.len() as u64)
    }
    /// Bytes of KV cache one position of a generation takes in this node's shards.
    fn kv_bytes_per_position(&self) -> u64 {
        0
    }
    /// The prefix-cache figures of the generator's shards, summed; `None` when it runs no
    /// shards.
    fn prefix_figures(&self) -> Option<PrefixFigures> {
        None
    }
}

/// Whether this node can generate text, and if not, why.
#[derive(Clone)]
pub enum GeneratorSlot {
    /// The node serves no shards of the model.
    NotServing,
    /// The model is being fetched or loaded.
    Loading,
    /// Loading failed (the message says why).
    Failed(String),
    Ready(Arc<dyn TextGenerator>),
}

impl GeneratorSlot {
    /// The generator, or why this node cannot generate (a message for the user).
    pub fn ready(&self) -> Result<Arc<dyn TextGenerator>, String> {
        match self {
            GeneratorSlot::Ready(gen) => Ok(gen.clone()),
            GeneratorSlot::Loading => {
                Err("the model is still being fetched or loaded; retry in a moment".into())
            }
            GeneratorSlot::Failed(why) => Err(format!("this node could not load the model: {why}")),
            GeneratorSlot::NotServing => {
                Err("this node serves no model shards (start it with --shards and --key)".into())
            }
        }
    }
}

/// The shared, updatable [`GeneratorSlot`].
pub type SharedGenerator = Arc<tokio::sync::RwLock<GeneratorSlot>>;
