//! The report: one row per strategy point (capital in, compute cost, rewards, fees
//! earned and paid, transaction fees, slashes, profit, ROI, ROI relative to honest),
//! each adversary family's best response over its grid, and the exit criteria:
//! - honest workers' ROI must be positive;
//! - a worker strategy that still does real work (lazy workers, Sybil uptime farmers)
//!   must earn less than its honest counterpart on the same machine and capital (the
//!   honest middle-range worker; one account on the same machine): its excess over it
//!   must be negative;
//! - a strategy that produces nothing anyone pays for (self-dealing, a colluding
//!   validator's partners, spammers) must lose money (ROI < 0) and earn less than
//!   honest workers;
//! - a non-paying client must come out below an honest client: a client's profit is
//!   the work it was served, at the market fee, less what it paid (about zero for an
//!   honest client, a little more when cheaters' forfeited receipts were refunded);
//! - honest trainers' ROI must be positive, and a training faker must lose money and
//!   earn less than them.

use crate::agents::{Strategy, MIDDLE};
use std::fmt;

/// One strategy point's figures, in NSHD.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    pub label: String,
    pub family: &'static str,
    pub strategy: Strategy,
    pub capital: f64,
    pub compute: f64,
    pub rewards: f64,
    pub fees_earned: f64,
    pub fees_paid: f64,
    pub tx_fees: f64,
    pub slashed: f64,
    /// Work served to a client, at the market fee (clients only).
    pub value: f64,
    pub profit: f64,
    pub roi: f64,
    pub vs_honest: f64,
}

/// A family's best response and the verdict on it.
#[derive(Clone, Debug, PartialEq)]
pub struct Best {
    pub family: &'static str,
    pub label: String,
    pub roi: f64,
    /// What it must stay below, and what that is.
    pub bound: f64,
    pub bound_name: &'static str,
}

impl Best {
    pub fn holds(&self) -> bool {
        self.roi < self.bound
    }
}

/// The whole report.
#[derive(Clone, Debug)]
pub struct Report {
    pub header: String,
    pub rows: Vec<Row>,
    pub honest_roi: f64,
    /// Honest trainers' mean ROI (None: no trainer played).
    pub trainer_roi: Option<f64>,
    pub best: Vec<Best>,
}

fn mean(values: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = values.collect();
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

impl Report {
    /// Fills in ROI relative to honest and each family's best response.
    pub fn new(header: String, mut rows: Vec<Row>) -> Self {
        let honest = |rows: &[Row], only_middle: bool| {
            mean(
                rows.iter()
                    .filter(|r| match r.strategy {
                        Strategy::Honest { range } => !only_middle || range == MIDDLE,
                        _ => false,
                    })
                    .map(|r| r.roi),
            )
        };
        let honest_roi = honest(&rows, false);
        let honest_middle = honest(&rows, true);
        for r in &mut rows {
            r.vs_honest = r.roi - honest_roi;
        }
        let client_roi = mean(
            rows.iter()
                .filter(|r| r.strategy == Strategy::Client)
                .map(|r| r.roi),
        );
        let trainers: Vec<f64> = rows
            .iter()
            .filter(|r| r.strategy == Strategy::Trainer)
            .map(|r| r.roi)
            .collect();
        let trainer_roi = (!trainers.is_empty()).then(|| mean(trainers.into_iter()));
        let one_account = rows
            .iter()
            .find(|r| r.strategy == Strategy::SybilFarmer { accounts: 1 })
            .map_or(honest_roi, |r| r.roi);
        let mut best = Vec::new();
        for family in [
            "lazy worker",
            "sybil uptime",
            "self-dealing",
            "colluding validator",
            "non-paying client",
            "spammer",
            "training faker",
        ] {
            let dishonest = rows.iter().filter(|r| {
                r.family == family && r.strategy != Strategy::SybilFarmer { accounts: 1 }
            });
            let Some(top) = dishonest.max_by(|a, b| a.roi.total_cmp(&b.roi)) else {
                continue;
            };
            let (bound, bound_name) = match family {
                "lazy worker" => (honest_middle, "honest worker, same range"),
                "sybil uptime" => (one_account.min(honest_roi), "same machine, one account"),
                "non-paying client" => (client_roi, "honest client"),
                "training faker" => (
                    trainer_roi.unwrap_or(honest_roi).min(0.0),
                    "zero and honest trainer",
                ),
                _ => (0.0f64.min(honest_roi), "zero (produces nothing paid for)"),
            };
            best.push(Best {
                family,
                label: top.label.clone(),
                roi: top.roi,
                bound,
                bound_name,
            });
        }
        Self {
            header,
            rows,
            honest_roi,
            trainer_roi,
            best,
        }
    }

    /// Why the economy fails its criteria (empty when it holds).
    pub fn failures(&self) -> Vec<String> {
        let mut out = Vec::new();
        if self.honest_roi <= 0.0 {
            out.push(format!(
                "honest workers' ROI is {:.4}%: honest work does not pay",
                self.honest_roi * 100.0
            ));
        }
        if let Some(roi) = self.trainer_roi.filter(|r| *r <= 0.0) {
            out.push(format!(
                "honest trainers' ROI is {:.4}%: honest training does not pay",
                roi * 100.0
            ));
        }
        for b in self.best.iter().filter(|b| !b.holds()) {
            out.push(format!(
                "{}: best response \"{}\" has ROI {:.4}%, not below {:.4}% ({})",
                b.family,
                b.label,
                b.roi * 100.0,
                b.bound * 100.0,
                b.bound_name
            ));
        }
        out
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.header)?;
        writeln!(
            f,
            "{:<58} {:>10} {:>9} {:>9} {:>9} {:>9} {:>7} {:>8} {:>9} {:>9} {:>8} {:>9}",
            "strategy (NSHD)",
            "capital",
            "compute",
            "rewards",
            "fees+",
            "fees-",
            "tx",
            "slashed",
            "value",
            "profit",
            "ROI %",
            "vs honest"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:<58} {:>10.0} {:>9.1} {:>9.1} {:>9.1} {:>9.1} {:>7.2} {:>8.1} {:>9.1} {:>9.1} {:>8.3} {:>9.3}",
                r.label,
                r.capital,
                r.compute,
                r.rewards,
                r.fees_earned,
                r.fees_paid,
                r.tx_fees,
                r.slashed,
                r.value,
                r.profit,
                r.roi * 100.0,
                r.vs_honest * 100.0
            )?;
        }
        writeln!(f, "honest workers' ROI: {:.3}%", self.honest_roi * 100.0)?;
        if let Some(roi) = self.trainer_roi {
            writeln!(f, "honest trainers' ROI: {:.3}%", roi * 100.0)?;
        }
        writeln!(f, "best responses:")?;
        for b in &self.best {
            writeln!(
                f,
                "  {:<20} {:<58} ROI {:>8.3}%  bound {:>8.3}% ({}): {}",
                b.family,
                b.label,
                b.roi * 100.0,
                b.bound * 100.0,
                b.bound_name,
                if b.holds() { "loses" } else { "PAYS" }
            )?;
        }
        Ok(())
    }
}
