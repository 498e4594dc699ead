//! Fault injection for tests: network partitions of loopback processes. With the hidden
//! `--fault-partition-file PATH`, the node re-reads PATH every [`POLL`] and keeps itself
//! cut off from exactly the peer ids it lists (one per line; blank lines and `#`
//! comments ignored); a missing or empty file heals the partition. A test partitions a
//! network by writing each side's file with the other side's peer ids, and heals it by
//! removing them. Lines that are not peer ids are reported and skipped, so a typo
//! cannot silently heal a partition the test meant to keep.

use neuroshard_network::{NetworkHandle, PeerId};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use tokio::sync::watch;
use tracing::warn;

/// How often the file is re-read.
pub const POLL: Duration = Duration::from_millis(250);

/// The peer ids listed in `text`, and the lines that are not peer ids.
pub fn parse(text: &str) -> (HashSet<PeerId>, Vec<String>) {
    let mut peers = HashSet::new();
    let mut bad = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line.parse::<PeerId>() {
            Ok(peer) => {
                peers.insert(peer);
            }
            Err(_) => bad.push(line.to_string()),
        }
    }
    (peers, bad)
}

fn read(path: &Path) -> HashSet<PeerId> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            warn!(path = %path.display(), error = %e, "cannot read the partition file");
            String::new()
        }
    };
    let (peers, bad) = parse(&text);
    for line in bad {
        warn!(path = %path.display(), %line, "not a peer id in the partition file: skipped");
    }
    peers
}

/// Applies `path`'s partition whenever its contents change, until shutdown.
pub async fn follow_file(
    network: NetworkHandle,
    path: PathBuf,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut current = HashSet::new();
    loop {
        let wanted = read(&path);
        if wanted != current {
            network.set_partitioned(wanted.clone());
            current = wanted;
        }
        tokio::select! {
            _ = tokio::time::sleep(POLL) => {}
            _ = shutdown.changed() => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peer_ids_are_read_and_anything_else_reported() {
        let a = PeerId::random();
        let b = PeerId::random();
        let text = format!("# side two\n{a}\n\n  {b}  \nnot-a-peer\n{a}\n");
        let (peers, bad) = parse(&text);
        assert_eq!(peers, HashSet::from([a, b]));
        assert_eq!(bad, vec!["not-a-peer".to_string()]);
        assert!(parse("").0.is_empty());
    }
}
