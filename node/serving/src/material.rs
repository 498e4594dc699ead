//! Keeps the spot-check material the chain still needs (issue 20, archive flushing).
//!
//! A shard archives the material of every work record it issues, newest first, in a
//! bounded first-in-first-out class that anyone opening sessions can flush. Once a
//! receipt reaches the chain its material must survive until the chain is done with it,
//! whatever else arrives: every [`MATERIAL_SWEEP`] this node reads which of its receipts
//! the chain still holds (earnings in their check window) or is checking, pins their
//! material with the paying client as owner (bounded per client, see
//! [`neuroshard_inference::archive`]) and releases the material of receipts the chain
//! has settled or decided.

use crate::billing::work_of;
use neuroshard_client::Client;
use neuroshard_inference::archive::PinOutcome;
use neuroshard_inference::shard::Shard;
use neuroshard_primitives::{AccountId, Hash, ReceiptBody};
use neuroshard_runtime::{ponw, ReadState};
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;
use tracing::{debug, info, warn};

/// How often the node pins and releases material (well inside the blocks between a
/// receipt's inclusion and its draw).
pub const MATERIAL_SWEEP: Duration = Duration::from_secs(1);

/// The receipts of `worker` the chain still needs material for: held in their check
/// window, or with a check pending (also after a forfeit).
pub fn receipts_in_question(
    state: &impl ReadState,
    worker: &AccountId,
) -> anyhow::Result<Vec<ReceiptBody>> {
    let mut bodies = Vec::new();
    for id in ponw::settlement::holding(state, worker)?.receipts {
        if let Some(held) = ponw::settlement::held(state, &id)? {
            bodies.push(held.body);
        }
    }
    for (_, check) in ponw::spot_checks::pending_of(state, worker)? {
        if !bodies.contains(&check.body) {
            bodies.push(check.body);
        }
    }
    Ok(bodies)
}

/// What one [`sweep`] did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Material newly pinned.
    pub pinned: usize,
    /// Receipts on chain whose material could not be pinned (their client's share, or
    /// the pinned budget, is full); it stays unconfirmed until it can be.
    pub over_budget: Vec<Hash>,
}

/// One sweep: pins what the chain needs on the shard that did the work, releases the
/// rest.
pub fn sweep(shards: &[Arc<Shard>], needed: &[ReceiptBody]) -> Swept {
    let mut swept = Swept::default();
    for shard in shards {
        let mine: Vec<(&ReceiptBody, Hash)> = needed
            .iter()
            .filter(|b| b.layers == shard.layers() && b.model == shard.model())
            .map(|b| (b, work_of(b).id()))
            .collect();
        let keep: BTreeSet<Hash> = mine.iter().map(|&(_, work)| work).collect();
        for id in shard.pinned_material() {
            if !keep.contains(&id) {
                shard.release_material(&id);
            }
        }
        for (body, work) in mine {
            match shard.pin_material(&work, *AsRef::<[u8; 32]>::as_ref(&body.client)) {
                PinOutcome::Pinned => swept.pinned += 1,
                PinOutcome::AlreadyPinned => {}
                PinOutcome::Missing => {
                    debug!(receipt = ?body.id(), "no material left for a receipt on chain")
                }
                PinOutcome::OverBudget => swept.over_budget.push(body.id()),
            }
        }
    }
    swept
}

