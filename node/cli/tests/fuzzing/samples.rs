//! Valid inputs the fuzz targets start from: what honest peers and users send.

use super::Harness;
use neuroshard_client::finality::Vote;
use neuroshard_client::sync::{SyncRequest, SyncResponse};
use neuroshard_inference::commitment::{ActivationCommitment, PositionTopK};
use neuroshard_inference::messages::{
    Activations, HeadMode, ShardInput, ShardOutput, ShardRequest, WireDType, WorkRequest,
};
use neuroshard_inference::spot_check::{InputLog, SpotCheckMaterial};
use neuroshard_inference::{ModelWeights, Precision, Shard};
use neuroshard_network::{NetworkKeypair, PeerId, ProviderInfo, ProviderRecord};
use neuroshard_primitives::crypto::keypair_from_uri;
use neuroshard_primitives::{
    slot_lottery, AccountId, BalancesCall, Block, Call, Era, GradientReceipt, GradientReceiptBody,
    Hash, Keypair, LayerRange, MaterialStatement, PonwCall, Receipt, ReceiptBody, Recomputation,
    SignedExtrinsic, SignedStatement, SigningContext, SpotCheckEvidence, StakingCall, UNIT,
};
use neuroshard_serving::payments::PaymentLedger;
use neuroshard_serving::protocol::{
    BillingTerms, InferenceCall, InferenceReply, ShardCall, ShardReply, SignedMaterial,
    TrainingCall, TrainingReply, VerificationCall, VerificationReply,
};
use neuroshard_serving::server::ShardServer;
use neuroshard_trainer::board::TrainingBoard;
use neuroshard_training::codec::{self, WireFloat};
use neuroshard_training::{AdapterSnapshot, Contribution};
use parity_scale_codec::Encode;
use sp_core::Pair as _;
use std::sync::Arc;

fn pair(uri: &str) -> Keypair {
    keypair_from_uri(uri).unwrap()
}

fn account(uri: &str) -> AccountId {
    pair(uri).public().into()
}

fn layers(start: u16, end: u16) -> LayerRange {
    LayerRange::new(start, end).unwrap()
}

pub fn receipt_body() -> ReceiptBody {
    ReceiptBody {
        worker: account("//Bob"),
        client: account("//Dave"),
        model: Hash::repeat_byte(9),
        layers: layers(0, 10),
        session: [3; 16],
        epoch: 0,
        seq: 1,
        position_start: 0,
        position_end: 32,
        commitment: Hash::repeat_byte(4),
        input_commitment: Hash::repeat_byte(5),
        adapter: None,
    }
}

/// //Bob's signed statement of material for [`receipt_body`] (not what it commits to).
fn sample_statement() -> SignedStatement {
    MaterialStatement::of(receipt_body().id(), Hash::repeat_byte(6), &[1, 2, 3])
        .sign(&pair("//Bob"))
}

/// A `Mismatch`'s evidence: a statement, a committed and a recomputed commitment.
fn sample_evidence() -> SpotCheckEvidence {
    let c = |norm: f32| {
        let per: Vec<PositionTopK> = (0..32)
            .map(|_| PositionTopK {
                norm,
                top: vec![(0, norm), (1, 1.0), (2, 0.5), (3, 0.25)],
            })
            .collect();
        ActivationCommitment::from_positions(0, &per).encode()
    };
    SpotCheckEvidence::Recomputed(Recomputation {
        statement: sample_statement(),
        claimed: c(2.0),
        recomputed: c(4.0),
    })
}

pub fn receipts() -> Vec<Vec<u8>> {
    vec![Receipt::sign(receipt_body(), &pair("//Bob"), &pair("//Dave")).encode()]
}

