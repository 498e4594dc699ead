//! Helpers shared by the integration tests: the real model from the cache (fetched when
//! absent) and in-process routes over it or over the tiny random Llama.
#![allow(dead_code)]

use neuroshard_inference::fetch::{default_cache_dir, ensure_model, smollm2_135m_q4_1};
use neuroshard_inference::{
    Hop, InProcessTransport, ModelSource, ModelWeights, PipelineClient, Precision, RecordedWork,
    Shard, ShardTransport,
};
use neuroshard_primitives::Hash;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

pub fn real_model_path() -> PathBuf {
    static PATH: OnceLock<PathBuf> = OnceLock::new();
    PATH.get_or_init(|| {
        ensure_model(&smollm2_135m_q4_1(), &default_cache_dir(), false).expect("model")
    })
    .clone()
}

pub fn real_model_hash() -> Hash {
    Hash::from_slice(&hex::decode(smollm2_135m_q4_1().blake2b_256).unwrap())
}

/// In-process transports for `ranges` of `weights`.
pub fn transports(
    weights: &ModelWeights,
    hash: Hash,
    ranges: &[(usize, usize)],
) -> Vec<Arc<InProcessTransport>> {
    ranges
        .iter()
        .map(|&(a, b)| {
            let shard = Shard::new(weights.slice(a..b).unwrap(), hash).unwrap();
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect()
}

/// The checked work records of `ts` for `client`'s session up to `until`.
pub fn record_served(
    ts: &[Arc<InProcessTransport>],
    client: &PipelineClient,
    until: u32,
) -> Vec<RecordedWork> {
    neuroshard_inference::generate::record_local_work(ts, client, until).expect("recorded")
}

/// A pipeline client with one provider per hop.
pub fn client(ts: &[Arc<InProcessTransport>], hash: Hash, session: u8) -> PipelineClient {
    let hops = ts
        .iter()
        .map(|t| Hop::new(vec![t.clone() as Arc<dyn ShardTransport>]))
        .collect();
    PipelineClient::new(hash, [session; 16], hops).unwrap()
}

pub fn tiny_model() -> (ModelWeights, Hash) {
    // Written once per test binary and loaded into memory; the directory is removed
    // right away (a static TempDir would never be dropped and would leak).
    static WEIGHTS: OnceLock<ModelWeights> = OnceLock::new();
    let w = WEIGHTS.get_or_init(|| {
        let d = tempfile::tempdir().unwrap();
        neuroshard_inference::tiny::write_tiny_llama(d.path(), 7).unwrap();
        ModelWeights::load(
            &ModelSource::Safetensors(d.path().to_path_buf()),
            None,
            Precision::Native,
        )
        .unwrap()
    });
    (w.clone(), neuroshard_primitives::blake2_256(b"tiny"))
}
