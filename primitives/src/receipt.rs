//! Inference receipts: "worker X ran layers [a, b) of model M for session S over
//! positions p..q, and its output activations hash to C", signed by the worker and
//! counter-signed by the client that asked for the work. The inference engine produces
//! them; the runtime's PoNW pallet verifies and pays them.

use crate::crypto::{blake2_256, AccountId, Hash, Keypair, Signature, SignedMessage};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};
use sp_core::Pair as _;
use std::fmt;
use thiserror::Error;

/// Identifies one generation session on the pipeline (chosen by the client).
pub type SessionId = [u8; 16];

/// Domain separators so a worker signature can never be replayed as a client one.
const WORKER_DOMAIN: &[u8] = b"neuroshard/receipt/worker/v1";
const CLIENT_DOMAIN: &[u8] = b"neuroshard/receipt/client/v1";

/// Upper bound on the positions one receipt may cover (a whole context window).
pub const MAX_POSITIONS_PER_RECEIPT: u32 = 1 << 16;

/// A half-open range of transformer layers `[start, end)`, written "start-end".
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Encode,
    Decode,
    Serialize,
    Deserialize,
    scale_info::TypeInfo,
)]
pub struct LayerRange {
    pub start: u16,
    pub end: u16,
}

/// Problems with a receipt or layer range's shape (before any signature is checked).
#[derive(Debug, Error, PartialEq, Eq, Clone)]
pub enum ReceiptError {
    #[error("layer range {0}-{1} is empty or reversed")]
    EmptyLayers(u16, u16),
    #[error("layer range {0:?} is not of the form START-END")]
    BadLayerText(String),
    #[error("positions {0}..{1} are empty or reversed")]
    EmptyPositions(u32, u32),
    #[error("receipt covers {0} positions, more than the limit {MAX_POSITIONS_PER_RECEIPT}")]
    TooManyPositions(u32),
}

impl LayerRange {
    pub fn new(start: u16, end: u16) -> Result<Self, ReceiptError> {
        if start >= end {
            return Err(ReceiptError::EmptyLayers(start, end));
        }
        Ok(Self { start, end })
    }

    /// Number of layers in the range.
    pub fn len(&self) -> u16 {
        self.end.saturating_sub(self.start)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// True when `other` lies entirely inside `self`.
    pub fn contains(&self, other: &LayerRange) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// Parses "0-10".
    pub fn parse(text: &str) -> Result<Self, ReceiptError> {
        let bad = || ReceiptError::BadLayerText(text.to_string());
        let (a, b) = text.trim().split_once('-').ok_or_else(bad)?;
        let start = a.trim().parse().map_err(|_| bad())?;
        let end = b.trim().parse().map_err(|_| bad())?;
        Self::new(start, end)
    }

    /// Parses a comma-separated list "0-10,10-20".
    pub fn parse_list(text: &str) -> Result<Vec<Self>, ReceiptError> {
        text.split(',')
            .filter(|s| !s.trim().is_empty())
            .map(Self::parse)
            .collect()
    }
}

impl fmt::Display for LayerRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

/// What a receipt attests; both signatures cover exactly these bytes (plus a domain tag).
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct ReceiptBody {
    /// The node that ran the layers and is paid for them.
    pub worker: AccountId,
    /// The party that requested the work and counter-signs it.
    pub client: AccountId,
    /// Hash of the model file (the chain spec's model hash).
    pub model: Hash,
    /// The layers the worker ran.
    pub layers: LayerRange,
    /// The client's generation session.
    pub session: SessionId,
    /// Ledger epoch the work was done in; receipts are only accepted in a short window.
    pub epoch: u32,
    /// Receipt sequence number of this (worker, session, layers); strictly increasing,
    /// so a receipt can be paid once only.
    pub seq: u32,
    /// First position (token index in the session) processed.
    pub position_start: u32,
    /// One past the last position processed.
    pub position_end: u32,
    /// Hash of the worker's commitment to its output activations (top-k values).
    pub commitment: Hash,
    /// Digest of the inputs the worker was sent for positions `0..position_end` (token
    /// ids or hidden states; the client checks it against what it sent before it
    /// counter-signs). A spot check re-runs the layers on exactly these inputs.
    pub input_commitment: Hash,
    /// The trained adapter version (Proof of Training) merged into the layers' weights
    /// when the work was done; `None`: the base model. A spot check re-runs the layers
    /// with the same version.
    pub adapter: Option<Hash>,
}

impl ReceiptBody {
    /// Number of token positions the worker processed.
    pub fn tokens(&self) -> u32 {
        self.position_end.saturating_sub(self.position_start)
    }

