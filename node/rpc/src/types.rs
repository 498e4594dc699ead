//! JSON shapes of the RPC API and the parsing of user-supplied parameters.
//!
//! Shapes follow Substrate where one exists: headers carry `parentHash`, `number` as a
//! hex string ("0x1a"), `stateRoot`, `extrinsicsRoot` and `digest.logs` (hex SCALE
//! digest items); blocks come as
//! `{block: {header, extrinsics: [hex]}, justifications}`. Hashes and bytes are
//! 0x-prefixed hex, balances decimal strings (u128 does not fit a JSON number).
//!
//! Parameters are taken as loose JSON values and parsed here, so a wrong type or a
//! malformed hash gets an error message that says what was expected.

use crate::error::invalid_params;
use jsonrpsee::types::ErrorObjectOwned;
use neuroshard_client::hex_hash;
use neuroshard_primitives::{
    crypto, AccountId, Block, BlockNumber, Digest, DigestItem, Event, Hash, Header,
};
use parity_scale_codec::{DecodeAll, Encode};
use serde::{Deserialize, Serialize};

/// A header as JSON, exactly Substrate's: `{parentHash, number, stateRoot,
/// extrinsicsRoot, digest: {logs}}`. Slot, author, VRF signature and seal are in the
/// digest logs (see `neuroshard_primitives::digest`); the block hash is not a field,
/// it is blake2-256 of the header's SCALE encoding ([`HeaderJson::to_header`]).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HeaderJson {
    pub parent_hash: String,
    pub number: String,
    pub state_root: String,
    pub extrinsics_root: String,
    pub digest: DigestJson,
}

/// A header digest: `{logs: [hex SCALE DigestItem]}`.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct DigestJson {
    pub logs: Vec<String>,
}

impl HeaderJson {
    /// Rebuilds the header (it must be a NeuroShard header: the digest holds the
    /// PreRuntime and Seal items under `NSHD`). Its `hash()` is the block hash.
    pub fn to_header(&self) -> anyhow::Result<Header> {
        use anyhow::Context as _;
        let hash = |what: &str, text: &str| -> anyhow::Result<Hash> {
            let bytes = hex_bytes(what, text)?;
            anyhow::ensure!(bytes.len() == 32, "{what} is not 32 bytes");
            Ok(Hash::from_slice(&bytes))
        };
        let logs = self
            .digest
            .logs
            .iter()
            .map(|log| {
                let bytes = hex_bytes("digest log", log)?;
                DigestItem::decode_all(&mut bytes.as_slice())
                    .map_err(|e| anyhow::anyhow!("a digest log is not a DigestItem: {e}"))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        Ok(Header {
            parent_hash: hash("parentHash", &self.parent_hash)?,
            number: u64::from_str_radix(self.number.trim_start_matches("0x"), 16)
                .with_context(|| format!("bad block number {:?}", self.number))?,
            state_root: hash("stateRoot", &self.state_root)?,
            extrinsics_root: hash("extrinsicsRoot", &self.extrinsics_root)?,
            digest: Digest::from_logs(&logs)?,
        })
    }
}

fn hex_bytes(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    use anyhow::Context as _;
    hex::decode(text.trim_start_matches("0x")).with_context(|| format!("{what} is not hex"))
}

/// `state_getRuntimeVersion`'s answer (Substrate's `RuntimeVersion` JSON).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RuntimeVersionJson {
    pub spec_name: String,
    pub impl_name: String,
    pub authoring_version: u32,
    pub spec_version: u32,
    pub impl_version: u32,
    /// `[api id (0x hex of 8 bytes), version]` pairs.
    pub apis: Vec<(String, u32)>,
    pub transaction_version: u32,
    pub system_version: u8,
}

impl From<&neuroshard_runtime::metadata::RuntimeVersion> for RuntimeVersionJson {
    fn from(v: &neuroshard_runtime::metadata::RuntimeVersion) -> Self {
        Self {
            spec_name: v.spec_name.clone(),
            impl_name: v.impl_name.clone(),
            authoring_version: v.authoring_version,
            spec_version: v.spec_version,
            impl_version: v.impl_version,
            apis: v
                .apis
                .iter()
                .map(|(id, version)| (format!("0x{}", hex::encode(id)), *version))
                .collect(),
            transaction_version: v.transaction_version,
            system_version: v.system_version,
        }
    }
}

impl From<&Header> for HeaderJson {
    fn from(h: &Header) -> Self {
        Self {
            parent_hash: hex_hash(&h.parent_hash),
            number: format!("0x{:x}", h.number),
            state_root: hex_hash(&h.state_root),
            extrinsics_root: hex_hash(&h.extrinsics_root),
            digest: DigestJson {
                logs: h
                    .digest
                    .logs()
                    .iter()
                    .map(|log| format!("0x{}", hex::encode(log.encode())))
                    .collect(),
            },
        }
    }
}

/// A block body as JSON: the header and the SCALE-encoded extrinsics.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BlockJson {
    pub header: HeaderJson,
    pub extrinsics: Vec<String>,
}

