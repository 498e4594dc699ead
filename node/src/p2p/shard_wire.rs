//! Shards across processes: the `/neuroshard/activations/1` request-response messages, the
//! client side ([`RemoteShard`], a [`ShardTransport`] over the network handle) and the
//! server side ([`ShardServer`], answering calls with this node's local shards).
//!
//! Receipts cross the network signed: the serving node signs the receipt body with its
//! chain key, and the client checks that signature, the worker account it expected, the
//! session and the commitment before it counter-signs. Validators fetch the spot-check
//! material of sampled receipts over the same protocol ([`fetch_material`]), and the
//! holders of a trained shard exchange pseudo-gradients and adapter snapshots over it
//! (Proof of Training, see `crate::training`). Every byte from a peer is decoded
//! with SCALE under the protocol's size cap; nothing here panics on bad input.

use crate::training::board::TrainingBoard;
use neuroshard_inference::commitment::ActivationCommitment;
use neuroshard_inference::messages::{
    ReceiptRequest, SessionReceipt, ShardOutput, ShardRequest, ShardResponse,
};
use neuroshard_inference::shard::Shard;
use neuroshard_inference::spot_check::SpotCheckMaterial;
use neuroshard_inference::transport::ShardTransport;
use neuroshard_inference::InferenceError;
use neuroshard_network::{NetworkHandle, PeerId, Protocol};
use neuroshard_primitives::{
    crypto, AccountId, GradientReceipt, Hash, Keypair, LayerRange, ReceiptBody, SessionId,
    Signature,
};
use parity_scale_codec::{Decode, DecodeAll, Encode};
use parking_lot::Mutex;
use sp_core::Pair as _;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A call from a pipeline client to a shard provider.
#[derive(Clone, Debug, Encode, Decode)]
pub enum ShardCall {
    Forward(ShardRequest),
    Receipt {
        model: Hash,
        layers: LayerRange,
        request: ReceiptRequest,
    },
    EndSession {
        model: Hash,
        layers: LayerRange,
        session: SessionId,
    },
    /// A validator asks for the spot-check material of a receipt this node issued.
    Material {
        model: Hash,
        layers: LayerRange,
        receipt: Hash,
    },
    /// A holder of a shard asks for a pseudo-gradient of a training round (Proof of
    /// Training), named by its hash as the chain recorded it.
    Gradient {
        model: Hash,
        layers: LayerRange,
        round: u32,
        pseudo_gradient: Hash,
    },
    /// A node asks for the snapshot of an adapter version (to serve it, to resume
    /// training from it, or to spot-check a receipt made with it).
    Adapter {
        model: Hash,
        layers: LayerRange,
        version: Hash,
    },
}

/// A provider's answer.
#[derive(Clone, Debug, Encode, Decode)]
pub enum ShardReply {
    Forward(ShardResponse),
    Receipt {
        body: ReceiptBody,
        /// The encoded [`ActivationCommitment`] whose hash the body carries.
        commitment: Vec<u8>,
        worker_signature: Signature,
    },
    Done,
    /// The material of the receipt asked for (`None`: not archived).
    Material(Option<SpotCheckMaterial>),
    /// The gradient receipt and encoded pseudo-gradient asked for (`None`: not held).
    Gradient(Option<(GradientReceipt, Vec<u8>)>),
    /// The encoded `AdapterSnapshot` of the version asked for (`None`: not held).
    Adapter(Option<Vec<u8>>),
    /// The provider could not serve the call (unknown shard, lost session, bad input).
    Error(String),
}

/// A shard served by another node, reached through the network.
pub struct RemoteShard {
    network: NetworkHandle,
    runtime: tokio::runtime::Handle,
    peer: PeerId,
    /// The chain account the provider's records say signs its receipts.
    worker: AccountId,
    model: Hash,
    layers: LayerRange,
}

impl RemoteShard {
    pub fn new(
        network: NetworkHandle,
        runtime: tokio::runtime::Handle,
        peer: PeerId,
        worker: AccountId,
        model: Hash,
        layers: LayerRange,
    ) -> Self {
        Self {
            network,
            runtime,
            peer,
            worker,
            model,
            layers,
        }
    }

    pub fn peer(&self) -> PeerId {
        self.peer
    }

    fn fail(&self, reason: impl Into<String>) -> InferenceError {
        InferenceError::Transport {
            shard: self.name(),
            reason: reason.into(),
        }
    }

