//! Which capacity probes a provider runs (issue 21). A probe costs the provider a whole
//! window of its compute (`neuroshard_inference::probe_window`), so it runs one only when
//! - it names this node's own account: another account's probe is refused, so a relayer
//!   that forwards its probes to an honest provider earns nothing on its compute (the
//!   jobs' inputs come from the probed account's seed, so computing them under another
//!   name proves nothing for that name either), and
//! - it is signed by the validator the chain drew to probe this account in the current
//!   minute (`ponw::prober_of`), and this node has not run one for that minute yet: no
//!   peer can make it spend more than one window a minute.

use crate::protocol::CapacityProbe;
use neuroshard_client::Client;
use neuroshard_primitives::{crypto, AccountId};
use neuroshard_runtime::{ponw, Runtime};
use parking_lot::Mutex;
use std::sync::Arc;

/// See the module docs.
pub struct ForeignProbes {
    chain: Arc<Client>,
    me: AccountId,
    /// The last minute a probe was run for.
    last_run: Mutex<Option<u64>>,
}

impl ForeignProbes {
    pub fn new(chain: Arc<Client>, me: AccountId) -> Self {
        Self {
            chain,
            me,
            last_run: Mutex::new(None),
        }
    }

    /// Whether to run `probe` now; the error says why not.
    pub fn admit(&self, probe: &CapacityProbe) -> Result<(), String> {
        if probe.worker != self.me {
            return Err(format!(
                "refused another account's capacity probe: it probes {}, which only that \
                 worker answers",
                probe.worker
            ));
        }
        if !crypto::verify(&probe.signature, &probe.signed_bytes(), &probe.prober) {
            return Err("the capacity probe's signature is not its prober's".into());
        }
        let drawn = self
            .chain
            .with_best_state(|state, _| {
                let validators = Runtime::validators(state)?;
                let Some((minute, seed)) = ponw::MINUTE_SEED.get(state)? else {
                    return anyhow::Ok(false);
                };
                Ok(minute == probe.minute
                    && ponw::prober_of(&seed, &self.me, &validators) == Some(&probe.prober))
            })
            .map_err(|e| format!("cannot read the chain: {e:#}"))?;
        if !drawn {
            return Err("the capacity probe's sender is not this minute's drawn prober".into());
        }
        let mut last = self.last_run.lock();
        if *last >= Some(probe.minute) {
            return Err(format!(
                "a capacity probe already ran in minute {}",
                probe.minute
            ));
        }
        *last = Some(probe.minute);
        Ok(())
    }
}
