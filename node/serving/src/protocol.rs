//! The shard protocol (`/neuroshard/activations/6`, request-response): its messages,
//! grouped by the concern they serve, and the helpers that send them.
//!
//! - [`InferenceCall`]: a pipeline client runs a session's positions through a provider's
//!   shard, asks for its receipts, pays them (hands back the receipts counter-signed, at
//!   least every [`PAYMENT_INCREMENT`] positions, see [`crate::payments`]) and ends the
//!   session ([`crate::remote::RemoteShard`]);
//! - [`VerificationCall`]: a validator fetches the spot-check material of a receipt;
//! - [`TrainingCall`]: holders of a trained shard fetch each other's pseudo-gradients and
//!   adapter snapshots (Proof of Training).
//!
//! [`crate::server::ShardServer`] answers them. Every byte from a peer is decoded with
//! SCALE under the protocol's size cap; nothing here panics on bad input.

use neuroshard_inference::commitment::ActivationCommitment;
use neuroshard_inference::messages::{ShardRequest, ShardResponse, WorkRequest};
use neuroshard_inference::spot_check::SpotCheckMaterial;
use neuroshard_network::{NetworkHandle, Offence, PeerId, Protocol};
use neuroshard_primitives::{
    AccountId, GradientReceipt, Hash, Keypair, LayerRange, MaterialStatement, Receipt, ReceiptBody,
    SessionId, Signature, SignedStatement,
};
use parity_scale_codec::{Decode, DecodeAll, Encode};

/// A call from a peer to a shard provider.
#[derive(Clone, Debug, Encode, Decode)]
pub enum ShardCall {
    Inference(InferenceCall),
    Verification(VerificationCall),
    Training(TrainingCall),
}

/// A pipeline client's calls.
#[derive(Clone, Debug, Encode, Decode)]
pub enum InferenceCall {
    /// Run positions of several sessions through the shard, each session's request on
    /// its own (a micro-batch, at most [`MAX_FORWARD_SESSIONS`] distinct sessions of one
    /// model's layers, see [`check_forward_batch`]); the reply answers each in order.
    Forward(Vec<ShardRequest>),
    /// The worker's signed receipt for the session's work up to a position, billed
    /// under the client's terms.
    Receipt {
        model: Hash,
        layers: LayerRange,
        work: WorkRequest,
        terms: BillingTerms,
    },
    /// The session is over: free its cache.
    EndSession {
        model: Hash,
        layers: LayerRange,
        session: SessionId,
    },
    /// Payment: receipts of this provider's work on one session, counter-signed by the
    /// client (at most [`MAX_PAY_RECEIPTS`]). The provider keeps them, so it can submit
    /// them itself if the client does not, and serves the session's next positions.
    Pay {
        model: Hash,
        layers: LayerRange,
        receipts: Vec<Receipt>,
    },
    /// A validator's capacity probe (issue 21): run probe jobs for the probe's window
    /// and answer with their commitments (`neuroshard_inference::probe_window`).
    CapacityProbe(CapacityProbe),
}

/// A capacity probe, signed by the validator the chain drew to probe `worker` in
/// `minute` (see `ponw::prober_of`), so nobody else can make a provider spend its
/// window.
#[derive(Clone, Debug, Encode, Decode)]
pub struct CapacityProbe {
    pub model: Hash,
    pub layers: LayerRange,
    pub minute: u64,
    /// The probed account: a provider computes only its own account's probes.
    pub worker: AccountId,
    /// The account's probe seed of the minute (`ponw::probe_of`).
    pub input_seed: Hash,
    /// The prober's fresh random nonce: the jobs' inputs are unknown before the probe.
    pub nonce: Hash,
    pub positions: u32,
    /// The minute's probe instant (Unix milliseconds, `ponw::probe_instant_ms`): the
    /// window is `fires_at_ms .. fires_at_ms + window_ms` on the provider's clock, the
    /// same interval for every probe of the minute however late each arrives.
    pub fires_at_ms: u64,
    pub window_ms: u32,
    pub prober: AccountId,
    /// `prober`'s signature over [`CapacityProbe::signed_bytes`].
    pub signature: Signature,
}

