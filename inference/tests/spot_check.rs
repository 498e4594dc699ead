//! Spot checks on the tiny random Llama: the material an honest worker archived for its
//! receipt passes a validator's re-run (plain and speculative decoding, f32 and f16
//! wire), and every way of cheating fails it: faked positions (a worker skipping its
//! layers for all or some positions), inputs that are not what the client sent, a
//! commitment that is not the receipt's. The client refuses a receipt whose input
//! commitment is not the digest of what it sent.

mod common;

use common::*;
use neuroshard_inference::fault::SkipWork;
use neuroshard_inference::spot_check::{check_receipt, CheckOutcome, InputLog};
use neuroshard_inference::{
    decode, DecodeOptions, Hop, InProcessTransport, ModelWeights, NgramDrafter, PipelineClient,
    Shard, ShardExecutor, ShardTransport, WireDType,
};
use neuroshard_primitives::{AccountId, Hash, ReceiptBody};
use std::sync::Arc;

const RANGES: [(usize, usize); 3] = [(0, 2), (2, 4), (4, 6)];

/// Runs a greedy generation over shards (the middle one faking `fault` of its work) and
/// returns each stage's receipt body with the shard that issued it.
fn serve(
    w: &ModelWeights,
    hash: Hash,
    fault: Option<SkipWork>,
    speculative: bool,
    wire: WireDType,
) -> Vec<(ReceiptBody, Arc<InProcessTransport>)> {
    let ts: Vec<Arc<InProcessTransport>> = RANGES
        .iter()
        .enumerate()
        .map(|(i, &(a, b))| {
            let mut shard = Shard::new(w.slice(a..b).unwrap(), hash).unwrap();
            if let (1, Some(f)) = (i, fault) {
                shard = shard.with_fault(f);
            }
            Arc::new(InProcessTransport::new(
                Arc::new(shard),
                worker(i as u8 + 1),
            ))
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
    let receipts = c
        .receipts(&AccountId::from([9; 32]), 0, out.accepted_positions as u32)
        .unwrap();
    receipts
        .into_iter()
        .zip(ts)
        .map(|(r, t)| (r.body, t))
        .collect()
}

fn verifier(w: &ModelWeights, (a, b): (usize, usize)) -> ShardExecutor {
    ShardExecutor::new(w.slice(a..b).unwrap()).unwrap()
}

fn check(
    w: &ModelWeights,
    stage: usize,
    body: &ReceiptBody,
    t: &InProcessTransport,
) -> CheckOutcome {
    let material = t.shard().material(&body.id()).expect("archived");
    check_receipt(&verifier(w, RANGES[stage]), body, &material).unwrap()
}

#[test]
fn honest_work_passes_its_spot_check() {
    let (w, hash) = tiny_model();
    for (speculative, wire) in [
        (false, WireDType::F32),
        (true, WireDType::F32),
        (true, WireDType::F16),
    ] {
        let receipts = serve(&w, hash, None, speculative, wire);
        assert_eq!(receipts.len(), 3);
        for (stage, (body, t)) in receipts.iter().enumerate() {
            assert_eq!(
                check(&w, stage, body, t),
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
        let receipts = serve(&w, hash, Some(fault), false, WireDType::F32);
        let (body, t) = &receipts[1];
        assert!(
            matches!(check(&w, 1, body, t), CheckOutcome::Mismatch(_)),
            "a worker faking {permill} ppm of positions passed"
        );
        // The honest stages around it still pass: each receipt is judged on its own.
        assert_eq!(
            check(&w, 0, &receipts[0].0, &receipts[0].1),
            CheckOutcome::Match
        );
    }
}

#[test]
fn material_that_does_not_match_the_receipt_fails() {
    let (w, hash) = tiny_model();
    let receipts = serve(&w, hash, None, false, WireDType::F32);
    let (body, t) = &receipts[1];
    let material = t.shard().material(&body.id()).unwrap();
    let exec = verifier(&w, RANGES[1]);

    // Inputs other than the committed ones (a worker re-running on made-up inputs).
    let mut other = material.clone();
    if let InputLog::Hidden { data, .. } = &mut other.inputs {
        data[0] ^= 0x40;
    }
    assert!(matches!(
        check_receipt(&exec, body, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // A commitment that is not the receipt's.
    let mut other = material.clone();
    other.commitment[12] ^= 1;
    assert!(matches!(
        check_receipt(&exec, body, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // Fewer inputs than the receipt covers; garbage bytes.
    let mut other = material.clone();
    other.inputs.truncate(3);
    assert!(matches!(
        check_receipt(&exec, body, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    let mut other = material.clone();
    other.commitment = vec![7; 3];
    assert!(matches!(
        check_receipt(&exec, body, &other).unwrap(),
        CheckOutcome::Mismatch(_)
    ));
    // The wrong layers' executor cannot confirm the work either.
    assert!(matches!(
        check_receipt(&verifier(&w, RANGES[2]), body, &material),
        Ok(CheckOutcome::Mismatch(_)) | Err(_)
    ));
    // And the real material still passes.
    assert_eq!(
        check_receipt(&exec, body, &material).unwrap(),
        CheckOutcome::Match
    );
}

/// A transport that relays to a shard but rewrites its receipts' input commitment.
struct LyingInputs(Arc<InProcessTransport>);

impl ShardTransport for LyingInputs {
    fn name(&self) -> String {
        self.0.name()
    }
    fn layers(&self) -> neuroshard_primitives::LayerRange {
        self.0.layers()
    }
    fn model(&self) -> Hash {
        self.0.model()
    }
    fn forward(
        &self,
        req: &neuroshard_inference::ShardRequest,
    ) -> neuroshard_inference::Result<neuroshard_inference::ShardResponse> {
        self.0.forward(req)
    }
    fn receipt(
        &self,
        req: &neuroshard_inference::messages::ReceiptRequest,
    ) -> neuroshard_inference::Result<neuroshard_inference::messages::SessionReceipt> {
        let mut r = self.0.receipt(req)?;
        r.body.input_commitment = Hash::repeat_byte(1);
        Ok(r)
    }
    fn end_session(&self, session: &neuroshard_primitives::SessionId) {
        self.0.end_session(session)
    }
}

#[test]
fn the_client_refuses_a_receipt_for_inputs_it_did_not_send() {
    let (w, hash) = tiny_model();
    let ts = transports(&w, hash, &RANGES);
    let hops = vec![
        Hop::new(vec![ts[0].clone() as Arc<dyn ShardTransport>]),
        Hop::new(vec![
            Arc::new(LyingInputs(ts[1].clone())) as Arc<dyn ShardTransport>
        ]),
        Hop::new(vec![ts[2].clone() as Arc<dyn ShardTransport>]),
    ];
    let mut c = PipelineClient::new(hash, [5; 16], hops).unwrap();
    let out = decode(
        &mut c,
        &[1, 2, 3],
        &DecodeOptions::default(),
        None,
        &mut |_| {},
    )
    .unwrap();
    let err = c
        .receipts(&AccountId::from([9; 32]), 0, out.accepted_positions as u32)
        .unwrap_err();
    assert!(
        err.to_string().contains("does not attest the inputs"),
        "{err}"
    );
}
