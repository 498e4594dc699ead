//! Writes the tiny random-weight GGUF file of every family the oracle fixtures cover
//! (`neuroshard_inference::tiny_gguf::tiny_family`) into a directory, as
//! `scripts/make-oracle-fixtures.py` needs them:
//! `cargo run -p neuroshard-inference --example tiny_family_ggufs -- DIR`.

use neuroshard_inference::tiny_gguf::{tiny_family, tiny_family_files, write_gguf};
use std::path::PathBuf;

fn main() -> anyhow::Result<()> {
    let dir = PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or_else(|| anyhow::anyhow!("usage: tiny_family_ggufs DIR"))?,
    );
    std::fs::create_dir_all(&dir)?;
    for name in tiny_family_files() {
        let spec = tiny_family(&name).ok_or_else(|| anyhow::anyhow!("no family {name}"))?;
        let path = dir.join(format!("{name}.gguf"));
        write_gguf(&path, &spec)?;
        println!("{}", path.display());
    }
    Ok(())
}
