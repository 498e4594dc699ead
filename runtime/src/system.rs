//! The system part of the runtime: chain-wide parameters (slot length, epoch length,
//! size limits), the current block number and slot, the chain randomness the slot
//! lottery draws from (fed by every block's VRF output), and the derivation of a block's
//! context (epoch, wall-clock minute) from its header.

use neuroshard_primitives::{slot_lottery, AccountId, BlockNumber, Hash};
use neuroshard_support::{
    constant, BlockContext, Overlay, PalletDecl, ReadState, StorageError, StorageMap, StorageValue,
};
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Chain-wide parameters.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct SystemParams {
    /// Length of a consensus slot in milliseconds (dev: 2000).
    pub slot_duration_ms: u64,
    /// Blocks per reward epoch.
    pub epoch_length: BlockNumber,
    /// Largest encoded extrinsic accepted.
    pub max_extrinsic_bytes: u32,
    /// Largest total of encoded extrinsics in one block.
    pub max_block_bytes: u32,
}

pub const PARAMS: StorageValue<SystemParams> = StorageValue::new("System", "Params");
pub const NUMBER: StorageValue<BlockNumber> = StorageValue::new("System", "Number").value_query();
pub const SLOT: StorageValue<u64> = StorageValue::new("System", "Slot").value_query();
/// The chain randomness after the last executed block (zero at genesis).
pub const RANDOMNESS: StorageValue<Hash> = StorageValue::new("System", "Randomness").value_query();
/// The hashes of the last [`BLOCK_HASH_COUNT`] blocks before the current one, by number
/// (what mortal extrinsics sign as their era's birth block).
pub const BLOCK_HASH: StorageMap<BlockNumber, Hash> = StorageMap::new("System", "BlockHash");
/// The events of the last executed block (see [`crate::events`]); absent when it had
/// none.
pub const EVENTS: StorageValue<Vec<crate::events::EventRecord>> =
    StorageValue::new("System", "Events").value_query();

/// How many recent block hashes are kept: the longest useful era of a mortal extrinsic.
pub const BLOCK_HASH_COUNT: BlockNumber = 2400;

/// The System pallet's name, and its index (after the pallets with calls, whose indices
/// are their call variants').
pub const NAME: &str = "System";
pub const INDEX: u8 = 4;

/// The System pallet's declarations for the runtime metadata: the accounts (stored by
/// the balances pallet under this pallet's prefix, as in Substrate), the block number,
/// slot and randomness; constants from the chain's parameters.
pub fn metadata(state: &impl ReadState) -> Result<PalletDecl, StorageError> {
    let p = params(state)?;
    let ss58: u16 = neuroshard_primitives::crypto::SS58_PREFIX;
    Ok(PalletDecl::new(NAME, INDEX)
        .events::<crate::events::System>()
        .storage(vec![
            neuroshard_balances::ACCOUNTS.metadata("The full account information of an account."),
            NUMBER.metadata("Number of the last executed block."),
            SLOT.metadata("Slot of the last executed block."),
            RANDOMNESS.metadata("Chain randomness after the last executed block."),
            BLOCK_HASH.metadata("Hashes of the recent blocks before the current one."),
            EVENTS.metadata("The events of the last executed block."),
            PARAMS.metadata("Chain-wide parameters."),
        ])
        .constants(vec![
            constant("SS58Prefix", &ss58, "The SS58 address format of accounts."),
            constant(
                "BlockHashCount",
                &BLOCK_HASH_COUNT,
                "How many recent block hashes are kept (the longest era of a mortal extrinsic).",
            ),
            constant(
                "SlotDuration",
                &p.slot_duration_ms,
                "Milliseconds per slot.",
            ),
            constant("EpochLength", &p.epoch_length, "Blocks per reward epoch."),
            constant(
                "MaxExtrinsicBytes",
                &p.max_extrinsic_bytes,
                "Largest encoded extrinsic accepted.",
            ),
            constant(
                "MaxBlockBytes",
                &p.max_block_bytes,
                "Largest total of encoded extrinsics in a block.",
            ),
        ]))
}

/// Most nonces ahead of the account's current one the pool will hold.
pub const MAX_FUTURE_NONCES: u64 = 64;

pub fn params(state: &impl ReadState) -> Result<SystemParams, StorageError> {
    PARAMS.get(state)?.ok_or(StorageError {
        pallet: "System",
        item: "Params",
    })
}

/// Number of the last executed block (0 at genesis).
pub fn number(state: &impl ReadState) -> Result<BlockNumber, StorageError> {
    Ok(NUMBER.get(state)?.unwrap_or(0))
}

/// Slot of the last executed block (0 at genesis).
pub fn slot(state: &impl ReadState) -> Result<u64, StorageError> {
    Ok(SLOT.get(state)?.unwrap_or(0))
}

/// The chain randomness after the last executed block: what the next block's VRF signs
/// and the next slots' leaders are drawn from.
pub fn randomness(state: &impl ReadState) -> Result<Hash, StorageError> {
    Ok(RANDOMNESS.get(state)?.unwrap_or_default())
}

/// The wall-clock minute a block of `slot` falls in (what liveness is counted by).
pub fn minute_of_slot(p: &SystemParams, slot: u64) -> u64 {
    slot.saturating_mul(p.slot_duration_ms) / 60_000
}

/// The epoch a block with this number belongs to (epochs of `epoch_length` blocks; the
/// rewards of an epoch are paid in the first block of the next). The one definition
/// every caller uses: the runtime, billing, the explorer and the tests.
pub fn epoch_of(number: BlockNumber, epoch_length: BlockNumber) -> u32 {
    u32::try_from(number / epoch_length.max(1)).unwrap_or(u32::MAX)
}

/// The first block of `epoch`.
pub fn epoch_start(epoch: u32, epoch_length: BlockNumber) -> BlockNumber {
    BlockNumber::from(epoch).saturating_mul(epoch_length.max(1))
}

/// The context of a block with this number, parent, slot and author.
pub fn context(
    p: &SystemParams,
    number: BlockNumber,
    parent_hash: Hash,
    slot: u64,
    author: AccountId,
) -> BlockContext {
    BlockContext {
        number,
        parent_hash,
        slot,
        author,
        epoch: epoch_of(number, p.epoch_length),
        minute: minute_of_slot(p, slot),
        randomness: Hash::zero(),
    }
}

/// The hash of block `number`, if it is one of the last [`BLOCK_HASH_COUNT`] before the
/// current one.
pub fn block_hash(
    state: &impl ReadState,
    number: BlockNumber,
) -> Result<Option<Hash>, StorageError> {
    BLOCK_HASH.get(state, &number)
}

/// Records the block being executed (and its parent's hash, forgetting the hash that
/// falls out of the window) and mixes its (verified) VRF output into the chain
/// randomness.
pub fn on_initialize(
    overlay: &mut Overlay<'_>,
    ctx: &BlockContext,
    vrf_output: &Hash,
) -> Result<(), StorageError> {
    let previous = randomness(&*overlay)?;
    NUMBER.put(overlay, &ctx.number);
    if let Some(parent) = ctx.number.checked_sub(1) {
        BLOCK_HASH.insert(overlay, &parent, &ctx.parent_hash);
        if let Some(old) = parent.checked_sub(BLOCK_HASH_COUNT) {
            BLOCK_HASH.remove(overlay, &old);
        }
    }
    SLOT.put(overlay, &ctx.slot);
    RANDOMNESS.put(
        overlay,
        &slot_lottery::next_randomness(&previous, vrf_output),
    );
    Ok(())
}
