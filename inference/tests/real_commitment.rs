//! Spot checks on the real SmolLM2 model against the cheats a worker could try on its
//! quietest work: an honest middle shard (layers 10-20) passes its check, and one that
//! returns its inputs for the positions its layers change least, skips its last layer,
//! attends over a short window or runs on Q4_0 weights fails it (the commitment's unit
//! tests show the quiet-position hole of version 1 on synthetic rows).

mod common;

use common::*;
use neuroshard_inference::fault::Fault;
use neuroshard_inference::spot_check::{check_work, CheckOutcome};
use neuroshard_inference::tokenizer::{ChatMessage, Tokenizer};
use neuroshard_inference::{
    decode, DecodeOptions, InProcessTransport, ModelSource, ModelWeights, Precision, RecordedWork,
    Shard, ShardExecutor,
};
use std::sync::Arc;

const RANGES: [(usize, usize); 3] = [(0, 10), (10, 20), (20, 30)];

/// Serves one short greedy generation with the middle shard running `fault`; returns the
/// middle shard's recorded work and its transport.
fn middle_work(
    w: &ModelWeights,
    prompt: &[u32],
    fault: Option<Fault>,
) -> (RecordedWork, Arc<InProcessTransport>) {
    let hash = real_model_hash();
    let ts: Vec<Arc<InProcessTransport>> = RANGES
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let mut shard = Shard::new(w.slice(a..b).unwrap(), hash).unwrap();
            if let (1, Some(f)) = (i, fault) {
                shard = shard.try_with_fault(f).unwrap();
            }
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect();
    let mut c = client(&ts, hash, 9);
    let opts = DecodeOptions {
        max_tokens: 8,
        ..Default::default()
    };
    let out = decode(&mut c, prompt, &opts, None, &mut |_| {}).unwrap();
    let mut records = record_served(&ts, &c, out.accepted_positions as u32);
    (records.remove(1), ts[1].clone())
}

fn check(
    exec: &ShardExecutor,
    (work, t): &(RecordedWork, Arc<InProcessTransport>),
) -> CheckOutcome {
    let material = t.shard().material(&work.record.id()).expect("archived");
    check_work(exec, &work.record, &material).unwrap()
}

#[test]
fn real_model_cheats_on_quiet_work_fail_their_spot_check() {
    let path = real_model_path();
    let tok = Tokenizer::from_gguf_file(&path).unwrap();
    let w = ModelWeights::load(&ModelSource::Gguf(path), None, Precision::Native).unwrap();
    let exec = ShardExecutor::new(w.slice(10..20).unwrap()).unwrap();
    // Longer than sink + window, so the windowed attention differs.
    let prompt = tok
        .encode_chat(&[ChatMessage::new(
            "user",
            "Copy this text exactly: NeuroShard splits a language model into shards of \
             consecutive layers, and hidden states flow from node to node.",
        )])
        .unwrap();
    let honest = middle_work(&w, &prompt, None);
    assert_eq!(check(&exec, &honest), CheckOutcome::Match);
    // The positions the honest layers changed least: the quietest tenth.
    let mut norms: Vec<f32> = honest
        .0
        .commitment
        .positions
        .iter()
        .map(|p| p.norm)
        .collect();
    norms.sort_by(f32::total_cmp);
    let quiet = norms[norms.len() / 10];
    for fault in [
        Fault::SkipQuiet { max_norm: quiet },
        Fault::SkipLastLayers { layers: 1 },
        Fault::AttentionWindow {
            sink: 4,
            window: 16,
        },
        Fault::Requantize(candle_core::quantized::GgmlDType::Q4_0),
    ] {
        let cheat = middle_work(&w, &prompt, Some(fault));
        assert!(
            matches!(check(&exec, &cheat), CheckOutcome::Mismatch(_)),
            "{fault:?} passed its spot check"
        );
    }
}
