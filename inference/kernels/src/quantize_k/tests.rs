//! The ports against llama.cpp's own bytes: every row of `fixtures/kquant_ref.json`
//! (random rows of several distributions and edge rows: zeros, constants, negative or
//! positive only, one huge value, tiny values, sparse, mixed magnitudes; made by
//! `scripts/make-kquant-fixtures.py` through libggml-base's `quantize_row_q*_K_ref`)
//! quantized to Q4_K, Q5_K and Q6_K must give exactly llama.cpp's bytes.

use super::*;
use std::collections::BTreeMap;

const FIXTURE: &str = include_str!("../fixtures/kquant_ref.json");

/// Row name -> (input values, {format: llama.cpp's bytes in hex}).
fn fixture_rows() -> BTreeMap<String, (Vec<f32>, BTreeMap<String, String>)> {
    let v: serde_json::Value = serde_json::from_str(FIXTURE).expect("fixture is JSON");
    let rows = v["rows"].as_object().expect("rows");
    rows.iter()
        .map(|(name, entry)| {
            let entry = entry.as_object().expect("row entry");
            let bits = entry["bits"].as_array().expect("bits");
            let x = bits
                .iter()
                .map(|b| f32::from_bits(b.as_u64().expect("u32 bits") as u32))
                .collect();
            let formats = entry
                .iter()
                .filter(|(k, _)| *k != "bits")
                .map(|(k, hex)| (k.clone(), hex.as_str().expect("hex").to_string()))
                .collect();
            (name.clone(), (x, formats))
        })
        .collect()
}

fn check(format: &str, dtype: GgmlDType) {
    let rows = fixture_rows();
    assert!(rows.len() >= 18, "fixture has {} rows", rows.len());
    let mut wrong = Vec::new();
    for (name, (x, want)) in &rows {
        let ours = quantize_k(dtype, x).expect("whole super-blocks");
        let ours: String = ours.iter().map(|b| format!("{b:02x}")).collect();
        if ours != want[format] {
            wrong.push(name.clone());
        }
    }
    assert!(
        wrong.is_empty(),
        "{format}: rows differing from llama.cpp: {wrong:?}"
    );
}

#[test]
fn q4_k_equals_llama_cpp() {
    check("q4_k", GgmlDType::Q4K);
}

#[test]
fn q5_k_equals_llama_cpp() {
    check("q5_k", GgmlDType::Q5K);
}

#[test]
fn q6_k_equals_llama_cpp() {
    check("q6_k", GgmlDType::Q6K);
}

#[test]
fn rejects_partial_blocks_and_other_formats() {
    assert!(quantize_k(GgmlDType::Q4K, &[0.5; 300]).is_err());
    assert!(quantize_k(GgmlDType::Q8_0, &[0.5; 256]).is_err());
    assert_eq!(quantize_k(GgmlDType::Q6K, &[0.5; 512]).unwrap().len(), 420);
}
