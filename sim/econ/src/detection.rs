//! The measured inputs of the simulation: what `neuroshard bench verify --detection-out
//! FILE` measured on the real model (per cheat mode, the share of a cheater's receipts a
//! validator's re-run rejects, and an upper bound on the compute the cheat saves; the
//! validators' verification cost; how much one machine's capacity probes prove when its
//! accounts answer at once). The simulation takes detection from here, never as a free
//! parameter; the checked-in file is `docs/verify-detection.json`.

use anyhow::{ensure, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One cheat mode as `bench verify` measured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModeDetection {
    /// What the cheater does (the bench's label).
    pub mode: String,
    /// Cheated receipts judged.
    pub receipts: usize,
    /// Share of them a validator's re-run rejected, `d(x)`.
    pub rejected: f64,
    /// Upper bound on the share of the receipt's compute the cheat saves (a cheater's
    /// gain is overstated, never understated).
    pub saved: f64,
}

/// The file `bench verify` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// The command that produced it and the CPU it ran on.
    pub produced_by: String,
    pub cpu: String,
    /// Share of receipts drawn for a check the measurement assumed, in millionths.
    pub sample_permill: u32,
    /// Re-running a receipt relative to serving it.
    pub replay_ratio: f64,
    /// Probes, their re-runs and spot checks as a share of serving compute.
    pub verification_share: f64,
    /// What K accounts' probe windows at once on one machine prove over one window
    /// alone (the Sybil split; 1.0 means K accounts prove exactly the machine).
    pub sybil_split_ratio: f64,
    pub modes: Vec<ModeDetection>,
}

impl Detection {
    /// Reads and checks a detection file.
    pub fn load(path: &Path) -> Result<Self> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let d: Detection = serde_json::from_str(&text)
            .with_context(|| format!("parsing detection file {}", path.display()))?;
        d.validate()?;
        Ok(d)
    }

    /// Rates must be shares, and there must be a mode to cheat with.
    pub fn validate(&self) -> Result<()> {
        ensure!(
            !self.modes.is_empty(),
            "the detection file lists no cheat mode"
        );
        for m in &self.modes {
            ensure!(
                (0.0..=1.0).contains(&m.rejected) && (0.0..=1.0).contains(&m.saved),
                "mode {:?}: rejected and saved must be in 0..=1",
                m.mode
            );
        }
        ensure!(
            self.sybil_split_ratio > 0.0,
            "sybil_split_ratio must be positive"
        );
        Ok(())
    }

    /// The mode a rational cheater picks for a given check exposure: the one saving the
    /// most compute per unit of detection (`saved / rejected`), ties to more saving.
    pub fn stealthiest(&self) -> &ModeDetection {
        self.modes
            .iter()
            .max_by(|a, b| {
                let score = |m: &ModeDetection| m.saved / m.rejected.max(1e-9);
                score(a)
                    .total_cmp(&score(b))
                    .then(a.saved.total_cmp(&b.saved))
            })
            .expect("validated: at least one mode")
    }

    /// The mode saving the most compute (skipping the work outright, when measured).
    pub fn greediest(&self) -> &ModeDetection {
        self.modes
            .iter()
            .max_by(|a, b| {
                a.saved
                    .total_cmp(&b.saved)
                    .then(b.rejected.total_cmp(&a.rejected))
            })
            .expect("validated: at least one mode")
    }
}