pub fn extrinsics(h: &Harness) -> Vec<Vec<u8>> {
    let genesis = h.client.genesis_hash();
    let receipt = Receipt::sign(receipt_body(), &pair("//Bob"), &pair("//Dave"));
    [
        Call::Balances(BalancesCall::transfer_allow_death {
            dest: account("//Bob"),
            value: UNIT,
        }),
        Call::Ponw(PonwCall::SubmitReceipts {
            receipts: vec![receipt.clone(), receipt],
        }),
        Call::Ponw(PonwCall::RegisterWorker {
            model: Hash::repeat_byte(9),
            shards: vec![layers(0, 10), layers(20, 30)],
        }),
        Call::Staking(StakingCall::Bond { amount: 5 * UNIT }),
        Call::Ponw(PonwCall::SubmitSpotCheck {
            receipt: receipt_body().id(),
            verdict: neuroshard_primitives::SpotCheckVerdict::Mismatch,
            evidence: sample_evidence(),
        }),
        Call::Ponw(PonwCall::SubmitSpotCheck {
            receipt: receipt_body().id(),
            verdict: neuroshard_primitives::SpotCheckVerdict::Mismatch,
            evidence: SpotCheckEvidence::Disowned(sample_statement()),
        }),
        Call::Ponw(PonwCall::DeregisterWorker),
        Call::Ponw(PonwCall::Heartbeat {
            minute: 7,
            chunk: vec![1, 2, 3],
            proof: vec![Some(Hash::repeat_byte(4)), None],
        }),
        Call::Ponw(PonwCall::ReportLiveness {
            minute: 7,
            answered: vec![(account("//Bob"), 41_000), (account("//Eve"), 0)],
            failed: vec![account("//Charlie"), account("//Dave")],
        }),
        Call::Ponw(PonwCall::BondMore { amount: 3 * UNIT }),
    ]
    .into_iter()
    .enumerate()
    .map(|(nonce, call)| {
        // Immortal and untipped, and mortal with a tip, in turn.
        let context = match nonce % 2 {
            0 => SigningContext::immortal(genesis),
            _ => SigningContext {
                genesis,
                birth: genesis,
                era: Era::mortal(64, 0),
                tip: nonce as u128 * UNIT,
            },
        };
        SignedExtrinsic::sign_in(&pair("//Alice"), &context, nonce as u64, call).encode()
    })
    .collect()
}

/// Authors a few blocks on the harness chain (one with a transfer) and returns them.
fn authored_blocks(h: &Harness) -> Vec<Block> {
    let alice = pair("//Alice");
    let genesis = h.client.genesis_hash();
    let xt = SignedExtrinsic::sign(
        &alice,
        &genesis,
        h.client.next_nonce(&account("//Alice")).unwrap(),
        Call::Balances(BalancesCall::transfer_allow_death {
            dest: account("//Charlie"),
            value: UNIT,
        }),
    );
    let _ = h.client.submit(xt);
    let mut blocks = vec![];
    for _ in 0..3 {
        let slot = h.client.best_header().slot() + 1;
        if let Some(header) = h.client.author_block(slot, &alice).unwrap() {
            blocks.push(h.client.block(&header.hash()).unwrap().unwrap());
        }
    }
    assert!(!blocks.is_empty(), "Alice authors on the dev chain");
    blocks
}

pub fn blocks(h: &Harness) -> Vec<Vec<u8>> {
    authored_blocks(h).iter().map(|b| b.encode()).collect()
}

/// Headers in Substrate's layout (digest with the PreRuntime and Seal items).
pub fn headers(h: &Harness) -> Vec<Vec<u8>> {
    authored_blocks(h)
        .iter()
        .map(|b| b.header.encode())
        .collect()
}

/// Headers as `chain_getHeader` returns them.
pub fn header_jsons(h: &Harness) -> Vec<String> {
    authored_blocks(h)
        .iter()
        .map(|b| {
            serde_json::to_string(&neuroshard_rpc::types::HeaderJson::from(&b.header))
                .expect("a header serializes")
        })
        .collect()
}

/// `System.Events` values of freshly authored blocks (the first holds a transfer).
pub fn event_records(h: &Harness) -> Vec<Vec<u8>> {
    let key = neuroshard_runtime::system::EVENTS.key();
    let stored: Vec<Vec<u8>> = authored_blocks(h)
        .iter()
        .filter_map(|b| h.client.state_at(&b.hash()).ok().flatten())
        .filter_map(|state| neuroshard_support::ReadState::get(&state, &key))
        .collect();
    assert!(!stored.is_empty(), "the transfer's block has events");
    stored
}

pub fn votes(h: &Harness) -> Vec<Vec<u8>> {
    let head = h.client.best_header();
    vec![Vote::sign(
        &pair("//Alice"),
        &h.client.genesis_hash(),
        head.hash(),
        head.number,
    )
    .encode()]
}

pub fn sync_requests() -> Vec<Vec<u8>> {
    [(0, 64), (1, 1), (u64::MAX, u32::MAX)]
        .into_iter()
        .map(|(from, max)| SyncRequest { from, max }.encode())
        .collect()
}

