//! The tokenizer rebuilt from the GGUF metadata: known ids, round trips, chat rendering.

mod common;

use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};

#[test]
fn tokenizer_matches_known_ids_and_round_trips() {
    let tok = Tokenizer::from_gguf_file(&common::real_model_path()).unwrap();
    assert_eq!(tok.vocab_size(), 49152);
    assert_eq!((tok.bos, tok.eos), (1, 2));
    // Special tokens are single ids.
    assert_eq!(tok.encode("<|im_start|>").unwrap(), vec![1]);
    assert_eq!(tok.encode("<|im_end|>").unwrap(), vec![2]);
    let ids = tok.encode("Hello world").unwrap();
    eprintln!("Hello world -> {ids:?}");
    assert_eq!(ids, vec![19556, 905]);
    // Digits are split one by one.
    let digits = tok.encode("2024").unwrap();
    assert_eq!(digits.len(), 4);
    for text in [
        "Hello world",
        "  leading spaces, tabs\tand\nnewlines",
        "Unicode: héllo wörld — 日本語 🚀",
        "numbers 1234567 and code fn main() { println!(\"hi\"); }",
    ] {
        let ids = tok.encode(text).unwrap();
        assert_eq!(tok.decode(&ids, false).unwrap(), text);
    }
}

#[test]
fn chat_template_renders_chatml() {
    // The file's own template (SmolLM2's ChatML), rendered by minijinja, and the ChatML
    // fallback for files without one give the same text.
    let tok = Tokenizer::from_gguf_file(&common::real_model_path()).unwrap();
    let expected = "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n";
    let hi = [ChatMessage::new("user", "Hi")];
    assert_eq!(tok.render_chat(&hi).unwrap(), expected);
    assert_eq!(Tokenizer::render_chatml(&hi), expected);
    let ids = tok
        .encode_chat(&[
            ChatMessage::new("system", "Be brief."),
            ChatMessage::new("user", "Hi"),
        ])
        .unwrap();
    assert_eq!(ids[0], 1);
    assert_eq!(tok.decode(&ids, false).unwrap(), "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}
