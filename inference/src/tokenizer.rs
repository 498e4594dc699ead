//! The tokenizer, rebuilt from the GGUF's own metadata (`tokenizer.ggml.tokens`,
//! `.merges`, `.token_type`, `.pre`, `.add_bos_token`): a byte-level BPE with the
//! family's pre-tokenizer (see [`crate::pre_tokenizer`]; SmolLM2's splits single digits,
//! then GPT-2 byte-level), control tokens such as `<|im_start|>` as special tokens, and the file's chat template (`tokenizer.chat_template`, see
//! [`crate::chat_template`]; files without one get ChatML with SmolLM2's default system
//! prompt).

use crate::chat_template::ChatTemplate;
use crate::error::{InferenceError, Result};
use crate::pre_tokenizer;
use candle_core::quantized::gguf_file::{self, Value};
use std::path::Path;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::BPE;
use tokenizers::AddedToken;

/// The system prompt SmolLM2's template inserts when a chat has none.
pub const DEFAULT_SYSTEM: &str =
    "You are a helpful AI assistant named SmolLM, trained by Hugging Face";

pub use crate::chat_template::ChatMessage;

/// A model's tokenizer.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
    pub bos: u32,
    pub eos: u32,
    /// Whether a prompt starts with BOS (`tokenizer.ggml.add_bos_token`, else the
    /// pre-tokenizer's default, as llama.cpp decides).
    pub add_bos: bool,
    vocab_size: usize,
    /// The file's chat template, if it has one.
    chat_template: Option<ChatTemplate>,
}

fn strings(ct: &gguf_file::Content, key: &str, path: &Path) -> Result<Vec<String>> {
    match ct.metadata.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| {
                v.to_string()
                    .cloned()
                    .map_err(|e| InferenceError::bad_file(path, format!("{key}: {e}")))
            })
            .collect(),
        _ => Err(InferenceError::bad_file(
            path,
            format!("metadata {key} missing"),
        )),
    }
}

/// The BPE model of the file's vocabulary and merges.
fn bpe(
    ct: &gguf_file::Content,
    path: &Path,
    tokens: &[String],
    ignore_merges: bool,
) -> Result<BPE> {
    let merges: Vec<(String, String)> = strings(ct, "tokenizer.ggml.merges", path)?
        .into_iter()
        .map(|m| {
            m.split_once(' ')
                .map(|(a, b)| (a.to_string(), b.to_string()))
                .ok_or_else(|| InferenceError::bad_file(path, format!("bad merge {m:?}")))
        })
        .collect::<Result<_>>()?;
    let vocab: tokenizers::models::bpe::Vocab = tokens
        .iter()
        .enumerate()
        .map(|(i, t)| (t.clone(), i as u32))
        .collect();
    BPE::builder()
        .vocab_and_merges(vocab, merges)
        .ignore_merges(ignore_merges)
        .build()
        .map_err(|e| InferenceError::bad_file(path, format!("tokenizer: {e}")))
}

impl Tokenizer {
    /// Builds the tokenizer of a GGUF file.
    pub fn from_gguf_file(path: &Path) -> Result<Self> {
        let (ct, _) = crate::weights::read_gguf_header(path)?;
        Self::from_gguf(&ct, path)
    }