pub fn sync_responses(h: &Harness) -> Vec<Vec<u8>> {
    vec![
        SyncResponse {
            blocks: authored_blocks(h),
        }
        .encode(),
        SyncResponse { blocks: vec![] }.encode(),
    ]
}

pub fn gradient_receipts() -> Vec<Vec<u8>> {
    let body = GradientReceiptBody {
        worker: account("//Bob"),
        model: Hash::repeat_byte(9),
        layers: layers(2, 4),
        round: 3,
        base_adapter: Hash::repeat_byte(1),
        pseudo_gradient: Hash::repeat_byte(2),
        payload_bytes: 1000,
        loss_before: 3_000_000,
        loss_after: 2_500_000,
    };
    vec![GradientReceipt::sign(body, &pair("//Bob")).encode()]
}

pub fn provider_records() -> Vec<Vec<u8>> {
    let key = NetworkKeypair::generate_ed25519();
    let mut info = ProviderInfo::bound(
        &key.public().to_peer_id(),
        &pair("//Bob"),
        Hash::repeat_byte(9),
        vec![layers(0, 10)],
        1_700_000_000_000,
    );
    info.addresses = vec!["/ip4/198.18.0.1/tcp/30333"
        .parse::<neuroshard_network::Multiaddr>()
        .unwrap()
        .to_vec()];
    vec![ProviderRecord::sign(info, &key).encode()]
}

pub fn vrf_signatures(h: &Harness) -> Vec<Vec<u8>> {
    vec![slot_lottery::sign(&pair("//Alice"), &h.client.best_header().hash(), 7).encode()]
}

/// The model hash the tiny shard server answers for.
const TINY_MODEL: Hash = Hash::repeat_byte(0x71);

/// A shard server holding layers 0-3 and 3-6 of a tiny random Llama (hidden size 64),
/// taking payment with the harness chain's escrow.
pub fn tiny_shard_server(h: &Harness) -> Arc<ShardServer> {
    let dir = tempfile::tempdir().unwrap();
    let source = neuroshard_inference::tiny::write_tiny_llama(dir.path(), 5).unwrap();
    let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
    let shards = [(0, 3), (3, 6)]
        .into_iter()
        .map(|(a, b)| Arc::new(Shard::new(weights.slice(a..b).unwrap(), TINY_MODEL).unwrap()))
        .collect();
    let ledger = PaymentLedger::new(account("//Bob"), TINY_MODEL, h.client.clone());
    Arc::new(
        ShardServer::new(shards, pair("//Bob"), Arc::new(tiny_training_board()))
            .with_payments(Arc::new(ledger)),
    )
}

/// The peer every sample shard call comes from.
pub fn shard_peer() -> PeerId {
    PeerId::from_public_key(
        &NetworkKeypair::ed25519_from_bytes([7; 32])
            .unwrap()
            .public(),
    )
}

/// A payment (Dave paying Bob) for positions 0..5 of the sample session's layers 0-3.
fn sample_payment() -> ShardCall {
    let body = ReceiptBody {
        worker: account("//Bob"),
        client: account("//Dave"),
        model: TINY_MODEL,
        layers: layers(0, 3),
        session: [8; 16],
        epoch: 0,
        seq: 0,
        position_start: 0,
        position_end: 5,
        commitment: Hash::repeat_byte(1),
        input_commitment: Hash::repeat_byte(2),
        adapter: None,
    };
    InferenceCall::Pay {
        model: TINY_MODEL,
        layers: layers(0, 3),
        receipts: vec![Receipt::sign(body, &pair("//Bob"), &pair("//Dave"))],
    }
    .into()
}

/// The pseudo-gradient and adapter the tiny server's training board holds.
const TINY_ADAPTER_LEN: usize = 16;

fn tiny_training_board() -> TrainingBoard {
    let board = TrainingBoard::default();
    let values: Vec<f32> = (0..TINY_ADAPTER_LEN).map(|i| i as f32 * 0.5).collect();
    let payload = codec::encode(&values, WireFloat::F32, 1 << 20).unwrap();
    let body = GradientReceiptBody {
        worker: account("//Bob"),
        model: TINY_MODEL,
        layers: layers(3, 6),
        round: 2,
        base_adapter: Hash::repeat_byte(4),
        pseudo_gradient: codec::hash(&payload),
        payload_bytes: payload.len() as u32,
        loss_before: 3_000_000,
        loss_after: 2_500_000,
    };
    board.insert_contribution(Contribution {
        receipt: GradientReceipt::sign(body, &pair("//Bob")),
        payload,
    });
    let snapshot = AdapterSnapshot {
        round: 3,
        theta: values.clone(),
        velocity: values,
    };
    let encoded = snapshot.encode(1 << 20).unwrap();
    board.insert_snapshot(
        TINY_MODEL,
        layers(3, 6),
        Hash::repeat_byte(6),
        snapshot,
        encoded,
    );
    board
}

