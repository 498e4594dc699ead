//! Writes the tiny GGUF files the llama.cpp fixture scripts feed to llama.cpp, one path
//! per line on stdout: `families` (each family's random-weight model,
//! `tiny_gguf::tiny_family`, for `scripts/make-oracle-fixtures.py`) or `vocabularies`
//! (the synthetic vocabulary under each pre-tokenizer kind, `tiny_vocab`, for
//! `scripts/make-tokenizer-fixtures.py`):
//! `cargo run -p neuroshard-inference --example tiny_ggufs -- families|vocabularies DIR`.

use neuroshard_inference::tiny_gguf::{tiny_family, tiny_family_files, write_gguf};
use neuroshard_inference::tiny_vocab::{write_vocab_gguf, TEST_PRES};
use std::path::{Path, PathBuf};

fn write(kind: &str, dir: &Path, name: &str) -> anyhow::Result<PathBuf> {
    let path = dir.join(format!("{name}.gguf"));
    match kind {
        "families" => {
            let spec = tiny_family(name).ok_or_else(|| anyhow::anyhow!("no family {name}"))?;
            write_gguf(&path, &spec)?
        }
        _ => write_vocab_gguf(&path, name)?,
    }
    Ok(path)
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (kind, dir) = match args.as_slice() {
        [kind, dir] if kind == "families" || kind == "vocabularies" => (kind, PathBuf::from(dir)),
        _ => anyhow::bail!("usage: tiny_ggufs families|vocabularies DIR"),
    };
    std::fs::create_dir_all(&dir)?;
    let names: Vec<String> = match kind.as_str() {
        "families" => tiny_family_files(),
        _ => TEST_PRES.iter().map(|p| p.to_string()).collect(),
    };
    for name in names {
        println!("{}", write(kind, &dir, &name)?.display());
    }
    Ok(())
}
