//! Tests of the batcher module.
use crate::messages::{HeadMode, ShardInput, ShardOutput, ShardRequest, WireDType};
use crate::weights::{ModelSource, ModelWeights, Precision};
use crate::{InferenceError, Shard};
use neuroshard_primitives::{Hash, LayerRange};

fn shard(max_batch: usize) -> Shard {
    let dir = tempfile::tempdir().unwrap();
    let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), 3).unwrap();
    let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
    Shard::new(weights, Hash::repeat_byte(1))
        .unwrap()
        .with_max_batch(max_batch)
}

fn request(session: u8, start_pos: u32, tokens: Vec<u32>) -> ShardRequest {
    ShardRequest {
        model: Hash::repeat_byte(1),
        session: [session; 16],
        layers: LayerRange::new(0, 6).unwrap(),
        start_pos,
        input: ShardInput::Tokens(tokens),
        head: HeadMode::Argmax,
        wire: WireDType::F32,
    }
}

/// Greedy decoding of `steps` tokens after `prompt`, one request per step.
fn greedy(shard: &Shard, session: u8, prompt: Vec<u32>, steps: usize) -> Vec<u32> {
    let mut pos = 0;
    let mut input = prompt;
    let mut out = Vec::new();
    for _ in 0..steps {
        let n = input.len() as u32;
        let r = shard.handle(&request(session, pos, input)).unwrap();
        let ShardOutput::Argmax(ids) = r.output else {
            panic!("argmax expected")
        };
        let next = *ids.last().unwrap();
        out.push(next);
        pos += n;
        input = vec![next];
    }
    out
}

#[test]
fn concurrent_sessions_with_a_long_prefill_decode_as_alone_in_capped_steps() {
    let prompts: Vec<Vec<u32>> = (0..6u32)
        .map(|s| {
            (0..[30, 1, 2, 3, 9, 17][s as usize])
                .map(|i| 1 + (s * 7 + i) % 60)
                .collect()
        })
        .collect();
    let alone = shard(4);
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| greedy(&alone, i as u8, p.clone(), 12))
        .collect();
    assert!(alone.batch_figures().peak_sessions == 1);

    let batched = shard(4);
    let got: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let batched = &batched;
                scope.spawn(move || greedy(batched, i as u8, p.clone(), 12))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, expected);
    let f = batched.batch_figures();
    assert!(f.peak_positions <= 4, "{f:?}");
    let total: usize = prompts.iter().map(|p| p.len() + 11).sum();
    assert_eq!(f.positions as usize, total, "{f:?}");
    // The 30-token prompt alone needs at least 8 steps of at most 4 positions.
    assert!(f.steps >= 8, "{f:?}");
}

#[test]
fn a_refused_request_fails_alone_and_others_in_its_step_run() {
    let shard = shard(64);
    for s in 0..8u8 {
        shard.handle(&request(s, 0, vec![1, 2, 3])).unwrap();
    }
    let results: Vec<_> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8u8)
            .map(|s| {
                let shard = &shard;
                // Odd sessions skip positions 3 and 4 of their cache: a gap.
                let start = if s % 2 == 1 { 5 } else { 3 };
                scope.spawn(move || shard.handle(&request(s, start, vec![4])))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (s, r) in results.iter().enumerate() {
        if s % 2 == 1 {
            assert!(
                matches!(r, Err(InferenceError::CacheGap { start: 5, .. })),
                "{r:?}"
            );
        } else {
            assert!(r.is_ok(), "{r:?}");
        }
    }
}

/// The two stages of the tiny model (layers 0-3 and 3-6), linked as one node's shards
/// (`linked`) or not.
fn two_stages(linked: Option<&std::sync::Arc<crate::batcher::NodeQueue>>) -> [Shard; 2] {
    let dir = tempfile::tempdir().unwrap();
    let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), 3).unwrap();
    let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
    [0..3, 3..6].map(|r| {
        let shard = Shard::new(weights.slice(r).unwrap(), Hash::repeat_byte(1)).unwrap();
        match linked {
            Some(node) => shard.with_node_queue(node.clone()),
            None => shard,
        }
    })
}