fn tiny_gradient_hash() -> Hash {
    let values: Vec<f32> = (0..TINY_ADAPTER_LEN).map(|i| i as f32 * 0.5).collect();
    codec::hash(&codec::encode(&values, WireFloat::F32, 1 << 20).unwrap())
}

fn forward(layers_: LayerRange, start_pos: u32, input: ShardInput, head: HeadMode) -> ShardCall {
    ShardCall::Inference(InferenceCall::Forward(vec![ShardRequest {
        model: TINY_MODEL,
        session: [8; 16],
        layers: layers_,
        start_pos,
        input,
        head,
        wire: WireDType::F32,
    }]))
}

fn hidden(positions: u32) -> Activations {
    let values: Vec<u8> = (0..positions * 64)
        .flat_map(|i| ((i as f32 * 0.01).sin()).to_le_bytes())
        .collect();
    Activations {
        dtype: WireDType::F32,
        shape: vec![1, positions, 64],
        data: values,
    }
}

pub fn shard_calls() -> Vec<Vec<u8>> {
    [
        forward(
            layers(0, 3),
            0,
            ShardInput::Tokens(vec![1, 17, 42, 9]),
            HeadMode::Argmax,
        ),
        forward(
            layers(0, 3),
            4,
            ShardInput::Tokens(vec![5]),
            HeadMode::Argmax,
        ),
        forward(
            layers(3, 6),
            0,
            ShardInput::Hidden(hidden(4)),
            HeadMode::Argmax,
        ),
        forward(
            layers(3, 6),
            4,
            ShardInput::Hidden(hidden(1)),
            HeadMode::Logits,
        ),
        InferenceCall::Receipt {
            model: TINY_MODEL,
            layers: layers(0, 3),
            work: WorkRequest {
                session: [8; 16],
                until: 5,
            },
            terms: BillingTerms {
                client: account("//Dave"),
                epoch: 0,
            },
        }
        .into(),
        sample_payment(),
        InferenceCall::EndSession {
            model: TINY_MODEL,
            layers: layers(3, 6),
            session: [8; 16],
        }
        .into(),
        VerificationCall::Material {
            body: ReceiptBody {
                model: TINY_MODEL,
                layers: layers(0, 3),
                ..receipt_body()
            },
        }
        .into(),
        TrainingCall::Gradient {
            model: TINY_MODEL,
            layers: layers(3, 6),
            round: 2,
            pseudo_gradient: tiny_gradient_hash(),
        }
        .into(),
        TrainingCall::Adapter {
            model: TINY_MODEL,
            layers: layers(3, 6),
            version: Hash::repeat_byte(6),
        }
        .into(),
    ]
    .iter()
    .map(|c| c.encode())
    .collect()
}

/// What an honest server answers to the sample calls.
pub fn shard_replies(server: &ShardServer) -> Vec<Vec<u8>> {
    let calls = shard_calls();
    let mut replies: Vec<Vec<u8>> = calls
        .iter()
        .map(|bytes| {
            let call = <ShardCall as parity_scale_codec::Decode>::decode(&mut &bytes[..]).unwrap();
            server.answer(shard_peer(), call).encode()
        })
        .collect();
    replies.push(ShardReply::Error("unknown shard".into()).encode());
    replies.push(
        ShardReply::Inference(InferenceReply::CapacityProbe(vec![
            (0, vec![1, 0, 0, 0, 0, 3, 0, 0, 0, 0]),
            (u32::MAX, vec![]),
        ]))
        .encode(),
    );
    replies.push(
        ShardReply::Verification(VerificationReply::Material(Some(SignedMaterial::sign(
            receipt_body().id(),
            SpotCheckMaterial {
                inputs: InputLog::Tokens(vec![1, 2, 3]),
                commitment: vec![1, 0, 0, 0, 0, 3, 0, 0, 0, 0],
            },
            &pair("//Bob"),
        ))))
        .encode(),
    );
    replies
}