    /// Checks the shape: layers and positions non-empty and within bounds.
    pub fn check_shape(&self) -> Result<(), ReceiptError> {
        LayerRange::new(self.layers.start, self.layers.end)?;
        if self.position_start >= self.position_end {
            return Err(ReceiptError::EmptyPositions(
                self.position_start,
                self.position_end,
            ));
        }
        if self.tokens() > MAX_POSITIONS_PER_RECEIPT {
            return Err(ReceiptError::TooManyPositions(self.tokens()));
        }
        Ok(())
    }

    /// The unique id of the work attested (hash of the body).
    pub fn id(&self) -> Hash {
        blake2_256(&self.encode())
    }

    /// Bytes the worker signs.
    pub fn worker_payload(&self) -> Vec<u8> {
        (WORKER_DOMAIN, self).encode()
    }

    /// Bytes the client signs.
    pub fn client_payload(&self) -> Vec<u8> {
        (CLIENT_DOMAIN, self).encode()
    }

    /// The worker's signature over this body.
    pub fn sign_as_worker(&self, worker: &Keypair) -> Signature {
        worker.sign(&self.worker_payload())
    }

    /// The client's counter-signature over this body.
    pub fn sign_as_client(&self, client: &Keypair) -> Signature {
        client.sign(&self.client_payload())
    }
}

/// A receipt signed by its worker and counter-signed by its client.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct Receipt {
    pub body: ReceiptBody,
    pub worker_signature: Signature,
    pub client_signature: Signature,
}

impl Receipt {
    /// Signs `body` with both parties' keys (tests, benches and the dev node, where the
    /// client and the workers live in one process).
    pub fn sign(body: ReceiptBody, worker: &Keypair, client: &Keypair) -> Self {
        Self {
            worker_signature: body.sign_as_worker(worker),
            client_signature: body.sign_as_client(client),
            body,
        }
    }

    pub fn id(&self) -> Hash {
        self.body.id()
    }

    /// The two signatures of this receipt, ready for batch verification.
    pub fn signed_messages(&self) -> [SignedMessage<'_>; 2] {
        [
            SignedMessage {
                signature: &self.worker_signature,
                message: self.body.worker_payload(),
                signer: &self.body.worker,
            },
            SignedMessage {
                signature: &self.client_signature,
                message: self.body.client_payload(),
                signer: &self.body.client,
            },
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::{keypair_from_uri, verify_batch};

    fn body() -> ReceiptBody {
        ReceiptBody {
            worker: keypair_from_uri("//Bob").unwrap().public().into(),
            client: keypair_from_uri("//Alice").unwrap().public().into(),
            model: blake2_256(b"model"),
            layers: LayerRange::new(10, 20).unwrap(),
            session: [7; 16],
            epoch: 3,
            seq: 0,
            position_start: 0,
            position_end: 32,
            commitment: blake2_256(b"activations"),
            input_commitment: blake2_256(b"inputs"),
            adapter: None,
        }
    }

    #[test]
    fn signatures_are_domain_separated() {
        let bob = keypair_from_uri("//Bob").unwrap();
        let alice = keypair_from_uri("//Alice").unwrap();
        let receipt = Receipt::sign(body(), &bob, &alice);
        let msgs = receipt.signed_messages();
        assert_eq!(verify_batch(&msgs), Ok(()));
        // The worker's signature does not pass as a client signature over the same body.
        let mut swapped = receipt.clone();
        swapped.client_signature = receipt.body.sign_as_worker(&alice);
        assert_eq!(verify_batch(&swapped.signed_messages()), Err(1));
    }

    #[test]
    fn layer_ranges_parse() {
        assert_eq!(
            LayerRange::parse_list("0-10,10-20, 20-30").unwrap(),
            vec![
                LayerRange { start: 0, end: 10 },
                LayerRange { start: 10, end: 20 },
                LayerRange { start: 20, end: 30 }
            ]
        );
        assert!(LayerRange::parse("10-10").is_err());
        assert!(LayerRange::parse("a-b").is_err());
        assert!(LayerRange::parse("5").is_err());
        assert_eq!(LayerRange::parse("3-7").unwrap().to_string(), "3-7");
    }

    #[test]
    fn shape_checks() {
        let mut b = body();
        assert_eq!(b.check_shape(), Ok(()));
        b.position_end = 0;
        assert!(b.check_shape().is_err());
        b.position_end = MAX_POSITIONS_PER_RECEIPT + 1;
        assert!(b.check_shape().is_err());
    }
}
