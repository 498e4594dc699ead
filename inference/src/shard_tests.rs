//! Tests of the shard module.
use super::*;
use crate::weights::{ModelSource, Precision};

fn tiny_shard(max: usize) -> (Shard, Hash) {
    let dir = tempfile::tempdir().unwrap();
    let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), 3).unwrap();
    let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
    let hash = Hash::repeat_byte(1);
    let shard = Shard::new(weights, hash).unwrap().with_max_sessions(max);
    (shard, hash)
}

fn request(hash: Hash, session: u8, start_pos: u32, tokens: Vec<u32>) -> ShardRequest {
    ShardRequest {
        model: hash,
        session: [session; 16],
        layers: LayerRange::new(0, 6).unwrap(),
        start_pos,
        input: ShardInput::Tokens(tokens),
        head: HeadMode::Argmax,
        wire: WireDType::F32,
    }
}

#[test]
fn sessions_are_bounded_and_the_least_recently_used_goes_first() {
    let (shard, hash) = tiny_shard(3);
    for id in 1..=3 {
        shard.handle(&request(hash, id, 0, vec![1, 2, 3])).unwrap();
    }
    // Session 1 is used again, so 2 is now the least recently used.
    shard.handle(&request(hash, 1, 3, vec![4])).unwrap();
    shard.handle(&request(hash, 4, 0, vec![1, 2])).unwrap();
    assert_eq!(shard.session_count(), 3);
    assert_eq!(shard.cached_len(&[1; 16]), 4);
    assert_eq!(shard.cached_len(&[2; 16]), 0, "evicted");
    assert_eq!(shard.cached_len(&[3; 16]), 3);
    // The evicted session's next step is a cache gap (its client replays).
    let gap = shard.handle(&request(hash, 2, 3, vec![4])).unwrap_err();
    assert!(
        matches!(
            gap,
            InferenceError::CacheGap {
                have: 0,
                start: 3,
                ..
            }
        ),
        "{gap}"
    );
    // A request that does not start at 0 creates nothing.
    assert!(shard.handle(&request(hash, 9, 5, vec![4])).is_err());
    assert_eq!(shard.session_count(), 3);
    assert_eq!(shard.cached_len(&[9; 16]), 0);
}

fn tiny_weights(seed: u64) -> ModelWeights {
    let dir = tempfile::tempdir().unwrap();
    let source: ModelSource = crate::tiny::write_tiny_llama(dir.path(), seed).unwrap();
    ModelWeights::load(&source, None, Precision::Native).unwrap()
}

fn argmax(shard: &Shard, req: &ShardRequest) -> Vec<u32> {
    match shard.handle(req).unwrap().output {
        ShardOutput::Argmax(v) => v,
        other => panic!("{other:?}"),
    }
}

#[test]
fn new_weights_serve_new_sessions_while_running_ones_keep_theirs() {
    let hash = Hash::repeat_byte(1);
    let shard = Shard::new(tiny_weights(3), hash).unwrap();
    let prompt: Vec<u32> = (1..12).collect();
    let base = argmax(&shard, &request(hash, 1, 0, prompt.clone()));
    assert_eq!(shard.adapter(), None);
    let version = Hash::repeat_byte(7);
    shard.serve_weights(tiny_weights(4), Some(version)).unwrap();
    assert_eq!(shard.adapter(), Some(version));
    // Session 1 continues on the old weights: replaying its prompt gives the same.
    assert_eq!(argmax(&shard, &request(hash, 1, 0, prompt.clone())), base);
    let fresh = argmax(&shard, &request(hash, 2, 0, prompt.clone()));
    assert_ne!(fresh, base, "a new session runs the new weights");
    let record = |session: u8| {
        let req = WorkRequest {
            session: [session; 16],
            until: prompt.len() as u32,
        };
        shard.record_work(&req).unwrap().record
    };
    assert_eq!(record(1).adapter, None);
    assert_eq!(record(2).adapter, Some(version));
    // Weights for another range are refused.
    let wrong = tiny_weights(3).slice(0..2).unwrap();
    assert!(shard.serve_weights(wrong, None).is_err());
}
