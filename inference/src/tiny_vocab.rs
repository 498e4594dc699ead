//! A synthetic byte-level BPE vocabulary for tokenizer tests: the real vocabularies of
//! the families cannot be fetched here, so tests train a small one (GPT-2's byte
//! alphabet, then `MERGES` merges learned deterministically from a fixed corpus, then a
//! few control tokens) and write it into a tensor-free `llama` GGUF with a chosen
//! `tokenizer.ggml.pre`. `scripts/make-tokenizer-fixtures.py` records llama.cpp's
//! tokenization of such files; `tests/tokenizer_pre.rs` compares ours.

use crate::error::Result;
use crate::tiny_gguf::{metadata, tiny_family, write_file};
use candle_core::quantized::gguf_file::Value;
use std::collections::BTreeMap;
use std::path::Path;

/// One `tokenizer.ggml.pre` of each pre-tokenizer kind (the others are aliases).
pub const TEST_PRES: [&str; 5] = ["smollm", "gpt-2", "llama-bpe", "qwen2", "tekken"];

/// Merges learned from the corpus.
pub const MERGES: usize = 300;

/// Control tokens appended after the merged ones (`bos`, `eos`, chat markers).
pub const SPECIALS: [&str; 4] = [
    "<|begin_of_text|>",
    "<|end_of_text|>",
    "<|im_start|>",
    "<|im_end|>",
];

const CORPUS: &str = "The quick brown fox jumps over the lazy dog. I'm sure they'll say \
    it's fine, DON'T worry: we've done this 1234 times since 2024! HelloWorld and camelCase \
    identifiers, snake_case too; fn main() { let x = 42; x += 1; } The the THE theory of \
    everything. Numbers: 3.14159, 1,000,000 and 99 bottles. Quoted \"words\" and \
    (parentheses) [brackets] {braces} <angles>. Café, naïve, résumé, 日本語, 中文, emoji 🚀.\n\
    New lines\n\nand\ttabs   and   spaces.";

/// GPT-2's `bytes_to_unicode`: printable bytes map to themselves, the others to 256+.
pub fn byte_alphabet() -> Vec<char> {
    let printable = |b: u32| {
        (b'!' as u32..=b'~' as u32).contains(&b)
            || (0xA1..=0xAC).contains(&b)
            || (0xAE..=0xFF).contains(&b)
    };
    let mut next = 256;
    (0..256u32)
        .map(|b| {
            let code = if printable(b) {
                b
            } else {
                next += 1;
                next - 1
            };
            char::from_u32(code).unwrap_or('?')
        })
        .collect()
}

/// A vocabulary: tokens (bytes, merged, control) and merges (`"a b"`).
pub struct TinyVocab {
    pub tokens: Vec<String>,
    pub merges: Vec<String>,
    /// llama.cpp token types: 1 normal, 3 control.
    pub types: Vec<i32>,
}

/// Trains the vocabulary: repeatedly merges the most frequent adjacent pair (the
/// smallest pair on ties) inside whitespace-separated words of the corpus.
pub fn tiny_vocab() -> TinyVocab {
    let alphabet = byte_alphabet();
    let map = |s: &str| -> Vec<String> {
        s.bytes()
            .map(|b| alphabet[b as usize].to_string())
            .collect()
    };
    let mut words: Vec<Vec<String>> = CORPUS
        .split(' ')
        .filter(|w| !w.is_empty())
        .map(|w| map(&format!(" {w}")))
        .collect();
    let mut tokens: Vec<String> = alphabet.iter().map(|c| c.to_string()).collect();
    let mut merges = Vec::new();
    for _ in 0..MERGES {
        let mut counts: BTreeMap<(String, String), usize> = BTreeMap::new();
        for w in &words {
            for pair in w.windows(2) {
                *counts
                    .entry((pair[0].clone(), pair[1].clone()))
                    .or_default() += 1;
            }
        }
        let Some(best) = counts.iter().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(a.0))) else {
            break;
        };
        let (a, b) = best.0.clone();
        let joined = format!("{a}{b}");
        for w in &mut words {
            let mut i = 0;
            while i + 1 < w.len() {
                if w[i] == a && w[i + 1] == b {
                    w[i] = joined.clone();
                    w.remove(i + 1);
                }
                i += 1;
            }
        }
        merges.push(format!("{a} {b}"));
        tokens.push(joined);
    }
    let normal = tokens.len();
    tokens.extend(SPECIALS.iter().map(|s| s.to_string()));
    let types = (0..tokens.len())
        .map(|i| if i < normal { 1 } else { 3 })
        .collect();
    TinyVocab {
        tokens,
        merges,
        types,
    }
}

/// Writes a tensor-free `llama` GGUF carrying [`tiny_vocab`] with pre-tokenizer `pre`.
pub fn write_vocab_gguf(path: &Path, pre: &str) -> Result<()> {
    let v = tiny_vocab();
    let strings =
        |xs: &[String]| Value::Array(xs.iter().map(|s| Value::String(s.clone())).collect());
    let bos = v.tokens.len() - SPECIALS.len();
    let tokenizer = vec![
        (
            "tokenizer.ggml.model".to_string(),
            Value::String("gpt2".into()),
        ),
        ("tokenizer.ggml.pre".to_string(), Value::String(pre.into())),
        ("tokenizer.ggml.tokens".to_string(), strings(&v.tokens)),
        ("tokenizer.ggml.merges".to_string(), strings(&v.merges)),
        (
            "tokenizer.ggml.token_type".to_string(),
            Value::Array(v.types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        (
            "tokenizer.ggml.bos_token_id".to_string(),
            Value::U32(bos as u32),
        ),
        (
            "tokenizer.ggml.eos_token_id".to_string(),
            Value::U32(bos as u32 + 1),
        ),
    ];
    let spec =
        tiny_family("llama").ok_or_else(|| crate::InferenceError::BadRequest("no llama".into()))?;
    write_file(path, &metadata(&spec, tokenizer), &[])
}