impl CapacityProbe {
    /// What the prober signs: every field but the signature.
    pub fn signed_bytes(&self) -> Vec<u8> {
        (
            b"neuroshard/capacity-probe",
            self.model,
            self.layers,
            self.minute,
            &self.worker,
            self.input_seed,
            self.nonce,
            self.positions,
            self.fires_at_ms,
            self.window_ms,
            &self.prober,
        )
            .encode()
    }
}

/// A client pays (counter-signs the receipts so far, [`InferenceCall::Pay`]) as soon as
/// this many of a provider's computed positions are unpaid.
pub const PAYMENT_INCREMENT: u32 = 32;

/// Most positions one forward call carries when the route has other nodes' providers: a
/// longer prompt (or a failover's replay) is sent in pieces, paid between them.
pub const MAX_REQUEST: u32 = 128;

/// A provider serves a forward call only when, counting its positions, at most this many
/// of the session's positions are unpaid: one request plus one increment is all a
/// client ever gets on credit.
pub const MAX_CREDIT: u32 = MAX_REQUEST + PAYMENT_INCREMENT;

/// Most sessions one [`InferenceCall::Forward`] carries: a peer's shard-call budget
/// counts each session of a call as one call in flight (see [`forward_sessions`]), and
/// this is all of it.
pub const MAX_FORWARD_SESSIONS: usize = 16;

/// Checks a forward call's requests before any runs: at least one, at most
/// [`MAX_FORWARD_SESSIONS`], all for the same model and layers (one hop's shard), each
/// session at most once (its requests run in order, so two of one session in a call
/// would race).
pub fn check_forward_batch(requests: &[ShardRequest]) -> Result<(), String> {
    let Some(first) = requests.first() else {
        return Err("a forward call without requests".into());
    };
    if requests.len() > MAX_FORWARD_SESSIONS {
        return Err(format!(
            "a forward call of {} sessions (at most {MAX_FORWARD_SESSIONS})",
            requests.len()
        ));
    }
    if requests
        .iter()
        .any(|r| r.model != first.model || r.layers != first.layers)
    {
        return Err("a forward call's requests name different shards".into());
    }
    let mut sessions: Vec<SessionId> = requests.iter().map(|r| r.session).collect();
    sessions.sort_unstable();
    sessions.dedup();
    if sessions.len() != requests.len() {
        return Err("a forward call names a session twice".into());
    }
    Ok(())
}

/// How many sessions the encoded shard call `data` runs, read from its first bytes
/// without decoding the rest: the length of a forward call's request list (clamped to
/// at least 1), 1 for every other call and for bytes that are not a call (the budget
/// admits, the decoder then refuses them).
pub fn forward_sessions(data: &[u8]) -> u32 {
    use parity_scale_codec::Compact;
    // ShardCall::Inference = 0, InferenceCall::Forward = 0, then the list's length.
    match data {
        [0, 0, rest @ ..] => Compact::<u32>::decode(&mut &rest[..])
            .map(|c| c.0.max(1))
            .unwrap_or(1),
        _ => 1,
    }
}

/// Most receipts one [`InferenceCall::Pay`] carries.
pub const MAX_PAY_RECEIPTS: usize = 16;

/// The client's side of a receipt: who pays and in which epoch the work is billed.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct BillingTerms {
    pub client: AccountId,
    pub epoch: u32,
}

/// A receipt body signed by its worker, with the full commitment its body carries the
/// hash of (the decoded [`InferenceReply::Receipt`]); the client's billing checks it and
/// counter-signs.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkerReceipt {
    pub body: ReceiptBody,
    pub commitment: ActivationCommitment,
    pub worker_signature: Signature,
}

/// A validator's calls.
#[derive(Clone, Debug, Encode, Decode)]
pub enum VerificationCall {
    /// The spot-check material of the work receipt `body` attests (this node's worker's
    /// receipt; the material is archived under `billing::work_of(body).id()`), with the
    /// worker's signed statement of what it hands over (a verdict's evidence, see
    /// `neuroshard_primitives::evidence`).
    Material { body: ReceiptBody },
}

/// Spot-check material and the worker's signed statement of it.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub struct SignedMaterial {
    pub material: SpotCheckMaterial,
    pub statement: SignedStatement,
}