    /// Sends `call` and decodes the reply; runs on a blocking thread (the pipeline's).
    fn call(&self, call: &ShardCall) -> Result<ShardReply, InferenceError> {
        let bytes = futures::executor::block_on(self.network.request(
            self.peer,
            Protocol::Activations,
            call.encode(),
        ))
        .map_err(|e| self.fail(e.to_string()))?;
        match ShardReply::decode_all(&mut &bytes[..]) {
            Ok(ShardReply::Error(e)) => Err(self.fail(format!("provider says: {e}"))),
            Ok(reply) => Ok(reply),
            Err(e) => {
                self.network
                    .penalise(self.peer, neuroshard_network::Offence::Malformed);
                Err(self.fail(format!("undecodable reply: {e}")))
            }
        }
    }
}

impl ShardTransport for RemoteShard {
    fn name(&self) -> String {
        format!("{}:{}", short_peer(&self.peer), self.layers)
    }

    fn layers(&self) -> LayerRange {
        self.layers
    }

    fn model(&self) -> Hash {
        self.model
    }

    fn forward(&self, req: &ShardRequest) -> Result<ShardResponse, InferenceError> {
        match self.call(&ShardCall::Forward(req.clone()))? {
            ShardReply::Forward(resp)
                if resp.session == req.session && resp.start_pos == req.start_pos =>
            {
                Ok(resp)
            }
            _ => Err(self.fail("reply does not answer the request")),
        }
    }

    fn receipt(&self, req: &ReceiptRequest) -> Result<SessionReceipt, InferenceError> {
        let call = ShardCall::Receipt {
            model: self.model,
            layers: self.layers,
            request: req.clone(),
        };
        let ShardReply::Receipt {
            body,
            commitment,
            worker_signature,
        } = self.call(&call)?
        else {
            return Err(self.fail("reply is not a receipt"));
        };
        let commitment = ActivationCommitment::decode(&commitment)
            .ok_or_else(|| self.fail("receipt commitment does not decode"))?;
        let expected = body.worker == self.worker
            && body.client == req.client
            && body.session == req.session
            && body.epoch == req.epoch
            && body.model == self.model
            && body.layers == self.layers
            && body.position_end <= req.until
            && body.commitment == commitment.hash();
        if !expected {
            return Err(self.fail("receipt does not match the work asked for"));
        }
        if !crypto::verify(&worker_signature, &body.worker_payload(), &body.worker) {
            return Err(self.fail("receipt's worker signature is invalid"));
        }
        Ok(SessionReceipt {
            body,
            commitment,
            worker_signature: Some(worker_signature),
        })
    }

    fn end_session(&self, session: &SessionId) {
        let call = ShardCall::EndSession {
            model: self.model,
            layers: self.layers,
            session: *session,
        };
        let (network, peer) = (self.network.clone(), self.peer);
        self.runtime.spawn(async move {
            let _ = network
                .request(peer, Protocol::Activations, call.encode())
                .await;
        });
    }
}

/// Sends `call` to `peer` from async code and decodes the reply; an error reply or an
/// undecodable one (whose sender is penalised) is an `Err`.
pub async fn ask(
    network: &NetworkHandle,
    peer: PeerId,
    call: &ShardCall,
) -> anyhow::Result<ShardReply> {
    let bytes = network
        .request(peer, Protocol::Activations, call.encode())
        .await?;
    match ShardReply::decode_all(&mut &bytes[..]) {
        Ok(ShardReply::Error(e)) => anyhow::bail!("peer says: {e}"),
        Ok(reply) => Ok(reply),
        Err(e) => {
            network.penalise(peer, neuroshard_network::Offence::Malformed);
            anyhow::bail!("undecodable reply: {e}")
        }
    }
}

/// Asks `peer` for the spot-check material of receipt `id` (body `body`): `Ok(None)`
/// when the worker answers that it has none, `Err` when it could not be asked or its
/// answer is not an answer (the caller retries, then gives a `NoAnswer` verdict).
pub async fn fetch_material(
    network: &NetworkHandle,
    peer: PeerId,
    body: &ReceiptBody,
    id: &Hash,
) -> anyhow::Result<Option<SpotCheckMaterial>> {
    let call = ShardCall::Material {
        model: body.model,
        layers: body.layers,
        receipt: *id,
    };
    match ask(network, peer, &call).await? {
        ShardReply::Material(found) => Ok(found),
        _ => anyhow::bail!("reply is not spot-check material"),
    }
}

/// First characters of a peer id's base58 tail, for logs and names.
pub fn short_peer(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len().saturating_sub(8)..].to_string()
}

/// Sessions idle for longer than this no longer count as load.
const SESSION_IDLE: Duration = Duration::from_secs(120);
/// Window over which throughput is measured.
const THROUGHPUT_WINDOW: Duration = Duration::from_secs(60);

