//! Spot checks on the tiny random Llama: the material an honest worker archived for its
//! work record (what its receipt attests) passes a validator's re-run (plain and
//! speculative decoding, f32 and f16 wire), and every way of cheating fails it: faked
//! positions (a worker skipping its layers for all or some positions), inputs that are
//! not what the client sent, a commitment that is not the record's. The client refuses a
//! record whose input commitment is not the digest of what it sent.

mod common;

use common::*;
use neuroshard_inference::fault::SkipWork;
use neuroshard_inference::spot_check::{check_work, CheckOutcome, InputLog};
use neuroshard_inference::{
    decode, DecodeOptions, Hop, InProcessTransport, ModelWeights, NgramDrafter, PipelineClient,
    Shard, ShardExecutor, ShardTransport, WireDType, WorkRecord, WorkRequest,
};
use neuroshard_primitives::Hash;
use std::sync::Arc;

const RANGES: [(usize, usize); 3] = [(0, 2), (2, 4), (4, 6)];

/// Runs a greedy generation over shards (the middle one faking `fault` of its work) and
/// returns each stage's work record with the shard that recorded it.
fn serve(
    w: &ModelWeights,
    hash: Hash,
    fault: Option<SkipWork>,
    speculative: bool,
    wire: WireDType,
) -> Vec<(WorkRecord, Arc<InProcessTransport>)> {
    let ts: Vec<Arc<InProcessTransport>> = RANGES
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let mut shard = Shard::new(w.slice(a..b).unwrap(), hash).unwrap();
            if let (1, Some(f)) = (i, fault) {
                shard = shard.with_fault(f);
            }
            Arc::new(InProcessTransport::new(Arc::new(shard)))
        })
        .collect();
    let hops = ts
        .iter()
        .map(|t| Hop::new(vec![t.clone() as Arc<dyn ShardTransport>]))
        .collect();
    let mut c = PipelineClient::new(hash, [4; 16], hops)
        .unwrap()
        .with_wire(wire);
    let opts = DecodeOptions {
        max_tokens: 40,
        ..Default::default()
    };
    let mut ngram = NgramDrafter::default();
    let drafter = speculative.then_some(&mut ngram as &mut dyn neuroshard_inference::Drafter);
    let out = decode(
        &mut c,
        &[1, 10, 20, 30, 40, 10, 20],
        &opts,
        drafter,
        &mut |_| {},
    )
    .unwrap();
    record_served(&ts, &c, out.accepted_positions as u32)
        .into_iter()
        .zip(ts)
        .map(|(r, t)| (r.record, t))
        .collect()
}

fn verifier(w: &ModelWeights, (a, b): (usize, usize)) -> ShardExecutor {
    ShardExecutor::new(w.slice(a..b).unwrap()).unwrap()
}

fn check(
    w: &ModelWeights,
    stage: usize,
    work: &WorkRecord,
    t: &InProcessTransport,
) -> CheckOutcome {
    let material = t.shard().material(&work.id()).expect("archived");
    check_work(&verifier(w, RANGES[stage]), work, &material).unwrap()
}

#[test]
fn honest_work_passes_its_spot_check() {
    let (w, hash) = tiny_model();
    for (speculative, wire) in [
        (false, WireDType::F32),
        (true, WireDType::F32),
        (true, WireDType::F16),
    ] {
        let records = serve(&w, hash, None, speculative, wire);
        assert_eq!(records.len(), 3);
        for (stage, (work, t)) in records.iter().enumerate() {
            assert_eq!(
                check(&w, stage, work, t),
                CheckOutcome::Match,
                "stage {stage}, speculative {speculative}, {wire:?}"
            );
        }
    }
}

#[test]
fn skipped_work_fails_its_spot_check() {
    let (w, hash) = tiny_model();
    for permill in [1_000_000, 200_000] {
        let fault = SkipWork { permill, seed: 3 };
        let records = serve(&w, hash, Some(fault), false, WireDType::F32);
        let (work, t) = &records[1];
        assert!(
            matches!(check(&w, 1, work, t), CheckOutcome::Mismatch(_)),
            "a worker faking {permill} ppm of positions passed"
        );
        // The honest stages around it still pass: each receipt is judged on its own.
        assert_eq!(
            check(&w, 0, &records[0].0, &records[0].1),
            CheckOutcome::Match
        );
    }
}

#[test]
fn material_that_does_not_match_the_receipt_fails() {
    let (w, hash) = tiny_model();
    let records = serve(&w, hash, None, false, WireDType::F32);
    let (work, t) = &records[1];
    let material = t.shard().material(&work.id()).unwrap();
    let exec = verifier(&w, RANGES[1]);

    // Inputs other than the committed ones (a worker re-running on made-up inputs).
    let mut other = material.clone();
    if let InputLog::Hidden { data, .. } = &mut other.inputs {
        data[0] ^= 0x40;
    }
    assert!(matches!(
        check_work(&exec, work, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // A commitment that is not the receipt's.
    let mut other = material.clone();
    other.commitment[12] ^= 1;
    assert!(matches!(
        check_work(&exec, work, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // Fewer inputs than the receipt covers; garbage bytes.
    let mut other = material.clone();
    other.inputs.truncate(3);
    assert!(matches!(
        check_work(&exec, work, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    let mut other = material.clone();
    other.commitment = vec![7; 3];
    assert!(matches!(
        check_work(&exec, work, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // The wrong layers' executor cannot confirm the work either.
    assert!(matches!(
        check_work(&verifier(&w, RANGES[2]), work, &material),
        Ok(CheckOutcome::Mismatch(_)) | Err(_)
    ));
    // And the real material still passes.
    assert_eq!(
        check_work(&exec, work, &material).unwrap(),
        CheckOutcome::Match
    );
}

#[test]
fn the_client_refuses_a_record_for_inputs_it_did_not_send() {
    let (w, hash) = tiny_model();
    let ts = transports(&w, hash, &RANGES);
    let mut c = client(&ts, hash, 5);
    let out = decode(
        &mut c,
        &[1, 2, 3],
        &DecodeOptions::default(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let until = out.accepted_positions as u32;
    let served = c.served(until);
    let req = WorkRequest {
        session: c.session(),
        until,
    };
    // The middle worker claims other inputs than the ones it was sent.
    let mut record = ts[1].record_work(&req).unwrap().record;
    record.input_commitment = Hash::repeat_byte(1);
    let err = served[1].check(&record).unwrap_err();
    assert!(
        err.to_string().contains("does not attest the inputs"),
        "{err}"
    );
}