/// Greedy decoding through both stages, one request per stage and step.
fn greedy_two(stages: &[Shard; 2], session: u8, prompt: Vec<u32>, steps: usize) -> Vec<u32> {
    let (mut pos, mut input, mut out) = (0, prompt, Vec::new());
    for _ in 0..steps {
        let n = input.len() as u32;
        let mut first = request(session, pos, input);
        first.layers = LayerRange::new(0, 3).unwrap();
        let first = stages[0].handle(&first).unwrap();
        let ShardOutput::Hidden(hidden) = first.output else {
            panic!("hidden states expected")
        };
        let mut second = request(session, pos, Vec::new());
        second.layers = LayerRange::new(3, 6).unwrap();
        second.input = ShardInput::Hidden(hidden);
        let ShardOutput::Argmax(ids) = stages[1].handle(&second).unwrap().output else {
            panic!("argmax expected")
        };
        let next = *ids.last().unwrap();
        out.push(next);
        pos += n;
        input = vec![next];
    }
    out
}

#[test]
fn linked_stages_of_one_node_decode_concurrent_sessions_as_alone() {
    let prompts: Vec<Vec<u32>> = (0..6u32)
        .map(|s| (0..1 + s * 3).map(|i| 1 + (s * 5 + i) % 60).collect())
        .collect();
    let alone = two_stages(None);
    let expected: Vec<Vec<u32>> = prompts
        .iter()
        .enumerate()
        .map(|(i, p)| greedy_two(&alone, i as u8, p.clone(), 10))
        .collect();
    let node = std::sync::Arc::new(crate::batcher::NodeQueue::default());
    let linked = two_stages(Some(&node));
    let got: Vec<Vec<u32>> = std::thread::scope(|scope| {
        let handles: Vec<_> = prompts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let linked = &linked;
                scope.spawn(move || greedy_two(linked, i as u8, p.clone(), 10))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(got, expected);
    // Every job left the node's queue, and each stage ran every position once.
    assert!(node.is_empty());
    for stage in &linked {
        let f = stage.batch_figures();
        let total: usize = prompts.iter().map(|p| p.len() + 9).sum();
        assert_eq!(f.positions as usize, total, "{f:?}");
        assert_eq!(f.histogram.iter().sum::<u64>(), f.steps, "{f:?}");
        assert!(f.sessions >= f.steps && f.busy_nanos > 0, "{f:?}");
    }
}

#[test]
fn the_first_stage_waits_for_a_split_group_through_its_clients_turn() {
    use super::{Batcher, NodeQueue, State};
    use std::collections::HashSet;
    use std::sync::Arc;
    let (a, b) = ([1u8; 16], [2u8; 16]);
    let node = Arc::new(NodeQueue::default());
    let first = Batcher::new(64).linked(node.clone(), true);
    let later = Batcher::new(64).linked(node.clone(), false);
    // `a` ran in the first stage's last step, `b` (a group that split off) in the one
    // before; neither has a job queued here.
    let mut state = State::default();
    state.recent.extend([(a, 2), (b, 1)]);
    let mut merging = HashSet::new();
    // `b` is queued at a later stage, `a` is between stages.
    node.enter(b);
    let w = first.waiting(&state, &mut merging);
    assert!(w.merge && w.transit);
    // A later stage waits only for sessions in transit, not for ones queued elsewhere.
    let mut other = HashSet::new();
    let w = later.waiting(&state, &mut other);
    assert!(!w.merge && w.transit && other.is_empty());
    // `a` is back; `b` left the last stage and is in its client's turn, queued nowhere:
    // the first stage still waits for it to merge (it gave up here before).
    state.recent.remove(&a);
    node.leave(&b);
    let w = first.waiting(&state, &mut merging);
    assert!(w.merge && !w.transit);
    // A session not seen at a later stage during this wait is only in transit.
    let w = first.waiting(&state, &mut HashSet::new());
    assert!(!w.merge && w.transit);
}