/// Load figures a provider announces in its DHT record.
#[derive(Default)]
struct ServeStats {
    sessions: HashMap<SessionId, Instant>,
    /// (when, positions) of recent forward calls.
    recent: VecDeque<(Instant, u32)>,
}

/// Answers shard calls from peers with this node's shards, signing receipts with `key`,
/// and Proof-of-Training calls from the node's training board.
pub struct ShardServer {
    shards: Vec<Arc<Shard>>,
    key: Keypair,
    stats: Mutex<ServeStats>,
    training: Arc<TrainingBoard>,
}

impl ShardServer {
    pub fn new(shards: Vec<Arc<Shard>>, key: Keypair, training: Arc<TrainingBoard>) -> Self {
        Self {
            shards,
            key,
            stats: Mutex::new(ServeStats::default()),
            training,
        }
    }

    /// (active sessions, throughput in milli-positions per second over the last minute).
    pub fn stats(&self) -> (u32, u64) {
        let mut stats = self.stats.lock();
        let now = Instant::now();
        stats
            .sessions
            .retain(|_, last| now.duration_since(*last) < SESSION_IDLE);
        while stats
            .recent
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > THROUGHPUT_WINDOW)
        {
            stats.recent.pop_front();
        }
        let positions: u64 = stats.recent.iter().map(|(_, n)| u64::from(*n)).sum();
        let milli = positions * 1000 / THROUGHPUT_WINDOW.as_secs();
        (stats.sessions.len() as u32, milli)
    }

    fn record_forward(&self, session: SessionId, positions: u32) {
        let mut stats = self.stats.lock();
        let now = Instant::now();
        if stats.sessions.insert(session, now).is_none() {
            tracing::info!(session = %hex::encode(&session[..4]), "serving a new session for a peer");
        }
        stats.recent.push_back((now, positions));
        if stats.recent.len() > 100_000 {
            stats.recent.pop_front();
        }
    }

    fn shard(&self, model: &Hash, layers: LayerRange) -> Result<&Arc<Shard>, String> {
        self.shards
            .iter()
            .find(|s| s.model() == *model && s.layers() == layers)
            .ok_or_else(|| format!("this node does not serve layers {layers} of that model"))
    }

    /// Answers one call (on a blocking thread: forwards run the model); failures
    /// become [`ShardReply::Error`].
    pub fn answer(&self, call: ShardCall) -> ShardReply {
        self.try_answer(call).unwrap_or_else(ShardReply::Error)
    }

    fn try_answer(&self, call: ShardCall) -> Result<ShardReply, String> {
        match call {
            ShardCall::Forward(req) => {
                let shard = self.shard(&req.model, req.layers)?;
                let reply = shard.handle(&req).map_err(|e| e.to_string())?;
                let positions = match &reply.output {
                    ShardOutput::Argmax(v) => v.len() as u32,
                    ShardOutput::Hidden(a) | ShardOutput::Logits(a) => a
                        .shape
                        .get(a.shape.len().saturating_sub(2))
                        .copied()
                        .unwrap_or(0),
                };
                self.record_forward(req.session, positions);
                Ok(ShardReply::Forward(reply))
            }
            ShardCall::Receipt {
                model,
                layers,
                request,
            } => {
                let shard = self.shard(&model, layers)?;
                let worker: AccountId = self.key.public().into();
                let receipt = shard.receipt(worker, &request).map_err(|e| e.to_string())?;
                Ok(ShardReply::Receipt {
                    worker_signature: receipt.body.sign_as_worker(&self.key),
                    body: receipt.body,
                    commitment: receipt.commitment.encode(),
                })
            }
            ShardCall::EndSession {
                model,
                layers,
                session,
            } => {
                self.shard(&model, layers)?.end_session(&session);
                self.stats.lock().sessions.remove(&session);
                Ok(ShardReply::Done)
            }
            ShardCall::Material {
                model,
                layers,
                receipt,
            } => Ok(ShardReply::Material(
                self.shard(&model, layers)?.material(&receipt),
            )),
            ShardCall::Gradient {
                model,
                layers,
                round,
                pseudo_gradient,
            } => Ok(ShardReply::Gradient(
                self.training
                    .contribution(model, layers, round, &pseudo_gradient)
                    .map(|c| (c.receipt, c.payload)),
            )),
            ShardCall::Adapter {
                model,
                layers,
                version,
            } => Ok(ShardReply::Adapter(
                self.training.snapshot_bytes(model, layers, &version),
            )),
        }
    }
}
