//! The agents and the strategies they play. Every agent owns one or more accounts on
//! the chain and a machine (or none); the adversaries' strategy grid (cheat rate, cheat
//! mode, number of accounts, what to answer when a cheated receipt is checked) is laid
//! out as separate agents on the same chain, so one run measures every point of the
//! grid under the same load and randomness.

use crate::chain::Key;
use crate::detection::Detection;
use anyhow::Result;
use neuroshard_primitives::AccountId;

/// Which canonical range (0-10, 10-20, 20-30) an agent serves; cheaters sit in the
/// middle one, beside honest workers, as in `bench verify`.
pub const MIDDLE: usize = 1;

/// What a lazy worker answers when one of its cheated receipts is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OnCheck {
    /// Hands over its material (as its node does): caught at the mode's detection rate.
    Answer,
    /// Hides: hands over nothing (`NoAnswer`: held income forfeited, bond untouched).
    Hide,
}

/// A strategy.
#[derive(Clone, Debug, PartialEq)]
pub enum Strategy {
    /// Serves its range honestly on a reference machine, answers every probe and check.
    Honest { range: usize },
    /// Serves the middle range and fakes a share `rate` of its receipts with cheat mode
    /// `mode` (an index into the detection file's modes).
    Lazy {
        mode: usize,
        rate: f64,
        on_check: OnCheck,
    },
    /// One reference machine registered as `accounts` workers, farming uptime only.
    SybilFarmer { accounts: usize },
    /// A client paying its own worker (serving all three ranges, no machine online
    /// beyond the work) for `fake_rate` of the work faked, the rest computed.
    SelfDealer { fake_rate: f64 },
    /// The colluding validator's partner client and worker: self-dealing with every
    /// receipt faked; the validator passes their checks whenever it is drawn.
    ValidatorSelfDealer,
    /// `accounts` workers with no machine whose probes the colluding validator reports
    /// as answered at the reference throughput whenever it is drawn as their prober.
    ValidatorUptime { accounts: usize },
    /// A client that deposits escrow, requests its release at once, keeps buying work
    /// and withdraws the moment it may, then starts over (racing the workers' receipts).
    NonPayer,
    /// Floods the chain with receipt batches that fail (bad signatures) and free calls
    /// that are invalid (heartbeats from non-workers).
    Spammer { per_block: usize },
    /// An ordinary client buying work at the market price.
    Client,
    /// Trains the middle range's adapter honestly and contributes to every round
    /// ([`crate::training`]).
    Trainer,
    /// `accounts` workers of the middle range submitting gradient receipts for `fake`
    /// (a fake measured in docs/training-fakers.json) instead of training.
    TrainingFaker { fake: String, accounts: usize },
}

impl Strategy {
    /// The row label.
    pub fn label(&self, detection: &Detection) -> String {
        match self {
            Strategy::Honest { range } => format!("honest worker (range {range})"),
            Strategy::Lazy {
                mode,
                rate,
                on_check,
            } => format!(
                "lazy: {} on {:.0}% of receipts, {}",
                detection.modes[*mode].mode,
                rate * 100.0,
                match on_check {
                    OnCheck::Answer => "answers checks",
                    OnCheck::Hide => "hides when checked",
                }
            ),
            Strategy::SybilFarmer { accounts } => {
                format!("sybil uptime farmer: 1 machine, {accounts} account(s)")
            }
            Strategy::SelfDealer { fake_rate } => {
                format!(
                    "self-dealing client+worker, {:.0}% faked",
                    fake_rate * 100.0
                )
            }
            Strategy::ValidatorSelfDealer => "validator+client self-dealing, all faked".into(),
            Strategy::ValidatorUptime { accounts } => {
                format!("validator vouching {accounts} machineless worker(s)")
            }
            Strategy::NonPayer => "non-paying client (escrow release race)".into(),
            Strategy::Spammer { per_block } => format!("spammer ({per_block} failing calls/block)"),
            Strategy::Client => "honest client (buys work)".into(),
            Strategy::Trainer => "honest trainer (range 1)".into(),
            Strategy::TrainingFaker { fake, accounts } => {
                format!("training faker: {fake}, {accounts} account(s)")
            }
        }
    }

