//! How a node sets up the shards it serves: the byte budget of their spot-check
//! material archive, their batch and session bounds, their prefix caches, its generation admission bounds
//! (operator settings), and in test builds (cargo feature
//! `fault-injection`) the deliberate faults adversarial tests play.

use neuroshard_inference::archive::ArchiveBudget;
use neuroshard_inference::shard::Shard;
use neuroshard_network::AccountBinding;
use neuroshard_primitives::LayerRange;
#[cfg(feature = "fault-injection")]
use {neuroshard_primitives::AccountId, tracing::warn};

/// Default memory of one shard's spot-check material archive, in MiB.
pub const DEFAULT_ARCHIVE_MIB: u32 = 192;

/// Default memory of one shard's prefix cache, in MiB: on the dev chain's 10-layer
/// shards of SmolLM2-135M a position costs 17.7 KB there (keys and values of 10 layers
/// plus the output row), so 64 MiB hold about 3,800 prompt positions per shard.
pub const DEFAULT_PREFIX_CACHE_MIB: u32 = 64;

/// The archive budget for `mib` MiB per shard: a third for unconfirmed material (work
/// not yet on chain, flushed first-in-first-out), two thirds for the pinned material
/// of receipts on chain (one client at most half of it).
pub fn archive_budget(mib: u32) -> ArchiveBudget {
    let bytes = (mib as usize).saturating_mul(1 << 20);
    ArchiveBudget::with_pinned(bytes / 3, bytes - bytes / 3)
}

/// See the module docs.
#[derive(Clone, Debug)]
pub struct ServingOptions {
    /// Each served shard's material archive.
    pub archive: ArchiveBudget,
    /// How many generations (HTTP API and RPC together) run at once.
    pub max_generations: usize,
    /// How many of those one paying client (API key) runs at once.
    pub max_generations_per_client: usize,
    /// Tokens per minute one paying client may use (0: no limit).
    pub tokens_per_minute_per_client: u32,
    /// Bytes of KV cache the running generations may take in this node's shards
    /// (`None`: [`crate::limits::default_kv_budget`]).
    pub kv_budget_bytes: Option<u64>,
    /// Positions per batched step of each shard.
    pub max_batch: usize,
    /// Sessions (KV caches) each shard keeps.
    pub max_sessions: usize,
    /// Bytes of each shard's cache of clients' prompt prefixes (0: none).
    pub prefix_cache_bytes: usize,
    /// Millionths of output positions the shards fake (a worker saving compute).
    #[cfg(feature = "fault-injection")]
    pub skip_work: Option<u32>,
    /// Refuse every forward call from peers (see [`crate::server::ShardService`]).
    #[cfg(feature = "fault-injection")]
    pub refuse_forwards: bool,
    /// Announce provider records in this account's name, with no shards (a peer trying
    /// to frame another worker; see [`ServingOptions::announced`]).
    #[cfg(feature = "fault-injection")]
    pub claim_account: Option<AccountId>,
    /// Never pay for this node's generations: no receipt is handed back counter-signed
    /// to a provider nor submitted (a client that takes the work and does not pay; see
    /// [`ServingOptions::pays_providers`]).
    #[cfg(feature = "fault-injection")]
    pub never_pay: bool,
    /// Hand receipts back counter-signed but never submit them (a client that leaves the
    /// chain fees and the submission to its providers; see
    /// [`ServingOptions::submits_receipts`]).
    #[cfg(feature = "fault-injection")]
    pub never_submit: bool,
    /// Relay every forward call to the providers bound to this account instead of
    /// computing it (see [`crate::relay::ProbeRelay`]).
    #[cfg(feature = "fault-injection")]
    pub relay_probes: Option<AccountId>,
    /// Compute other accounts' capacity probes too (an attacker's machine answering for
    /// the accounts relaying to it; see [`ServingOptions::refuses_foreign_probes`]).
    #[cfg(feature = "fault-injection")]
    pub answer_foreign_probes: bool,
    /// Delay every reply to a peer's shard call by this many milliseconds (a provider
    /// behind a slow path: the round trip of its calls grows by as much).
    #[cfg(feature = "fault-injection")]
    pub reply_delay_ms: u64,
    /// Run capacity probes' jobs at this many a second, process-wide (a machine of fixed
    /// capacity; see [`neuroshard_inference::probe_window::JobPacer`]).
    #[cfg(feature = "fault-injection")]
    pub probe_jobs_per_sec: Option<u32>,
}

