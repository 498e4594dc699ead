//! Acceptance 5: a truncated or corrupt model file gives a clear error naming the file and
//! what is wrong; plus loading by layer range.

mod common;

use neuroshard_inference::fetch::{smollm2_135m_q4_1, verify_file};
use neuroshard_inference::{InferenceError, ModelSource, ModelWeights, Precision};
use std::io::{Read, Seek, SeekFrom, Write};

fn copy_prefix(len: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.gguf");
    let mut src = std::fs::File::open(common::real_model_path()).unwrap();
    let mut buf = Vec::new();
    Read::take(&mut src, len).read_to_end(&mut buf).unwrap();
    std::fs::write(&path, &buf).unwrap();
    (dir, path)
}

#[test]
fn truncated_model_file_is_reported_clearly() {
    let (_dir, path) = copy_prefix(50_000_000);
    let err =
        ModelWeights::load(&ModelSource::Gguf(path.clone()), None, Precision::Native).unwrap_err();
    let msg = err.to_string();
    eprintln!("{msg}");
    assert!(msg.contains(&path.display().to_string()), "{msg}");
    assert!(msg.contains("truncated"), "{msg}");
    let msg = verify_file(&path, &smollm2_135m_q4_1(), false)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("truncated"),
        "{msg}"
    );
    // Cut inside the header.
    let (_dir2, path2) = copy_prefix(1000);
    let msg = ModelWeights::load(&ModelSource::Gguf(path2.clone()), None, Precision::Native)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains(&path2.display().to_string()) && msg.contains("GGUF"),
        "{msg}"
    );
}

#[test]
fn corrupt_model_file_fails_its_hash() {
    let (_dir, path) = copy_prefix(u64::MAX);
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(60_000_000)).unwrap();
    f.write_all(&[0xAB; 64]).unwrap();
    drop(f);
    let err = verify_file(&path, &smollm2_135m_q4_1(), false).unwrap_err();
    assert!(matches!(err, InferenceError::HashMismatch { .. }), "{err}");
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()) && msg.contains("blake2b-256"),
        "{msg}"
    );
    // Garbage instead of a GGUF header.
    std::fs::write(&path, b"definitely not a model").unwrap();
    let msg = ModelWeights::load(&ModelSource::Gguf(path.clone()), None, Precision::Native)
        .unwrap_err()
        .to_string();
    assert!(msg.contains(&path.display().to_string()), "{msg}");
}

#[test]
fn loads_only_the_requested_layers() {
    let w = ModelWeights::load(
        &ModelSource::Gguf(common::real_model_path()),
        Some(10..20),
        Precision::Native,
    )
    .unwrap();
    assert_eq!(w.layers.len(), 10);
    assert!(w.embedding.is_none() && w.lm_head.is_none());
    assert!(ModelWeights::load(
        &ModelSource::Gguf(common::real_model_path()),
        Some(20..31),
        Precision::Native
    )
    .is_err());
}
