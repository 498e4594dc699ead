//! Continuous batching on the real SmolLM2 model: many sessions with prompts of different
//! lengths decode at once through a two-shard route (plain and speculative, with chunked
//! prefill), and each one's greedy output must be the tokens the same request gets served
//! alone. Each session's work records must then pass a spot check that re-runs its
//! positions alone, and the commitment the batched pass recorded must be the one the
//! re-run computes, bit for bit (the kernels compute a row the same way whatever the
//! batch, so the measured difference is zero, not merely within the tolerance).

mod common;

use common::*;
use neuroshard_inference::spot_check::recompute;
use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};
use neuroshard_inference::{
    decode, DecodeOptions, Decoded, InProcessTransport, ModelSource, ModelWeights, NgramDrafter,
    Precision, Shard,
};
use neuroshard_primitives::Hash;
use std::sync::{Arc, Barrier};

const RANGES: [(usize, usize); 2] = [(0, 15), (15, 30)];
/// Small enough that the longer prompts are prefilled in several chunks.
const MAX_BATCH: usize = 24;
const SESSIONS: usize = 12;

/// The two shards as one node serves them: their batchers linked (see
/// `neuroshard_inference::batcher::NodeQueue`).
fn route(weights: &ModelWeights, hash: Hash) -> Vec<Arc<InProcessTransport>> {
    let node = Arc::new(neuroshard_inference::batcher::NodeQueue::default());
    RANGES
        .iter()
        .map(|&(a, b)| {
            let shard = Shard::new(weights.slice(a..b).unwrap(), hash)
                .unwrap()
                .with_max_batch(MAX_BATCH)
                .with_node_queue(node.clone());
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect()
}

/// Prompts of 1 to ~120 tokens.
fn prompts(tok: &Tokenizer) -> Vec<Vec<u32>> {
    let base = "NeuroShard splits a language model into shards of consecutive layers. \
                Each node serves one shard, and hidden states flow from node to node. ";
    (0..SESSIONS)
        .map(|i| {
            if i == 0 {
                return vec![tok.bos];
            }
            let text = format!("Question {i}: {}", base.repeat(i % 4));
            tok.encode_chat(&[ChatMessage::new("user", &text)]).unwrap()
        })
        .collect()
}

fn run(
    ts: &[Arc<InProcessTransport>],
    hash: Hash,
    i: usize,
    prompt: &[u32],
    opts: &DecodeOptions,
) -> (Decoded, neuroshard_inference::PipelineClient) {
    let mut c = client(ts, hash, i as u8);
    let mut drafter = NgramDrafter::default();
    let speculative = i.is_multiple_of(3);
    let d = decode(
        &mut c,
        prompt,
        opts,
        speculative.then_some(&mut drafter as &mut dyn neuroshard_inference::Drafter),
        &mut |_| {},
    )
    .unwrap();
    (d, c)
}

#[test]
fn batched_sessions_decode_as_alone_and_their_work_checks_bit_for_bit() {
    let path = real_model_path();
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let hash = real_model_hash();
    let weights = ModelWeights::load(&ModelSource::Gguf(path), None, Precision::Native).unwrap();
    let opts = DecodeOptions {
        max_tokens: 20,
        eos: None,
        ..Default::default()
    };
    let prompts = prompts(&tok);
    let lengths: Vec<usize> = prompts.iter().map(|p| p.len()).collect();
    assert!(
        lengths.iter().max().unwrap() > &(2 * MAX_BATCH),
        "{lengths:?}"
    );

    let alone_route = route(&weights, hash);
    let alone: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| run(&alone_route, hash, i, p, &opts).0.tokens)
        .collect();
    for t in &alone_route {
        assert_eq!(t.shard().batch_figures().peak_sessions, 1, "served alone");
    }

    let batched_route = route(&weights, hash);
    let start = Barrier::new(SESSIONS);
    let batched: Vec<(Decoded, neuroshard_inference::PipelineClient)> =
        std::thread::scope(|scope| {
            let handles: Vec<_> = prompts
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    let (route, opts, start) = (&batched_route, &opts, &start);
                    scope.spawn(move || {
                        start.wait();
                        run(route, hash, i, p, opts)
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
    for (i, ((d, _), alone)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(
            &d.tokens, alone,
            "session {i} ({} prompt tokens)",
            lengths[i]
        );
    }
    for t in &batched_route {
        let f = t.shard().batch_figures();
        eprintln!("shard {}: {f:?}", t.shard().layers());
        assert!(f.peak_sessions >= 2, "sessions were batched: {f:?}");
        assert!(f.peak_positions as usize <= MAX_BATCH, "{f:?}");
    }

    // Each session's work, recorded from the batched pass, re-run alone.
    let mut checked = 0;
    for (d, c) in &batched {
        let records = record_served(&batched_route, c, d.accepted_positions as u32);
        for (work, t) in records.iter().zip(&batched_route) {
            let material = t.shard().material(&work.record.id()).expect("archived");
            let exec = &t.shard().weights().exec;
            let (claimed, recomputed) = recompute(exec, &work.record, &material)
                .unwrap()
                .expect("material attests the record");
            let difference = claimed.distance(&recomputed).max;
            assert_eq!(difference, 0.0, "batched vs alone commitment difference");
            assert_eq!(claimed.encode(), recomputed.encode());
            checked += 1;
        }
    }
    assert_eq!(checked, SESSIONS * RANGES.len());
}