    /// The strategy family (the best response is searched within it).
    pub fn family(&self) -> &'static str {
        match self {
            Strategy::Honest { .. } => "honest",
            Strategy::Lazy { .. } => "lazy worker",
            Strategy::SybilFarmer { .. } => "sybil uptime",
            Strategy::SelfDealer { .. } => "self-dealing",
            Strategy::ValidatorSelfDealer | Strategy::ValidatorUptime { .. } => {
                "colluding validator"
            }
            Strategy::NonPayer => "non-paying client",
            Strategy::Spammer { .. } => "spammer",
            Strategy::Client => "client",
            Strategy::Trainer => "trainer",
            Strategy::TrainingFaker { .. } => "training faker",
        }
    }

    /// Whether the strategy has a machine online every minute.
    pub fn has_machine(&self) -> bool {
        matches!(
            self,
            Strategy::Honest { .. } | Strategy::Lazy { .. } | Strategy::SybilFarmer { .. }
        )
    }

    /// Whether the strategy is a worker that clients route ordinary requests to, and on
    /// which range.
    pub fn serves_range(&self) -> Option<usize> {
        match self {
            Strategy::Honest { range } => Some(*range),
            Strategy::Lazy { .. } => Some(MIDDLE),
            _ => None,
        }
    }
}

/// An agent: a strategy and its accounts. `workers` are registered at genesis;
/// `client` pays for work (its own, for self-dealers).
pub struct Agent {
    pub strategy: Strategy,
    pub workers: Vec<Key>,
    pub client: Option<Key>,
}

impl Agent {
    /// Every account of the agent.
    pub fn accounts(&self) -> Vec<AccountId> {
        self.workers
            .iter()
            .chain(self.client.iter())
            .map(|k| k.account.clone())
            .collect()
    }
}

/// The grid: every strategy point, as agents. `honest_per_range` honest workers serve
/// each range; `clients` ordinary clients buy work.
pub fn roster(
    detection: &Detection,
    honest_per_range: usize,
    clients: usize,
) -> Result<Vec<Agent>> {
    let mut strategies = Vec::new();
    for range in 0..3 {
        strategies.extend((0..honest_per_range).map(|_| Strategy::Honest { range }));
    }
    strategies.extend((0..clients).map(|_| Strategy::Client));
    let stealthy = index_of(detection, detection.stealthiest());
    let greedy = index_of(detection, detection.greediest());
    let mut modes = vec![stealthy, greedy];
    modes.dedup();
    for &mode in &modes {
        for rate in [0.1, 1.0] {
            for on_check in [OnCheck::Answer, OnCheck::Hide] {
                strategies.push(Strategy::Lazy {
                    mode,
                    rate,
                    on_check,
                });
            }
        }
    }
    strategies.extend([1, 2, 4, 8].map(|accounts| Strategy::SybilFarmer { accounts }));
    strategies.extend([0.0, 0.5, 1.0].map(|fake_rate| Strategy::SelfDealer { fake_rate }));
    strategies.push(Strategy::ValidatorSelfDealer);
    strategies.extend([1, 4].map(|accounts| Strategy::ValidatorUptime { accounts }));
    strategies.push(Strategy::NonPayer);
    strategies.push(Strategy::Spammer { per_block: 2 });
    strategies
        .into_iter()
        .enumerate()
        .map(|(i, strategy)| agent(i, strategy))
        .collect()
}

fn index_of(detection: &Detection, mode: &crate::detection::ModeDetection) -> usize {
    detection.modes.iter().position(|m| m == mode).unwrap_or(0)
}

/// The accounts of agent `i` playing `strategy`.
pub fn agent(i: usize, strategy: Strategy) -> Result<Agent> {
    let worker_count = match &strategy {
        Strategy::Honest { .. }
        | Strategy::Lazy { .. }
        | Strategy::SelfDealer { .. }
        | Strategy::ValidatorSelfDealer => 1,
        Strategy::SybilFarmer { accounts }
        | Strategy::ValidatorUptime { accounts }
        | Strategy::TrainingFaker { accounts, .. } => *accounts,
        Strategy::Trainer => 1,
        Strategy::NonPayer | Strategy::Spammer { .. } | Strategy::Client => 0,
    };
    let has_client = matches!(
        strategy,
        Strategy::SelfDealer { .. }
            | Strategy::ValidatorSelfDealer
            | Strategy::NonPayer
            | Strategy::Spammer { .. }
            | Strategy::Client
    );
    let workers = (0..worker_count)
        .map(|k| Key::from_uri(&format!("//econ/{i}/worker/{k}")))
        .collect::<Result<_>>()?;
    let client = has_client
        .then(|| Key::from_uri(&format!("//econ/{i}/client")))
        .transpose()?;
    Ok(Agent {
        strategy,
        workers,
        client,
    })
}
