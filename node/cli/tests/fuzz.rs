//! Time-bounded fuzzing of everything that takes bytes from the network or from RPC and
//! HTTP users: gossip (extrinsics, blocks, finality votes), headers (SCALE, in
//! Substrate's layout, and `chain_getHeader` JSON) and `System.Events` records, block sync requests and
//! responses, shard calls and replies (activations), provider records, JSON-RPC params
//! and OpenAI-style request bodies; and GGUF model files (a user's own, but a file from
//! anywhere: loading a bad one must be an error, never a panic).
//!
//! Each target starts from valid encodings and mutates them (bit flips, byte overwrites,
//! truncation, insertion, duplication, splices of two samples) or draws plain random
//! bytes, decodes them with the node's own decoders and, when they decode, hands the
//! value on to the code that acts on it: the shard server running a tiny random Llama,
//! block import on a dev chain, signature checks, the RPC module, the HTTP router. Any
//! panic fails the test and prints the seed and the input. Values that decode must
//! re-encode to bytes that decode to the same value.
//!
//! Budget: `NEUROSHARD_FUZZ_SECS` seconds per target (default 2, the CI mode; e.g. 300
//! for a long run), seed `NEUROSHARD_FUZZ_SEED` (default: the clock, printed).

mod fuzzing;

use fuzzing::{fuzz_bytes, fuzz_json, round_trips, samples, Harness};
use neuroshard_client::finality::Vote;
use neuroshard_client::sync::{self, SyncResponse};
use neuroshard_network::records::ProviderRecord;
use neuroshard_primitives::{
    Block, GradientReceipt, Header, Receipt, SignedExtrinsic, VrfSignature,
};
use neuroshard_rpc::types::HeaderJson;
use neuroshard_runtime::events::EventRecord;
use neuroshard_serving::protocol::{ShardCall, ShardReply};
use parity_scale_codec::DecodeAll;

#[test]
fn gossiped_extrinsics_blocks_and_votes() {
    let h = Harness::new();
    let genesis = h.client.genesis_hash();
    fuzz_bytes("extrinsic", &samples::extrinsics(&h), |bytes| {
        if let Ok(xt) = SignedExtrinsic::decode_all(&mut &bytes[..]) {
            round_trips(&xt);
            let _ = xt.signature_is_valid(&genesis, &genesis);
            let _ = h.client.submit_from_network(xt);
        }
    });
    fuzz_bytes("block", &samples::blocks(&h), |bytes| {
        if let Ok(block) = Block::decode_all(&mut &bytes[..]) {
            round_trips(&block);
            let _ = block.header.seal_is_valid();
            let _ = sync::offer_block(&h.client, &block);
        }
    });
    fuzz_bytes("vote", &samples::votes(&h), |bytes| {
        if let Ok(vote) = Vote::decode_all(&mut &bytes[..]) {
            round_trips(&vote);
            let _ = vote.verify(&genesis);
        }
    });
}

#[test]
fn headers_and_event_records() {
    let h = Harness::new();
    fuzz_bytes("header", &samples::headers(&h), |bytes| {
        if let Ok(header) = Header::decode_all(&mut &bytes[..]) {
            round_trips(&header);
            let _ = header.seal_is_valid();
            let _ = header.hash();
        }
    });
    fuzz_json("header json", &samples::header_jsons(&h), |text| {
        if let Ok(json) = serde_json::from_str::<HeaderJson>(text) {
            if let Ok(header) = json.to_header() {
                round_trips(&header);
                let _ = header.seal_is_valid();
            }
        }
    });
    fuzz_bytes("event records", &samples::event_records(&h), |bytes| {
        if let Ok(records) = Vec::<EventRecord>::decode_all(&mut &bytes[..]) {
            round_trips(&records);
        }
    });
}

#[test]
fn block_sync_requests_and_responses() {
    let h = Harness::new();
    fuzz_bytes("sync request", &samples::sync_requests(), |bytes| {
        let _ = sync::answer(&h.client, bytes);
    });
    fuzz_bytes("sync response", &samples::sync_responses(&h), |bytes| {
        if let Ok(resp) = SyncResponse::decode_all(&mut &bytes[..]) {
            for block in &resp.blocks {
                let _ = sync::offer_block(&h.client, block);
            }
        }
    });
}