impl Default for ServingOptions {
    fn default() -> Self {
        Self {
            archive: archive_budget(DEFAULT_ARCHIVE_MIB),
            max_generations: crate::admission::DEFAULT_MAX_GENERATIONS,
            max_generations_per_client: crate::admission::DEFAULT_MAX_GENERATIONS_PER_CLIENT,
            tokens_per_minute_per_client: crate::limits::DEFAULT_TOKENS_PER_MINUTE_PER_CLIENT,
            kv_budget_bytes: None,
            max_batch: neuroshard_inference::batcher::DEFAULT_MAX_BATCH,
            max_sessions: neuroshard_inference::shard::DEFAULT_MAX_SESSIONS,
            prefix_cache_bytes: DEFAULT_PREFIX_CACHE_MIB as usize * (1 << 20),
            #[cfg(feature = "fault-injection")]
            skip_work: None,
            #[cfg(feature = "fault-injection")]
            refuse_forwards: false,
            #[cfg(feature = "fault-injection")]
            claim_account: None,
            #[cfg(feature = "fault-injection")]
            never_pay: false,
            #[cfg(feature = "fault-injection")]
            never_submit: false,
            #[cfg(feature = "fault-injection")]
            relay_probes: None,
            #[cfg(feature = "fault-injection")]
            answer_foreign_probes: false,
            #[cfg(feature = "fault-injection")]
            reply_delay_ms: 0,
            #[cfg(feature = "fault-injection")]
            probe_jobs_per_sec: None,
        }
    }
}

impl ServingOptions {
    /// The account binding and shards this node's provider records carry: its own, or
    /// with `claim_account` another worker's account (with this node's signature, as it
    /// has no other) and no shards, which the directory would sort first and never
    /// route to.
    #[allow(unused_mut)]
    pub fn announced(
        &self,
        mut binding: AccountBinding,
        mut shards: Vec<LayerRange>,
    ) -> (AccountBinding, Vec<LayerRange>) {
        #[cfg(feature = "fault-injection")]
        if let Some(victim) = &self.claim_account {
            warn!(victim = %victim, "fault injection: provider records claim another account");
            binding.account = victim.clone().into();
            shards = Vec::new();
        }
        (binding, shards)
    }

    /// The pace of this node's capacity-probe jobs: as fast as the machine goes, but for
    /// the `probe_jobs_per_sec` fault.
    pub fn probe_pace(&self) -> Option<neuroshard_inference::probe_window::JobPacer> {
        #[cfg(feature = "fault-injection")]
        if let Some(rate) = self.probe_jobs_per_sec {
            warn!(
                rate,
                "fault injection: capacity-probe jobs paced to a fixed rate"
            );
            return Some(neuroshard_inference::probe_window::JobPacer::new(rate));
        }
        None
    }

    /// The admission control of this node's generations (HTTP API and RPC).
    pub fn admission(&self) -> crate::admission::GenerationAdmission {
        crate::admission::GenerationAdmission::new(
            self.max_generations,
            self.max_generations_per_client,
        )
        .with_limits(
            self.tokens_per_minute_per_client,
            self.kv_budget_bytes
                .unwrap_or_else(crate::limits::default_kv_budget),
        )
    }

    /// Whether this node refuses to compute other accounts' capacity probes (always, but
    /// for the `answer_foreign_probes` fault; see [`crate::probe_guard`]).
    pub fn refuses_foreign_probes(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.answer_foreign_probes {
            warn!("fault injection: other accounts' capacity probes are computed here");
            return false;
        }
        true
    }

    /// Whether this node hands the receipts of its generations back counter-signed to
    /// the providers that served them (always, but for the `never_pay` fault).
    pub fn pays_providers(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.never_pay {
            warn!("fault injection: this generation's providers are never paid");
            return false;
        }
        true
    }

    /// Whether this node submits the receipts of its generations (always, but for the
    /// `never_pay` and `never_submit` faults).
    pub fn submits_receipts(&self) -> bool {
        #[cfg(feature = "fault-injection")]
        if self.never_pay || self.never_submit {
            warn!("fault injection: the receipts of this generation are never submitted");
            return false;
        }
        true
    }

    /// `shard` (serving `layers`) with this node's archive budget, batch and session
    /// bounds, and faults.
    #[allow(unused_variables)]
    pub(crate) fn apply(&self, shard: Shard, layers: LayerRange) -> Shard {
        let shard = shard
            .with_archive_budget(self.archive)
            .with_max_batch(self.max_batch)
            .with_max_sessions(self.max_sessions)
            .with_prefix_cache(self.prefix_cache_bytes);
        #[cfg(feature = "fault-injection")]
        if let Some(permill) = self.skip_work {
            warn!(%layers, permill, "fault injection: this shard fakes part of its work");
            return shard.with_fault(neuroshard_inference::fault::SkipWork {
                permill,
                seed: u64::from(layers.start),
            });
        }
        shard
    }
}
