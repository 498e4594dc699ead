//! The public-domain text the shard holders train on, shipped in the repository
//! (`training/corpus/`, fables retold in plain English, CC0): a training part that each
//! holder gets a different share of (its "local data"), and a held-out part no holder
//! trains on, which measures whether the shared adapter generalises.

/// The training text (paragraphs separated by blank lines).
pub const TRAIN: &str = include_str!("../corpus/train.txt");
/// The held-out text.
pub const HELD_OUT: &str = include_str!("../corpus/heldout.txt");

/// The non-empty paragraphs of `text`.
pub fn paragraphs(text: &str) -> Vec<&str> {
    text.split("\n\n")
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect()
}

/// Holder `index`'s share of `text` out of `holders`: every `holders`-th paragraph,
/// starting at `index`, joined with blank lines.
pub fn local_share(text: &str, index: usize, holders: usize) -> String {
    paragraphs(text)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| holders > 0 && i % holders == index % holders)
        .map(|(_, p)| p)
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// One token per byte (the tiny test model's vocabulary of 256).
pub fn byte_tokens(text: &str) -> Vec<u32> {
    text.bytes().map(u32::from).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_partition_the_training_text() {
        let all = paragraphs(TRAIN);
        assert!(all.len() >= 30, "corpus has {} paragraphs", all.len());
        assert!(TRAIN.len() + HELD_OUT.len() > 15_000);
        let shares: Vec<String> = (0..3).map(|i| local_share(TRAIN, i, 3)).collect();
        let total: usize = shares.iter().map(|s| paragraphs(s).len()).sum();
        assert_eq!(total, all.len());
        assert_ne!(shares[0], shares[1]);
        // Nothing held out is trained on.
        for p in paragraphs(HELD_OUT) {
            assert!(!TRAIN.contains(p));
        }
    }
}
