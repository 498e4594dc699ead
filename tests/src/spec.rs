//! Custom chain specs for tests: the built-in dev spec with shorter slots and epochs,
//! written to a file for `neuroshard run --chain PATH`.

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Writes the dev spec with `slot_duration_ms` and `epoch_length` replaced (and its
/// own id) to `dir/spec.json`; returns the path.
pub fn write_fast_dev_spec(
    dir: &Path,
    slot_duration_ms: u64,
    epoch_length: u64,
) -> anyhow::Result<PathBuf> {
    write_fast_spec(dir, "dev", slot_duration_ms, epoch_length)
}

/// The fast dev spec with no receipt drawn for a spot check: for tests that submit
/// synthetic receipts (signed, but with no activations anyone could re-run), which a
/// draw would hold back from the epoch's payout.
pub fn write_unchecked_dev_spec(
    dir: &Path,
    slot_duration_ms: u64,
    epoch_length: u64,
) -> anyhow::Result<PathBuf> {
    write_spec_with(dir, "dev", slot_duration_ms, epoch_length, |params| {
        params["ponw"]["spot_check_permill"] = 0.into();
    })
}

/// Like [`write_fast_dev_spec`] for any built-in spec (`"dev"` or `"local"`, the
/// four-validator chain).
pub fn write_fast_spec(
    dir: &Path,
    builtin: &str,
    slot_duration_ms: u64,
    epoch_length: u64,
) -> anyhow::Result<PathBuf> {
    write_spec_with(dir, builtin, slot_duration_ms, epoch_length, |_| {})
}

/// Like [`write_fast_spec`], then `edit` changes the genesis parameters
/// (`genesis.params` of the spec JSON) before the spec is written.
pub fn write_spec_with(
    dir: &Path,
    builtin: &str,
    slot_duration_ms: u64,
    epoch_length: u64,
    edit: impl FnOnce(&mut serde_json::Value),
) -> anyhow::Result<PathBuf> {
    let text = neuroshard_chain_spec::builtin_json(builtin).context("built-in spec")?;
    let mut spec: serde_json::Value = serde_json::from_str(text)?;
    spec["id"] = format!("test-{builtin}").into();
    spec["name"] = format!("NeuroShard Test ({builtin})").into();
    let system = &mut spec["genesis"]["params"]["system"];
    system["slot_duration_ms"] = slot_duration_ms.into();
    system["epoch_length"] = epoch_length.into();
    edit(&mut spec["genesis"]["params"]);
    let path = dir.join("spec.json");
    std::fs::write(&path, serde_json::to_vec_pretty(&spec)?)?;
    // The spec must still load.
    neuroshard_chain_spec::load(path.to_str().context("utf-8 path")?)?;
    Ok(path)
}

/// Rewrites the model's canonical layer ranges (`model.shards`, which training rounds
/// are per) in the spec at `path`; the spec must still load.
pub fn set_model_shards(path: &Path, shards: &[&str]) -> anyhow::Result<()> {
    let mut spec: serde_json::Value = serde_json::from_slice(&std::fs::read(path)?)?;
    spec["model"]["shards"] = shards.iter().map(|s| s.to_string()).collect();
    std::fs::write(path, serde_json::to_vec_pretty(&spec)?)?;
    neuroshard_chain_spec::load(path.to_str().context("utf-8 path")?)?;
    Ok(())
}
