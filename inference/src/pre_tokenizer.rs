//! Byte-level BPE pre-tokenizers by the GGUF's `tokenizer.ggml.pre`, as llama.cpp maps
//! the names (llama-vocab.cpp) and as the families' `tokenizer.json` files declare them:
//! the text is split by the family's regular expression (llama.cpp's comments keep the
//! original expressions; `tokenizers`' Oniguruma runs them as written), then mapped to
//! GPT-2's byte alphabet. Two flags come with the name: `ignore_merges` (a piece that is
//! itself in the vocabulary is one token, merges or not: Llama 3, Tekken) and whether a
//! BOS token starts a prompt by default (`tokenizer.ggml.add_bos_token` overrides it).
//!
//! An unknown or missing name is an error listing the supported ones, rather than a
//! guess that would tokenize differently from the model's training.

use crate::error::{InferenceError, Result};
use std::path::Path;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::split::{Split, SplitPattern};
use tokenizers::{PreTokenizerWrapper, SplitDelimiterBehavior};

/// Llama 3's expression (also Falcon 3, Pixtral's Llama-style files).
const LLAMA3: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Qwen2's (Qwen2.5, Qwen3, DeepSeek-R1 distills of Qwen): single digits.
const QWEN2: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// Mistral's Tekken (Nemo, Small 3.x, Ministral): words split at case changes.
const TEKKEN: &str = r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// The `tokenizer.ggml.pre` values this engine builds.
pub const SUPPORTED: &[&str] = &[
    "smollm",
    "gpt-2",
    "llama3",
    "llama-v3",
    "llama-bpe",
    "qwen2",
    "deepseek-r1-qwen",
    "tekken",
];

/// A family's pre-tokenization and the flags that come with it.
pub struct PreTokenization {
    pub pre_tokenizer: PreTokenizerWrapper,
    pub ignore_merges: bool,
    /// Whether prompts start with BOS unless the file says otherwise.
    pub add_bos: bool,
}

fn split_then_bytes(pattern: &str) -> Result<PreTokenizerWrapper> {
    let split = Split::new(
        SplitPattern::Regex(pattern.into()),
        SplitDelimiterBehavior::Isolated,
        false,
    )
    .map_err(|e| InferenceError::Tokenizer(e.to_string()))?;
    Ok(PreTokenizerWrapper::Sequence(Sequence::new(vec![
        PreTokenizerWrapper::Split(split),
        PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, false)),
    ])))
}

/// GPT-2's expression, built into `ByteLevel`.
fn gpt2_bytes() -> PreTokenizerWrapper {
    PreTokenizerWrapper::ByteLevel(ByteLevel::new(false, true, true))
}

/// The pre-tokenization named `pre` (from the file `path`).
pub fn for_name(pre: &str, path: &Path) -> Result<PreTokenization> {
    let plain = |pre_tokenizer| PreTokenization {
        pre_tokenizer,
        ignore_merges: false,
        add_bos: false,
    };
    let llama_like = |pattern| -> Result<PreTokenization> {
        Ok(PreTokenization {
            pre_tokenizer: split_then_bytes(pattern)?,
            ignore_merges: true,
            add_bos: true,
        })
    };
    Ok(match pre {
        "smollm" => plain(PreTokenizerWrapper::Sequence(Sequence::new(vec![
            PreTokenizerWrapper::Digits(Digits::new(true)),
            gpt2_bytes(),
        ]))),
        "gpt-2" => plain(gpt2_bytes()),
        "llama3" | "llama-v3" | "llama-bpe" => llama_like(LLAMA3)?,
        "qwen2" | "deepseek-r1-qwen" => plain(split_then_bytes(QWEN2)?),
        "tekken" => llama_like(TEKKEN)?,
        other => {
            return Err(InferenceError::bad_file(
                path,
                format!(
                    "pre-tokenizer {other:?} (tokenizer.ggml.pre) is not supported \
                     (supported: {})",
                    SUPPORTED.join(", ")
                ),
            ))
        }
    })
}
