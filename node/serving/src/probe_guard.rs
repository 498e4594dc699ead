//! A provider computes no other account's capacity probe (issue 21). Every registered
//! worker's probe input of the current minute is public (the minute's seed and the
//! account, see `ponw::probe_of`), so a relayer that forwards its own probe to an honest
//! provider as an ordinary session is recognised and refused
//! ([`neuroshard_inference::probe_guard`]), whichever peer id it uses: its minute is not
//! credited, and the honest provider's capacity is not spent on it. The fingerprints
//! are rebuilt once per minute.

use neuroshard_client::Client;
use neuroshard_inference::messages::ShardRequest;
use neuroshard_inference::probe_guard::ProbeFingerprint;
use neuroshard_primitives::{AccountId, Hash, LayerRange};
use neuroshard_runtime::ponw;
use parking_lot::Mutex;
use std::sync::Arc;

/// The minute's probe fingerprints of every worker but this node's.
#[derive(Default)]
struct Minute {
    seed: Option<Hash>,
    positions: u32,
    probes: Vec<(AccountId, LayerRange, ProbeFingerprint)>,
}

/// See the module docs.
pub struct ForeignProbes {
    chain: Arc<Client>,
    me: AccountId,
    minute: Mutex<Minute>,
}

impl ForeignProbes {
    pub fn new(chain: Arc<Client>, me: AccountId) -> Self {
        Self {
            chain,
            me,
            minute: Mutex::default(),
        }
    }

    /// The other account whose probe input of the current minute `req` carries, if any
    /// (`dims`: the model's hidden size and vocabulary). Chain read failures let the
    /// request through.
    pub fn owner_of(&self, req: &ShardRequest, dims: (usize, usize)) -> Option<AccountId> {
        let (seed, positions) = self
            .chain
            .with_best_state(|state, _| {
                anyhow::Ok((
                    ponw::MINUTE_SEED.get(state)?.map(|(_, s)| s),
                    ponw::params(state)?.probe.positions,
                ))
            })
            .ok()?;
        let seed = seed?;
        if req.start_pos >= positions {
            return None;
        }
        let mut minute = self.minute.lock();
        if minute.seed != Some(seed) || minute.positions != positions {
            *minute = self.fingerprints(seed, positions, dims)?;
        }
        minute
            .probes
            .iter()
            .find(|(_, layers, fp)| {
                layers.start == req.layers.start && fp.matches(req.start_pos, &req.input)
            })
            .map(|(who, ..)| who.clone())
    }

    fn fingerprints(&self, seed: Hash, positions: u32, dims: (usize, usize)) -> Option<Minute> {
        let workers = self
            .chain
            .with_best_state(|state, _| ponw::WORKERS.entries(state))
            .ok()?;
        let probes = workers
            .into_iter()
            .filter(|(who, _)| *who != self.me)
            .filter_map(|(who, info)| {
                let (layers, input_seed) = ponw::probe_of(&seed, &who, &info)?;
                let fp = ProbeFingerprint::new(&input_seed, layers, dims, positions as usize);
                Some((who, layers, fp))
            })
            .collect();
        Some(Minute {
            seed: Some(seed),
            positions,
            probes,
        })
    }
}