impl SignedMaterial {
    /// `material` for the receipt `receipt`, with `worker`'s statement of it.
    pub fn sign(receipt: Hash, material: SpotCheckMaterial, worker: &Keypair) -> Self {
        Self {
            statement: statement_of(receipt, &material).sign(worker),
            material,
        }
    }

    /// True when `worker` signed a statement of exactly this material for `receipt`.
    pub fn is_signed_by(&self, receipt: Hash, worker: &AccountId) -> bool {
        self.statement.statement == statement_of(receipt, &self.material)
            && self.statement.signed_by(worker)
    }
}

/// The statement of `material` handed over for `receipt`: its inputs' digest over all
/// their positions and its commitment's hash.
pub fn statement_of(receipt: Hash, material: &SpotCheckMaterial) -> MaterialStatement {
    let inputs = material
        .inputs
        .digest(material.inputs.len())
        .unwrap_or_default();
    MaterialStatement::of(receipt, inputs, &material.commitment)
}

/// Proof of Training's calls between the holders of a shard.
#[derive(Clone, Debug, Encode, Decode)]
pub enum TrainingCall {
    /// A pseudo-gradient of a training round, named by its hash as the chain recorded it.
    Gradient {
        model: Hash,
        layers: LayerRange,
        round: u32,
        pseudo_gradient: Hash,
    },
    /// The snapshot of an adapter version (to serve it, to resume training from it, or
    /// to spot-check a receipt made with it).
    Adapter {
        model: Hash,
        layers: LayerRange,
        version: Hash,
    },
}

/// A provider's answer.
#[derive(Clone, Debug, Encode, Decode)]
pub enum ShardReply {
    Inference(InferenceReply),
    Verification(VerificationReply),
    Training(TrainingReply),
    /// The provider could not serve the call (unknown shard, lost session, bad input).
    Error(String),
}

/// Answers to [`InferenceCall`]s. (Wire messages: decoded once and moved a few times,
/// so the variants' size difference costs nothing worth a box.)
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Encode, Decode)]
pub enum InferenceReply {
    /// Each request's answer, in the call's order: one session's failure (an unpaid
    /// session, a lost cache) does not fail the others.
    Forward(Vec<Result<ShardResponse, String>>),
    Receipt {
        body: ReceiptBody,
        /// The encoded `ActivationCommitment` whose hash the body carries.
        commitment: Vec<u8>,
        worker_signature: Signature,
    },
    Done,
    /// The jobs of a [`CapacityProbe`] finished within its window: (job, encoded
    /// `ActivationCommitment`), in job order.
    CapacityProbe(Vec<(u32, Vec<u8>)>),
}

/// Answers to [`VerificationCall`]s.
#[derive(Clone, Debug, Encode, Decode)]
pub enum VerificationReply {
    /// The material of the receipt asked for and the worker's statement of it (`None`:
    /// not archived).
    Material(Option<SignedMaterial>),
}

/// Answers to [`TrainingCall`]s.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, Encode, Decode)]
pub enum TrainingReply {
    /// The gradient receipt and encoded pseudo-gradient asked for (`None`: not held).
    Gradient(Option<(GradientReceipt, Vec<u8>)>),
    /// The encoded `AdapterSnapshot` of the version asked for (`None`: not held).
    Adapter(Option<Vec<u8>>),
}

impl From<InferenceCall> for ShardCall {
    fn from(call: InferenceCall) -> Self {
        ShardCall::Inference(call)
    }
}

impl From<VerificationCall> for ShardCall {
    fn from(call: VerificationCall) -> Self {
        ShardCall::Verification(call)
    }
}

impl From<TrainingCall> for ShardCall {
    fn from(call: TrainingCall) -> Self {
        ShardCall::Training(call)
    }
}

