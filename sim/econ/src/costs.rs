//! The compute-cost model: what an agent's real work would cost it, in NSHD, at stated
//! prices. A machine costs [`Prices::machine_minute`] for every minute it is kept online
//! (whatever it does: serving capacity, probe windows, heartbeats), and serving costs
//! [`Prices::layer_token`] for every position it runs through one transformer layer.
//! Work a cheater skips is not charged (the cheat mode's `saved` share of the receipt),
//! so cheating saves exactly what the measured mode saves.
//!
//! The defaults are stated against what the chain pays: a layer-token earns a worker
//! `(client_fee x (1 - burn) + token_reward) / num_layers` = 0.00667 NSHD on the dev
//! chain, and we charge 0.002 (30% of it); a minute of a reference machine earns 1 NSHD
//! of uptime and we charge 0.25. Any prices below the break-even the report prints keep
//! honest work profitable.

use neuroshard_primitives::{Balance, UNIT};

/// Prices of compute, in NSHD.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Prices {
    /// One position through one layer.
    pub layer_token: f64,
    /// One minute of one machine online.
    pub machine_minute: f64,
    /// One extrinsic built and sent (bandwidth, signing), for spammers' floods.
    pub extrinsic: f64,
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            layer_token: 0.002,
            machine_minute: 0.25,
            extrinsic: 0.000_1,
        }
    }
}

/// An agent's compute bill so far.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ComputeBill {
    /// Layer-tokens actually computed.
    pub layer_tokens: f64,
    /// Machine-minutes online.
    pub machine_minutes: f64,
    /// Extrinsics sent beyond an honest agent's own.
    pub extrinsics: f64,
}

impl ComputeBill {
    /// The bill at `prices`, in NSHD.
    pub fn cost(&self, prices: &Prices) -> f64 {
        self.layer_tokens * prices.layer_token
            + self.machine_minutes * prices.machine_minute
            + self.extrinsics * prices.extrinsic
    }
}

/// Base units as NSHD.
pub fn nshd(amount: Balance) -> f64 {
    amount as f64 / UNIT as f64
}

/// Signed base units as NSHD.
pub fn nshd_signed(amount: i128) -> f64 {
    amount as f64 / UNIT as f64
}