#[test]
fn shard_calls_and_replies() {
    let h = Harness::new();
    let server = samples::tiny_shard_server(&h);
    let mut answered = [0u64; 2];
    fuzz_bytes("shard call", &samples::shard_calls(), |bytes| {
        if let Ok(call) = ShardCall::decode_all(&mut &bytes[..]) {
            let reply = server.answer(samples::shard_peer(), call);
            answered[usize::from(matches!(reply, ShardReply::Error(_)))] += 1;
        }
    });
    eprintln!(
        "  shard calls served {}, refused {}",
        answered[0], answered[1]
    );
    let replies = samples::shard_replies(&server);
    fuzz_bytes("shard reply", &replies, |bytes| {
        if let Ok(reply) = ShardReply::decode_all(&mut &bytes[..]) {
            samples::consume_reply(&reply);
        }
    });
}

#[test]
fn receipts_records_and_vrf_signatures() {
    let h = Harness::new();
    fuzz_bytes("receipt", &samples::receipts(), |bytes| {
        if let Ok(r) = Receipt::decode_all(&mut &bytes[..]) {
            round_trips(&r);
            let _ = r.body.check_shape();
            let _ = neuroshard_primitives::crypto::verify_batch(&r.signed_messages());
        }
    });
    fuzz_bytes("gradient receipt", &samples::gradient_receipts(), |bytes| {
        if let Ok(r) = GradientReceipt::decode_all(&mut &bytes[..]) {
            round_trips(&r);
            let _ = r.signature_is_valid();
        }
    });
    fuzz_bytes("provider record", &samples::provider_records(), |bytes| {
        let _ = ProviderRecord::decode_verified(bytes);
    });
    fuzz_bytes("vrf signature", &samples::vrf_signatures(&h), |bytes| {
        if let Ok(sig) = VrfSignature::decode_all(&mut &bytes[..]) {
            round_trips(&sig);
            let who = neuroshard_primitives::AccountId::from([7; 32]);
            let _ = neuroshard_primitives::slot_lottery::verify(&who, &Default::default(), 1, &sig);
        }
    });
}

#[test]
fn gguf_model_files() {
    use neuroshard_inference::{tiny, ModelSource, ModelWeights, Precision};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    tiny::write_tiny_gguf(&path, tiny::MIXED_FORMATS).unwrap();
    let sample = std::fs::read(&path).unwrap();
    let (mut loaded, mut refused) = (0u64, 0u64);
    fuzz_bytes("gguf file", &[sample], |bytes| {
        std::fs::write(&path, bytes).unwrap();
        match ModelWeights::load(&ModelSource::Gguf(path.clone()), None, Precision::Native) {
            Ok(_) => loaded += 1,
            Err(_) => refused += 1,
        }
    });
    eprintln!("  gguf files loaded {loaded}, refused {refused}");
}

#[test]
fn json_rpc_params() {
    let h = Harness::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let module = h.rpc_module();
    let methods: Vec<String> = module.method_names().map(str::to_string).collect();
    let (mut results, mut errors) = (0u64, 0u64);
    fuzz_json("json-rpc", &samples::rpc_requests(&h, &methods), |text| {
        // The response must be JSON-RPC: a result or an error object, never a panic.
        let response = rt.block_on(module.raw_json_request(text, 16));
        if let Ok((body, _subscription)) = response {
            let body = body.get();
            let v: serde_json::Value =
                serde_json::from_str(body).unwrap_or_else(|e| panic!("not JSON ({e}): {body}"));
            if v.get("result").is_some() {
                results += 1;
            } else {
                assert!(v.get("error").is_some(), "{body}");
                errors += 1;
            }
        }
    });
    eprintln!("  json-rpc: {results} results, {errors} errors");
}

#[test]
fn http_api_bodies() {
    let h = Harness::new();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let router = h.api_router();
    for path in ["/v1/completions", "/v1/chat/completions"] {
        let mut statuses = std::collections::BTreeMap::new();
        fuzz_json(path, &samples::api_bodies(path), |text| {
            let status = rt.block_on(fuzzing::post(&router, path, text));
            assert!(
                status.is_client_error() || status.is_server_error() || status.is_success(),
                "{status}"
            );
            *statuses.entry(status.as_u16()).or_insert(0u64) += 1;
        });
        eprintln!("  {path}: statuses {statuses:?}");
    }
}