    /// Builds the tokenizer from parsed GGUF metadata (`path` is for error messages).
    pub fn from_gguf(ct: &gguf_file::Content, path: &Path) -> Result<Self> {
        let model = crate::config::md_string(ct, "tokenizer.ggml.model");
        if model != "gpt2" {
            return Err(InferenceError::bad_file(
                path,
                format!("tokenizer model {model:?} is not supported (only gpt2 byte-level BPE)"),
            ));
        }
        let pre_name = crate::config::md_string(ct, "tokenizer.ggml.pre");
        let pre = pre_tokenizer::for_name(&pre_name, path)?;
        let tokens = strings(ct, "tokenizer.ggml.tokens", path)?;
        let mut inner = tokenizers::Tokenizer::new(bpe(ct, path, &tokens, pre.ignore_merges)?);
        inner.with_pre_tokenizer(Some(pre.pre_tokenizer));
        inner.with_decoder(Some(ByteLevelDecoder::default()));
        let types: Vec<i32> = match ct.metadata.get("tokenizer.ggml.token_type") {
            Some(Value::Array(items)) => items.iter().map(|v| v.to_i32().unwrap_or(1)).collect(),
            _ => vec![1; tokens.len()],
        };
        // Control tokens (type 3) are matched as whole special tokens in the input.
        let specials: Vec<AddedToken> = tokens
            .iter()
            .zip(&types)
            .filter(|(_, &t)| t == 3)
            .map(|(tok, _)| AddedToken::from(tok.clone(), true))
            .collect();
        inner
            .add_special_tokens(specials)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
        let id = |key: &str, default: u32| crate::config::md_u32_or(ct, key, default);
        let (bos, eos) = (
            id("tokenizer.ggml.bos_token_id", 1),
            id("tokenizer.ggml.eos_token_id", 2),
        );
        let add_bos = match ct.metadata.get("tokenizer.ggml.add_bos_token") {
            Some(v) => v.to_bool().map_err(|e| {
                InferenceError::bad_file(path, format!("tokenizer.ggml.add_bos_token: {e}"))
            })?,
            None => pre.add_bos,
        };
        let text = |id: u32| tokens.get(id as usize).map_or("", String::as_str);
        let chat_template = match ct.metadata.get("tokenizer.chat_template") {
            None => None,
            Some(v) => {
                let source = v.to_string().map_err(|e| {
                    InferenceError::bad_file(path, format!("tokenizer.chat_template: {e}"))
                })?;
                Some(ChatTemplate::new(source, text(bos), text(eos), path)?)
            }
        };
        Ok(Self {
            inner,
            bos,
            eos,
            add_bos,
            vocab_size: tokens.len(),
            chat_template,
        })
    }

    pub fn vocab_size(&self) -> usize {
        self.vocab_size
    }

    /// Token ids of `text` (special tokens written in the text are recognised).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        Ok(self
            .inner
            .encode_fast(text, false)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))?
            .get_ids()
            .to_vec())
    }

    /// Token ids of a prompt: [`encode`](Self::encode), after BOS when the model wants
    /// one and the text does not already start with it (a chat template may print it).
    pub fn encode_prompt(&self, text: &str) -> Result<Vec<u32>> {
        let ids = self.encode(text)?;
        if !self.add_bos || ids.first() == Some(&self.bos) {
            return Ok(ids);
        }
        Ok(std::iter::once(self.bos).chain(ids).collect())
    }

    /// Text of `ids`; special tokens are kept unless `skip_special`.
    pub fn decode(&self, ids: &[u32], skip_special: bool) -> Result<String> {
        self.inner
            .decode(ids, skip_special)
            .map_err(|e| InferenceError::Tokenizer(e.to_string()))
    }

    /// The prompt text of `messages` by the file's chat template, ending with the
    /// assistant turn's opening so the model continues as the assistant.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String> {
        match &self.chat_template {
            Some(t) => t.render(messages, true),
            None => Ok(Self::render_chatml(messages)),
        }
    }

    /// ChatML with SmolLM2's default system prompt: the chat format of files without a
    /// template.
    pub fn render_chatml(messages: &[ChatMessage]) -> String {
        let mut out = String::new();
        if messages.first().is_none_or(|m| m.role != "system") {
            out.push_str(&format!("<|im_start|>system\n{DEFAULT_SYSTEM}<|im_end|>\n"));
        }
        for m in messages {
            out.push_str(&format!(
                "<|im_start|>{}\n{}<|im_end|>\n",
                m.role, m.content
            ));
        }
        out.push_str("<|im_start|>assistant\n");
        out
    }

    /// Token ids of a chat prompt (see [`render_chat`](Self::render_chat)).
    pub fn encode_chat(&self, messages: &[ChatMessage]) -> Result<Vec<u32>> {
        self.encode_prompt(&self.render_chat(messages)?)
    }
}