/// The engine id of NeuroShard's finality votes in a block's justifications (`b"NSFN"`,
/// as GRANDPA's is `b"FRNK"`).
pub const FINALITY_ENGINE_ID: [u8; 4] = *b"NSFN";

/// `chain_getBlock`'s answer (Substrate's `SignedBlock`).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct SignedBlockJson {
    pub block: BlockJson,
    /// Substrate's `Justifications`: `[[engine id, proof]]`, here one entry under
    /// [`FINALITY_ENGINE_ID`] whose proof is the votes that finalized the block (hex
    /// SCALE `finality::Justification`); `null` when it was not finalized by votes (dev
    /// chains finalize instantly).
    pub justifications: Option<Vec<(String, String)>>,
}

impl From<&Block> for SignedBlockJson {
    fn from(b: &Block) -> Self {
        Self {
            block: BlockJson {
                header: HeaderJson::from(&b.header),
                extrinsics: b
                    .extrinsics
                    .iter()
                    .map(|x| format!("0x{}", hex::encode(x.encode())))
                    .collect(),
            },
            justifications: None,
        }
    }
}

/// `neuroshard_account`'s answer, base units as decimal strings.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct AccountJson {
    pub free: String,
    pub reserved: String,
    pub bonded: String,
    pub nonce: u64,
    /// Part of `reserved` held as the worker bond.
    #[serde(rename = "workerBond")]
    pub worker_bond: String,
    /// Total ever slashed from the worker bond (failed spot checks).
    pub slashed: String,
    /// Part of `reserved` still held from a deregistered worker's bond.
    #[serde(rename = "retiredBond")]
    pub retired_bond: String,
    /// What the worker's unsettled receipts will pay it; forfeited by a failed check.
    #[serde(rename = "heldEarnings")]
    pub held_earnings: String,
    /// What the worker owes of hidden checks (`no_answer`), paid by its next settling
    /// receipts (or its bond if it leaves owing).
    pub owed: String,
    /// The bond its unsettled receipts need; receipts beyond `workerBond` are refused.
    pub exposure: String,
}

/// One entry of `neuroshard_rewards`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct RewardJson {
    pub account: String,
    pub epoch: u32,
    pub tokens: u64,
    pub layer_tokens: u64,
    pub uptime_minutes: u64,
    /// Uptime credit in millionths of a minute (what the uptime part pays for).
    pub uptime_credit: u64,
    pub training: String,
    pub reward: String,
}

impl RewardJson {
    /// The reward entries among a block's events.
    pub fn from_events(events: &[Event]) -> Vec<Self> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::RewardPaid {
                    account,
                    epoch,
                    tokens,
                    layer_tokens,
                    uptime_minutes,
                    uptime_credit,
                    training,
                    reward,
                } => Some(Self {
                    account: crypto::ss58(account),
                    epoch: *epoch,
                    tokens: *tokens,
                    layer_tokens: *layer_tokens,
                    uptime_minutes: *uptime_minutes,
                    uptime_credit: *uptime_credit,
                    training: training.to_string(),
                    reward: reward.to_string(),
                }),
                _ => None,
            })
            .collect()
    }
}

/// `system_health`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct HealthJson {
    pub peers: u64,
    pub is_syncing: bool,
    pub should_have_peers: bool,
}

/// One connected peer in `system_peers`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct PeerJson {
    pub peer_id: String,
    pub addresses: Vec<String>,
    pub agent: Option<String>,
    /// Last ping round-trip time.
    pub rtt_ms: Option<f64>,
    /// Misbehaviour score (0 is clean; banned at -100).
    pub score: i32,
    /// How our best connection to it runs: "direct", "relayed" (through a relay's
    /// circuit) or "direct-after-punch" (a hole punch replaced a relayed one).
    pub link: Option<String>,
    /// The relay's peer id, when that connection is relayed.
    pub relay: Option<String>,
    /// How many seconds that connection has been open.
    pub link_secs: Option<u64>,
}

