//! Prefix caching on the real SmolLM2 model: chats sharing a long system prompt, served
//! through a two-shard route whose shards cache each client's prompt prefixes, must
//! decode the tokens a route without the cache gives, and their work records must carry
//! the commitments a cold run records and pass a spot check that re-runs their positions
//! alone, bit for bit — with hits, after evictions under a budget too small for all the
//! prompts, and never across clients.

mod common;

use common::*;
use neuroshard_inference::prefix_cache::{PrefixScope, BLOCK};
use neuroshard_inference::spot_check::recompute;
use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};
use neuroshard_inference::{
    decode, DecodeOptions, Hop, InProcessTransport, ModelSource, ModelWeights, PipelineClient,
    Precision, ScopedTransport, Shard, ShardTransport,
};
use neuroshard_primitives::Hash;
use std::sync::Arc;

const RANGES: [(usize, usize); 2] = [(0, 15), (15, 30)];

fn route(weights: &ModelWeights, hash: Hash, prefix_bytes: usize) -> Vec<Arc<InProcessTransport>> {
    RANGES
        .iter()
        .map(|&(a, b)| {
            let shard = Shard::new(weights.slice(a..b).unwrap(), hash)
                .unwrap()
                .with_prefix_cache(prefix_bytes);
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect()
}

fn scoped_client(
    ts: &[Arc<InProcessTransport>],
    hash: Hash,
    session: u8,
    scope: PrefixScope,
) -> PipelineClient {
    let hops = ts
        .iter()
        .map(|t| {
            let scoped = ScopedTransport::new(t.clone(), scope);
            Hop::new(vec![Arc::new(scoped) as Arc<dyn ShardTransport>])
        })
        .collect();
    PipelineClient::new(hash, [session; 16], hops).unwrap()
}

/// Chats with one long system prompt and different questions.
fn prompts(tok: &Tokenizer) -> Vec<Vec<u32>> {
    let system = "You are the assistant of NeuroShard, a network that splits a language \
                  model into shards of consecutive layers. Each node serves one shard, hidden \
                  states flow from node to node, and every shard's work is paid by receipts \
                  that validators spot check. Answer briefly and precisely. "
        .repeat(2);
    [
        "What is a shard?",
        "Who pays for the work?",
        "How are receipts checked, and by whom?",
        "Name one reason to split a model.",
    ]
    .iter()
    .map(|q| {
        tok.encode_chat(&[
            ChatMessage::new("system", &system),
            ChatMessage::new("user", q),
        ])
        .unwrap()
    })
    .collect()
}

/// Greedy tokens and each shard's work commitment (hash) of one session, after checking
/// that a spot check re-running the positions alone recomputes them exactly.
fn serve(
    ts: &[Arc<InProcessTransport>],
    mut client: PipelineClient,
    prompt: &[u32],
) -> (Vec<u32>, Vec<Hash>) {
    let opts = DecodeOptions {
        max_tokens: 8,
        eos: None,
        ..Default::default()
    };
    let d = decode(&mut client, prompt, &opts, None, &mut |_| {}).unwrap();
    let records = record_served(ts, &client, d.accepted_positions as u32);
    let mut commitments = Vec::new();
    for (work, t) in records.iter().zip(ts) {
        let material = t.shard().material(&work.record.id()).expect("archived");
        let exec = &t.shard().weights().exec;
        let (claimed, recomputed) = recompute(exec, &work.record, &material)
            .unwrap()
            .expect("material attests the record");
        let difference = claimed.distance(&recomputed).max;
        assert!(
            claimed.encode() == recomputed.encode(),
            "spot check re-run: distance {difference}"
        );
        assert_eq!(work.record.position_start, 0);
        commitments.push(work.record.commitment);
    }
    client.close();
    (d.tokens, commitments)
}

fn hits(ts: &[Arc<InProcessTransport>]) -> Vec<u64> {
    ts.iter()
        .map(|t| t.shard().prefix_figures().hit_positions)
        .collect()
}

#[test]
fn cached_prefixes_decode_and_commit_as_cold_runs_even_after_eviction() {
    let path = real_model_path();
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let hash = real_model_hash();
    let weights = ModelWeights::load(&ModelSource::Gguf(path), None, Precision::Native).unwrap();
    let prompts = prompts(&tok);
    let shared = prompts[0]
        .iter()
        .zip(&prompts[1])
        .take_while(|(a, b)| a == b)
        .count();
    assert!(shared >= 6 * BLOCK, "a long shared prefix: {shared}");

    let cold_route = route(&weights, hash, 0);
    let cold: Vec<(Vec<u32>, Vec<Hash>)> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| serve(&cold_route, client(&cold_route, hash, i as u8), p))
        .collect();
    assert_eq!(hits(&cold_route), vec![0, 0], "no cache, no hits");

    // A cache large enough for everything: every prompt after the first reuses the
    // shared blocks on both shards.
    let (alice, bob) = ([1u8; 32], [2u8; 32]);
    let warm = route(&weights, hash, 256 << 20);
    for (i, p) in prompts.iter().enumerate() {
        let before = hits(&warm);
        let got = serve(&warm, scoped_client(&warm, hash, 10 + i as u8, alice), p);
        assert_eq!(got, cold[i], "prompt {i} with the cache");
        let gained: Vec<u64> = hits(&warm)
            .iter()
            .zip(&before)
            .map(|(a, b)| a - b)
            .collect();
        if i > 0 {
            let expected = (shared / BLOCK * BLOCK) as u64;
            assert!(
                gained.iter().all(|&g| g >= expected),
                "{gained:?} < {expected}"
            );
        } else {
            assert_eq!(gained, vec![0, 0]);
        }
    }
    // The same prompt again: all of it but its last partial block.
    let again = serve(&warm, scoped_client(&warm, hash, 20, alice), &prompts[0]);
    assert_eq!(again, cold[0]);
    // Another client's identical prompt reuses nothing of Alice's.
    let before = hits(&warm);
    let other = serve(&warm, scoped_client(&warm, hash, 21, bob), &prompts[0]);
    assert_eq!(other, cold[0]);
    assert_eq!(hits(&warm), before, "no reuse across clients");

    // A budget for about one prompt's blocks: prompts in turn evict each other's
    // blocks (and the shared prefix), and every output is still the cold one.
    let block_bytes = warm[0].shard().prefix_figures().bytes as usize
        / warm[0].shard().prefix_figures().blocks as usize;
    let budget = block_bytes * (prompts[3].len() / BLOCK + 2);
    let tight = route(&weights, hash, budget);
    for round in 0..2 {
        for (i, p) in prompts.iter().enumerate().rev() {
            let session = 30 + (round * prompts.len() + i) as u8;
            let got = serve(&tight, scoped_client(&tight, hash, session, alice), p);
            assert_eq!(got, cold[i], "prompt {i}, round {round}, tight budget");
            for t in &tight {
                let f = t.shard().prefix_figures();
                assert!(f.bytes <= f.budget, "{f:?}");
            }
        }
    }
    for t in &tight {
        let f = t.shard().prefix_figures();
        eprintln!("shard {} (tight): {f:?}", t.shard().layers());
        assert!(f.evictions > 0 && f.hit_positions > 0, "{f:?}");
    }
    for t in &warm {
        eprintln!(
            "shard {} (warm): {:?}",
            t.shard().layers(),
            t.shard().prefix_figures()
        );
    }
}
