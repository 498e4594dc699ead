//! Pre-tokenizers by `tokenizer.ggml.pre` against llama.cpp: a synthetic byte-level BPE
//! vocabulary (`tiny_vocab`, regenerated here byte for byte) under each kind of
//! pre-tokenizer tokenizes the fixture's texts to the ids llama.cpp gave
//! (`scripts/make-tokenizer-fixtures.py`), with llama.cpp's add-BOS default.

use neuroshard_inference::tiny_vocab::{write_vocab_gguf, TEST_PRES};
use neuroshard_inference::tokenizer::Tokenizer;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::Path;

#[derive(Deserialize)]
struct File {
    gguf_sha256: String,
    add_bos: bool,
    ids: Vec<Vec<u32>>,
}

#[derive(Deserialize)]
struct Fixture {
    texts: Vec<String>,
    files: HashMap<String, File>,
}

#[test]
fn every_pre_tokenizer_tokenizes_as_llama_cpp_does() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokenizers.json");
    let fixture: Fixture =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("fixture")).expect("json");
    let dir = tempfile::tempdir().unwrap();
    for pre in TEST_PRES {
        let expected = &fixture.files[pre];
        let gguf = dir.path().join(format!("{pre}.gguf"));
        write_vocab_gguf(&gguf, pre).unwrap();
        let digest = hex::encode(Sha256::digest(std::fs::read(&gguf).unwrap()));
        assert_eq!(
            digest, expected.gguf_sha256,
            "{pre}: rerun the fixture script"
        );
        let tok = Tokenizer::from_gguf_file(&gguf).unwrap();
        assert_eq!(tok.add_bos, expected.add_bos, "{pre}");
        for (text, ids) in fixture.texts.iter().zip(&expected.ids) {
            assert_eq!(&tok.encode(text).unwrap(), ids, "{pre}: {text:?}");
            assert_eq!(&tok.decode(ids, false).unwrap(), text, "{pre}");
        }
    }
}

#[test]
fn an_unknown_pre_tokenizer_is_an_error_listing_the_supported_ones() {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("falcon.gguf");
    write_vocab_gguf(&gguf, "falcon").unwrap();
    let msg = Tokenizer::from_gguf_file(&gguf)
        .err()
        .expect("an error")
        .to_string();
    assert!(
        msg.contains("\"falcon\"") && msg.contains("llama-bpe, qwen2"),
        "{msg}"
    );
    assert!(msg.contains("falcon.gguf"), "{msg}");
}
