//! The node's miner loop for Proof of Neural Work: while the node's key is a registered
//! worker, it shows possession of the model every wall-clock minute with one heartbeat
//! extrinsic that answers the minute's challenge (a chunk of one of the layers it
//! serves, with its Merkle path; see [`crate::possession`]). That is half of the minute's
//! proof of uptime; the other half is answering the liveness probe of the validator
//! drawn for the worker (`neuroshard_verifier::prober`). Heartbeats are fee-free and accepted once
//! per minute. One that misses its minute (the block landed in the
//! next one) is dropped by the author and the next minute is claimed instead; nothing
//! is retried with a stale nonce.

use crate::possession::ModelPossession;
use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::{AccountId, Call, Hash, Keypair, PonwCall};
use neuroshard_runtime::ponw;
use sp_core::Pair as _;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::{debug, info, warn};

/// Runs until `shutdown` turns true.
pub async fn run(
    client: Arc<Client>,
    key: Keypair,
    model: Arc<ModelPossession>,
    mut shutdown: watch::Receiver<bool>,
) {
    let worker: AccountId = key.public().into();
    // Hash of the last heartbeat handed to the pool.
    let mut submitted: Option<Hash> = None;
    loop {
        if !client.wait_half_slot(&mut shutdown).await {
            return;
        }
        match heartbeat_due(&client, &worker, submitted) {
            Ok(Some(challenge)) => {
                let minute = challenge.minute;
                let result = model
                    .answer(challenge.layer, challenge.chunk_index)
                    .and_then(|(chunk, proof)| {
                        let call = Call::Ponw(PonwCall::Heartbeat {
                            minute,
                            chunk,
                            proof,
                        });
                        client.sign_and_submit(&key, call)
                    });
                match result {
                    Ok(hash) => {
                        info!(minute, hash = %hex_hash(&hash), "uptime heartbeat submitted");
                        submitted = Some(hash);
                    }
                    Err(e) => debug!(minute, error = %e, "heartbeat not submitted"),
                }
            }
            Ok(None) => {}
            Err(e) => warn!(error = %e, "miner could not read the chain"),
        }
    }
}

/// The challenge to answer now, if any: the worker is registered, the chain has opened
/// the minute the next block falls in, that minute is not credited yet, and no
/// heartbeat is still pending.
fn heartbeat_due(
    client: &Client,
    worker: &AccountId,
    submitted: Option<Hash>,
) -> anyhow::Result<Option<ponw::Challenge>> {
    let minute = client.next_block_minute()?;
    let (info, challenge) = client
        .with_best_state(|state, _| (ponw::worker(state, worker), ponw::challenge(state, worker)));
    let (Some(info), Some(challenge)) = (info?, challenge?) else {
        return Ok(None);
    };
    if challenge.minute != minute || info.last_heartbeat_minute.is_some_and(|m| m >= minute) {
        return Ok(None);
    }
    // While an earlier heartbeat is pending, wait: it is either included or dropped at
    // the next block, and a new one signed now would sit behind its nonce.
    if let Some(hash) = submitted {
        if client.pending().iter().any(|xt| xt.hash() == hash) {
            return Ok(None);
        }
    }
    Ok(Some(challenge))
}