/// Does with a reply what a pipeline client does: tensors from activations, the
/// commitment from its bytes.
pub fn consume_reply(reply: &ShardReply) {
    match reply {
        ShardReply::Inference(InferenceReply::Forward(replies)) => {
            for resp in replies.iter().flatten() {
                match &resp.output {
                    ShardOutput::Hidden(a) | ShardOutput::Logits(a) => {
                        let _ = a.to_tensor();
                    }
                    ShardOutput::Argmax(_) => {}
                }
            }
        }
        ShardReply::Inference(InferenceReply::Receipt { commitment, .. }) => {
            let _ = ActivationCommitment::decode(commitment);
        }
        ShardReply::Inference(InferenceReply::CapacityProbe(jobs)) => {
            // What a prober does with a sampled job's commitment.
            for (_, commitment) in jobs {
                let _ = ActivationCommitment::decode(commitment);
            }
        }
        ShardReply::Verification(VerificationReply::Material(Some(m))) => {
            // What a checker does before it uses the material.
            let _ = m.is_signed_by(receipt_body().id(), &receipt_body().worker);
            let _ = m.material.inputs.digest(m.material.inputs.len());
            let _ = ActivationCommitment::decode(&m.material.commitment);
        }
        ShardReply::Training(TrainingReply::Gradient(Some((receipt, payload)))) => {
            // What a holder checks before it keeps a fetched pseudo-gradient.
            let _ = receipt.signature_is_valid();
            let _ = codec::hash(payload) == receipt.body.pseudo_gradient;
            let _ = codec::decode(payload, TINY_ADAPTER_LEN, 1 << 20);
        }
        ShardReply::Training(TrainingReply::Adapter(Some(bytes))) => {
            let _ = AdapterSnapshot::decode(bytes, TINY_ADAPTER_LEN, 1 << 20);
        }
        ShardReply::Verification(VerificationReply::Material(None))
        | ShardReply::Training(TrainingReply::Gradient(None) | TrainingReply::Adapter(None))
        | ShardReply::Inference(InferenceReply::Done)
        | ShardReply::Error(_) => {}
    }
}

/// JSON-RPC requests with plausible params for every method.
pub fn rpc_requests(h: &Harness, methods: &[String]) -> Vec<String> {
    let head = format!("0x{}", hex::encode(h.client.best_header().hash()));
    let alice = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";
    let xt = format!("0x{}", hex::encode(&extrinsics(h)[0]));
    let params = [
        serde_json::json!([]),
        serde_json::json!([0]),
        serde_json::json!([head]),
        serde_json::json!([alice]),
        serde_json::json!([alice, head]),
        serde_json::json!([xt]),
        serde_json::json!(["0x26aa394eea5630e07c48ae0c9558cef7", head]),
        serde_json::json!(["0x26aa394eea5630e07c48ae0c9558cef7", 10, null, head]),
        serde_json::json!([["0x26aa394eea5630e07c48ae0c9558cef7"], head]),
        serde_json::json!([
            "AccountNonceApi_account_nonce",
            format!("0x{}", "d4".repeat(32))
        ]),
        serde_json::json!(["Metadata_metadata_at_version", "0x0e000000", head]),
        serde_json::json!([
            "TransactionPaymentApi_query_info",
            format!("{xt}{}", hex::encode(9u32.to_le_bytes())),
            head
        ]),
        serde_json::json!({"prompt": "hi", "max_tokens": 4, "draft": "none"}),
    ];
    methods
        .iter()
        .flat_map(|m| {
            params.iter().map(move |p| {
                serde_json::json!({"jsonrpc": "2.0", "id": 1, "method": m, "params": p}).to_string()
            })
        })
        .collect()
}

/// OpenAI-style request bodies for `path`.
pub fn api_bodies(path: &str) -> Vec<String> {
    let bodies = if path.ends_with("chat/completions") {
        vec![
            serde_json::json!({"model": "smollm2-135m-instruct", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8}),
            serde_json::json!({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [{"type": "text", "text": "Hello"}]}], "stream": true, "stream_options": {"include_usage": true}, "temperature": 0.7, "seed": 3, "stop": ["\n"]}),
        ]
    } else {
        vec![
            serde_json::json!({"prompt": "The capital of France is", "max_tokens": 8, "temperature": 0}),
            serde_json::json!({"prompt": ["a", "b"], "stream": true, "stop": "x"}),
        ]
    };
    bodies.iter().map(|b| b.to_string()).collect()
}
