//! Raw storage keys of the items RPC users most often read with `state_getStorage`
//! (values are SCALE-encoded; see docs/RPC.md).

use neuroshard_primitives::AccountId;

/// Key of an account record (`System.Account`, Substrate's `AccountInfo`; decode it
/// with `balances::AccountData::from_stored`).
pub fn account(who: &AccountId) -> Vec<u8> {
    neuroshard_balances::ACCOUNTS.key(who)
}

/// Key of the total issuance (u128).
pub fn total_issuance() -> Vec<u8> {
    neuroshard_balances::TOTAL_ISSUANCE.key()
}

/// Key of a worker's registration (`ponw::WorkerInfo`).
pub fn worker(who: &AccountId) -> Vec<u8> {
    neuroshard_ponw::WORKERS.key(who)
}

/// Key of an account's work tally in the current epoch (`ponw::WorkTally`).
pub fn tally(who: &AccountId) -> Vec<u8> {
    neuroshard_ponw::TALLIES.key(who)
}