/// One shard provider in `neuroshard_shards`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardProviderJson {
    pub peer_id: String,
    /// SS58 address of the account that signs its receipts.
    pub account: String,
    /// Layer ranges, e.g. "0-10".
    pub shards: Vec<String>,
    pub active_sessions: u32,
    /// Recent throughput, tokens per second.
    pub tokens_per_second: f64,
    pub rtt_ms: Option<f64>,
    /// True for this node itself.
    pub local: bool,
    /// Where its provider record says it can be reached (relayed addresses for a
    /// provider behind NAT).
    pub addresses: Vec<String>,
}

/// `neuroshard_shards`' answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ShardsJson {
    /// Model hash (0x hex).
    pub model: String,
    pub num_layers: u16,
    pub providers: Vec<ShardProviderJson>,
}

/// One key's entry in `state_getReadProof`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct KeyProofJson {
    pub key: String,
    /// The value, or `null` when the key is absent (absence is not proven).
    pub value: Option<String>,
    /// SCALE-encoded `neuroshard_support::ReadProof`, or `null` when absent.
    pub proof: Option<String>,
}

/// `state_getReadProof`'s answer.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ReadProofJson {
    pub at: String,
    pub state_root: String,
    pub proof: Vec<KeyProofJson>,
}

/// `state_queryStorageAt`'s answer: the block read and each key with its value (`None`
/// when absent), all hex.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct StorageChangeSetJson {
    pub block: String,
    pub changes: Vec<(String, Option<String>)>,
}

/// Decodes 0x-prefixed (or bare) hex.
pub fn parse_hex(what: &str, text: &str) -> Result<Vec<u8>, ErrorObjectOwned> {
    let bare = text.strip_prefix("0x").unwrap_or(text);
    hex::decode(bare).map_err(|e| invalid_params(format!("{what} is not valid hex: {e}")))
}

/// Parses a 32-byte block hash.
pub fn parse_hash(text: &str) -> Result<Hash, ErrorObjectOwned> {
    let bytes = parse_hex("block hash", text)?;
    if bytes.len() != 32 {
        return Err(invalid_params(format!(
            "block hash must be 32 bytes, got {}",
            bytes.len()
        )));
    }
    Ok(Hash::from_slice(&bytes))
}

/// Parses an SS58 address or 0x public key.
pub fn parse_account(text: &str) -> Result<AccountId, ErrorObjectOwned> {
    crypto::parse_account(text).map_err(|e| invalid_params(e.to_string()))
}

/// A block reference given by the user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockRef {
    Hash(Hash),
    Number(BlockNumber),
}

/// Parses a block number: a JSON number, a decimal string or a 0x hex string.
pub fn parse_number(value: &serde_json::Value) -> Result<BlockNumber, ErrorObjectOwned> {
    let bad = || {
        invalid_params(format!(
            "expected a block number (integer, \"123\" or \"0x7b\"), got {value}"
        ))
    };
    match value {
        serde_json::Value::Number(n) => n.as_u64().ok_or_else(bad),
        serde_json::Value::String(s) => match s.strip_prefix("0x") {
            Some(h) => u64::from_str_radix(h, 16).map_err(|_| bad()),
            None => s.parse().map_err(|_| bad()),
        },
        _ => Err(bad()),
    }
}

/// Parses a block reference: a 32-byte 0x hash, or a block number in any form
/// [`parse_number`] takes.
pub fn parse_block_ref(value: &serde_json::Value) -> Result<BlockRef, ErrorObjectOwned> {
    if let serde_json::Value::String(s) = value {
        if s.len() == 66 && s.starts_with("0x") {
            return parse_hash(s).map(BlockRef::Hash);
        }
    }
    parse_number(value).map(BlockRef::Number).map_err(|_| {
        invalid_params(format!(
            "expected a block hash (0x + 64 hex digits) or a block number, got {value}"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn block_refs_parse() {
        assert_eq!(parse_block_ref(&json!(5)).unwrap(), BlockRef::Number(5));
        assert_eq!(
            parse_block_ref(&json!("0x1a")).unwrap(),
            BlockRef::Number(26)
        );
        assert_eq!(parse_block_ref(&json!("12")).unwrap(), BlockRef::Number(12));
        let h = format!("0x{}", "ab".repeat(32));
        assert_eq!(
            parse_block_ref(&json!(h)).unwrap(),
            BlockRef::Hash(Hash::repeat_byte(0xab))
        );
        assert!(parse_block_ref(&json!(true)).is_err());
        assert!(parse_block_ref(&json!(-1)).is_err());
        assert!(parse_block_ref(&json!("0xzz")).is_err());
        assert!(parse_hash("0x1234").is_err());
    }
}
