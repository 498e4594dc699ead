//! Speculative decoding on the real SmolLM2 model: greedy output identical to plain greedy
//! for the n-gram drafter (Q4_1 target) and the Q4_1 model drafter (f32 target).

mod common;

use common::*;
use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};
use neuroshard_inference::{
    decode, DecodeOptions, ModelDrafter, ModelSource, ModelWeights, NgramDrafter, Precision,
};

const PROMPTS: [&str; 5] = [
    "What is the capital of France?",
    // Longer than 16 tokens of context per round: once diverged before attention was
    // made batch-independent.
    "Copy this text exactly: NeuroShard splits a language model into shards of consecutive \
     layers. Each node serves one shard, and hidden states flow from node to node.",
    "Write a haiku about the sea.",
    "List three prime numbers.",
    "Explain what a CPU does in one sentence.",
];

#[test]
fn real_model_speculative_greedy_matches_plain() {
    let path = real_model_path();
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let hash = real_model_hash();
    let source = ModelSource::Gguf(path);
    let q4 = ModelWeights::load(&source, None, Precision::Native).unwrap();
    let f32w = ModelWeights::load(&source, None, Precision::F32).unwrap();
    let opts = DecodeOptions {
        max_tokens: 24,
        eos: Some(tok.eos),
        ..Default::default()
    };
    let q4_route = transports(&q4, hash, &[(0, 15), (15, 30)]);
    let f32_route = transports(&f32w, hash, &[(0, 15), (15, 30)]);
    let mut ngram = NgramDrafter::default();
    let mut drafter = ModelDrafter::new(q4.clone()).unwrap();
    let (mut drafted, mut accepted) = (0, 0);
    for (i, text) in PROMPTS.iter().enumerate() {
        let prompt = tok.encode_chat(&[ChatMessage::new("user", text)]).unwrap();
        let s = i as u8 * 4;
        let plain = decode(
            &mut client(&q4_route, hash, s),
            &prompt,
            &opts,
            None,
            &mut |_| {},
        )
        .unwrap();
        let spec = decode(
            &mut client(&q4_route, hash, s + 1),
            &prompt,
            &opts,
            Some(&mut ngram),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(spec.tokens, plain.tokens, "ngram, prompt {text:?}");
        let plain32 = decode(
            &mut client(&f32_route, hash, s + 2),
            &prompt,
            &opts,
            None,
            &mut |_| {},
        )
        .unwrap();
        let spec32 = decode(
            &mut client(&f32_route, hash, s + 3),
            &prompt,
            &opts,
            Some(&mut drafter),
            &mut |_| {},
        )
        .unwrap();
        assert_eq!(
            spec32.tokens, plain32.tokens,
            "model drafter, prompt {text:?}"
        );
        eprintln!("{text:?} -> {:?}", tok.decode(&plain.tokens, true).unwrap());
        drafted += spec32.stats.drafted;
        accepted += spec32.stats.accepted;
    }
    // The Q4_1 drafter agrees with its f32 target most of the time.
    assert!(
        accepted * 2 > drafted,
        "model drafter accepted {accepted}/{drafted}"
    );
}