/// Sends `call` to `peer` from async code and decodes the reply; an error reply or an
/// undecodable one (whose sender is penalised) is an `Err`.
pub async fn ask(
    network: &NetworkHandle,
    peer: PeerId,
    call: impl Into<ShardCall>,
) -> anyhow::Result<ShardReply> {
    let bytes = network
        .request(peer, Protocol::Activations, call.into().encode())
        .await?;
    decode_reply(network, peer, &bytes).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Decodes a reply from `peer`: an error reply is an `Err` with the peer's message, an
/// undecodable one an `Err` that also penalises the peer.
pub fn decode_reply(
    network: &NetworkHandle,
    peer: PeerId,
    bytes: &[u8],
) -> Result<ShardReply, String> {
    match ShardReply::decode_all(&mut &bytes[..]) {
        Ok(ShardReply::Error(e)) => Err(format!("peer says: {e}")),
        Ok(reply) => Ok(reply),
        Err(e) => {
            network.penalise(peer, Offence::Malformed);
            Err(format!("undecodable reply: {e}"))
        }
    }
}

/// Asks `peer` for the spot-check material of the work receipt `body` attests:
/// `Ok(None)` when the worker answers that it has none, `Err` when it could not be asked
/// or its answer is not an answer, or not signed by the receipt's worker (the caller
/// retries, then gives a `NoAnswer` verdict).
pub async fn fetch_material(
    network: &NetworkHandle,
    peer: PeerId,
    body: &ReceiptBody,
) -> anyhow::Result<Option<SignedMaterial>> {
    let call = VerificationCall::Material { body: body.clone() };
    match ask(network, peer, call).await? {
        ShardReply::Verification(VerificationReply::Material(Some(found))) => {
            anyhow::ensure!(
                found.is_signed_by(body.id(), &body.worker),
                "the material's statement is not the worker's"
            );
            Ok(Some(found))
        }
        ShardReply::Verification(VerificationReply::Material(None)) => Ok(None),
        _ => anyhow::bail!("reply is not spot-check material"),
    }
}

/// First characters of a peer id's base58 tail, for logs and names.
pub fn short_peer(peer: &PeerId) -> String {
    let s = peer.to_base58();
    s[s.len().saturating_sub(8)..].to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_inference::messages::{HeadMode, ShardInput, WireDType};

    fn request(session: u8, layers: (u16, u16)) -> ShardRequest {
        ShardRequest {
            model: Hash::repeat_byte(1),
            session: [session; 16],
            layers: LayerRange::new(layers.0, layers.1).expect("a range"),
            start_pos: 0,
            input: ShardInput::Tokens(vec![1, 2]),
            head: HeadMode::Argmax,
            wire: WireDType::F32,
        }
    }

    #[test]
    fn a_forward_call_is_one_to_sixteen_distinct_sessions_of_one_shard() {
        let many = |n: u8| (0..n).map(|s| request(s, (0, 10))).collect::<Vec<_>>();
        assert!(check_forward_batch(&many(1)).is_ok());
        assert!(check_forward_batch(&many(16)).is_ok());
        assert!(check_forward_batch(&many(0)).is_err());
        assert!(check_forward_batch(&many(17)).is_err());
        let twice = vec![request(1, (0, 10)), request(1, (0, 10))];
        assert!(check_forward_batch(&twice).unwrap_err().contains("twice"));
        let mixed = vec![request(1, (0, 10)), request(2, (10, 20))];
        assert!(check_forward_batch(&mixed).is_err());
    }

    #[test]
    fn the_budget_reads_a_forward_calls_session_count_from_its_first_bytes() {
        let call = |n: u8| {
            ShardCall::Inference(InferenceCall::Forward(
                (0..n).map(|s| request(s, (0, 10))).collect(),
            ))
            .encode()
        };
        assert_eq!(forward_sessions(&call(3)), 3);
        assert_eq!(forward_sessions(&call(16)), 16);
        assert_eq!(forward_sessions(&call(0)), 1);
        // A hostile length prefix is read as it is (the budget refuses it unrun).
        let mut huge = vec![0u8, 0];
        huge.extend(parity_scale_codec::Compact(1_000_000u32).encode());
        assert_eq!(forward_sessions(&huge), 1_000_000);
        assert_eq!(forward_sessions(&[0, 0]), 1);
        let other = ShardCall::Inference(InferenceCall::EndSession {
            model: Hash::repeat_byte(1),
            layers: LayerRange::new(0, 10).expect("a range"),
            session: [1; 16],
        });
        assert_eq!(forward_sessions(&other.encode()), 1);
    }
}