/// Runs [`sweep`] every [`MATERIAL_SWEEP`] for the work of `worker` until `shutdown`,
/// warning once per receipt whose material cannot be pinned.
pub async fn keep_material(
    chain: Arc<Client>,
    shards: Vec<Arc<Shard>>,
    worker: AccountId,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let mut warned = BTreeSet::new();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MATERIAL_SWEEP) => {}
            _ = shutdown.changed() => return,
        }
        match chain.with_best_state(|state, _| receipts_in_question(state, &worker)) {
            Ok(needed) => {
                let Swept {
                    pinned,
                    over_budget: over,
                } = sweep(&shards, &needed);
                if pinned > 0 {
                    info!(pinned, "kept the spot-check material of receipts on chain");
                }
                for id in &over {
                    if !warned.contains(id) {
                        warn!(receipt = ?id, "material of a receipt on chain not pinned: its client's share is full");
                    }
                }
                warned = over.into_iter().collect();
            }
            Err(e) => warn!(error = %format!("{e:#}"), "cannot read this worker's receipts"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The flushing attack on the tiny random Llama: a peer opens session after session
    //! it never pays for, to push the material of receipts already on chain out of the
    //! worker's archive (their spot checks would then get no answer).

    use super::*;
    use crate::billing::{bill_session, Provider};
    use neuroshard_inference::archive::ArchiveBudget;
    use neuroshard_inference::generate::client_for;
    use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
    use neuroshard_inference::{decode, DecodeOptions, InProcessTransport};
    use neuroshard_primitives::crypto::keypair_from_uri;

    fn model() -> Hash {
        Hash::repeat_byte(0x52)
    }

    /// Two shards of the tiny model keeping at most 4 KiB of unconfirmed material.
    fn route() -> Vec<Arc<InProcessTransport>> {
        let dir = tempfile::tempdir().unwrap();
        let source: ModelSource =
            neuroshard_inference::tiny::write_tiny_llama(dir.path(), 4).unwrap();
        let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
        [(0, 3), (3, 6)]
            .iter()
            .map(|&(a, b)| {
                let shard = Shard::new(weights.slice(a..b).unwrap(), model())
                    .unwrap()
                    .with_archive_budget(ArchiveBudget::with_pinned(4 << 10, 1 << 20));
                Arc::new(InProcessTransport::new(Arc::new(shard)))
            })
            .collect()
    }

    /// A session `session` over `route`, billed with `payer` as client and worker.
    fn billed_session(
        route: &[Arc<InProcessTransport>],
        session: u8,
        payer: &str,
    ) -> Vec<ReceiptBody> {
        let mut client = client_for(route, model(), [session; 16]).unwrap();
        let opts = DecodeOptions {
            max_tokens: 12,
            ..Default::default()
        };
        let out = decode(&mut client, &[1, 5, 9, 13], &opts, None, &mut |_| {}).unwrap();
        let served = client.served(out.accepted_positions as u32);
        let hops: Vec<Vec<Provider>> = route
            .iter()
            .map(|t| vec![Provider::Local(t.clone())])
            .collect();
        let key = keypair_from_uri(payer).unwrap();
        bill_session(&key, &key, 0, &served, &hops)
            .unwrap()
            .into_iter()
            .map(|r| r.body)
            .collect()
    }

    fn shards(route: &[Arc<InProcessTransport>]) -> Vec<Arc<Shard>> {
        route.iter().map(|t| t.shard().clone()).collect()
    }

    fn archived(route: &[Arc<InProcessTransport>], bodies: &[ReceiptBody]) -> usize {
        bodies
            .iter()
            .filter(|b| {
                route
                    .iter()
                    .any(|t| t.shard().material(&work_of(b).id()).is_some())
            })
            .count()
    }

    #[test]
    fn unpaid_sessions_cannot_flush_the_material_of_receipts_on_chain() {
        // Without pinning (the archive as it was): the flood evicts Bob's material.
        let route_before = route();
        let bob = billed_session(&route_before, 1, "//Bob");
        assert_eq!(archived(&route_before, &bob), 2);
        for session in 2..60 {
            billed_session(&route_before, session, "//Mallory");
        }
        assert_eq!(
            archived(&route_before, &bob),
            0,
            "the attack works unpinned"
        );

        // With it: Bob's receipts reached the chain, the sweep pins them, the same flood
        // only pushes Mallory's own unpaid material out.
        let route = route();
        let bob = billed_session(&route, 1, "//Bob");
        assert_eq!(sweep(&shards(&route), &bob).pinned, 2);
        let mallory: Vec<ReceiptBody> = (2..60)
            .flat_map(|session| billed_session(&route, session, "//Mallory"))
            .collect();
        assert_eq!(archived(&route, &bob), 2);
        assert!(archived(&route, &mallory) < mallory.len() / 2);
        // A second sweep pins nothing new; once the chain is done, the material goes.
        assert_eq!(sweep(&shards(&route), &bob), Swept::default());
        sweep(&shards(&route), &[]);
        assert!(shards(&route)
            .iter()
            .all(|s| s.pinned_material().is_empty()));
    }
}
