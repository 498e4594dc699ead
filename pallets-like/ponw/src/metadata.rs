//! The Proof-of-Neural-Work pallet's declarations for the runtime metadata: its calls
//! ([`PonwCall`]), errors, every storage item (key and value types come from their
//! `TypeInfo`) and its chain-spec parameters as a constant.

use crate::{Error, Params, Ponw, Result};
use neuroshard_primitives::PonwCall;
use neuroshard_support::{constant, Pallet, PalletDecl, ReadState};

/// The pallet's declarations; the constants are read from `state`.
pub fn metadata(state: &impl ReadState) -> Result<PalletDecl> {
    let p: Params = crate::params(state)?;
    Ok(PalletDecl::new(Ponw::NAME, Ponw::INDEX)
        .calls::<PonwCall>()
        .events::<Ponw>()
        .errors::<Error>()
        .storage(vec![
            crate::PARAMS.metadata("The pallet's chain-spec parameters."),
            crate::CURRENT_EPOCH.metadata("The epoch whose work the tallies accumulate."),
            crate::escrow::ESCROWS.metadata("Clients' escrows paying for inference."),
            crate::liveness::MINUTE_SEED.metadata("The current minute and its challenge seed."),
            crate::receipts::SESSIONS.metadata("Positions paid per (worker, session, layers)."),
            crate::rewards::TALLIES.metadata("Work of the current epoch per account."),
            crate::settlement::HELD.metadata("Receipts whose check window is open."),
            crate::settlement::HOLDINGS.metadata("Held earnings and exposure per worker."),
            crate::settlement::DRAWS.metadata("Receipt ids drawn for a check at a block."),
            crate::settlement::SETTLEMENTS.metadata("Receipt ids settling at a block."),
            crate::spot_checks::PENDING_CHECKS.metadata("Spot checks awaiting a verdict."),
            crate::spot_checks::PENDING_BY_WORKER.metadata("Pending check ids per worker."),
            crate::spot_checks::CHECK_DEADLINES.metadata("Check ids due at a block."),
            crate::spot_checks::SLASHED.metadata("Total slashed from each worker's bond."),
            crate::spot_checks::CONVICTED.metadata("Workers deregistered by a failed check."),
            crate::workers::WORKERS.metadata("Registered workers."),
            crate::workers::RETIRED_BONDS.metadata("Bonds of deregistered workers still held."),
            crate::capacity::BEACON.metadata("The current minute's capacity beacon."),
            crate::capacity::CLAIMS.metadata("Capacity claims awaiting their draw or audit."),
            crate::capacity::CLAIMS_TO_DRAW.metadata("Capacity claim ids drawn at a block."),
            crate::capacity::LAST_CLAIM.metadata("The last minute each worker claimed."),
            crate::capacity::PENDING_BY_WORKER.metadata("Undecided capacity claims per worker."),
            crate::capacity_audit::AUDITS.metadata("Capacity audits in progress."),
            crate::capacity_audit::AUDIT_DEADLINES.metadata("Capacity audit ids due at a block."),
        ])
        .constants(vec![constant(
            "Params",
            &p,
            "The pallet's chain-spec parameters.",
        )]))
}
