//! What this node holds of Proof of Training for its peers to fetch over the shard
//! protocol: the contributions (gradient receipt plus encoded pseudo-gradient) of recent
//! rounds — its own and the ones it fetched, so a payload spreads beyond its author —
//! and the snapshots of recent adapter versions. Both are bounded: contributions of the
//! last [`ROUNDS_KEPT`] rounds per shard, the last [`SNAPSHOTS_KEPT`] snapshots. A
//! node's board ([`TrainingBoard::persistent`]) also writes every snapshot to a
//! directory under its base path and answers from there what memory no longer holds,
//! so adapter versions survive a restart (the last [`SNAPSHOTS_ON_DISK`] files are
//! kept). It also holds each local holder's progress and the adapter version each local
//! shard serves, for `neuroshard_training`.

use neuroshard_primitives::{Hash, LayerRange};
use neuroshard_serving::protocol::{TrainingCall, TrainingReply};
use neuroshard_serving::server::TrainingService;
use neuroshard_training::{AdapterSnapshot, Contribution};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::PathBuf;

/// Rounds per shard whose contributions are kept.
pub const ROUNDS_KEPT: u32 = 4;
/// Adapter snapshots kept in memory.
pub const SNAPSHOTS_KEPT: usize = 8;
/// Adapter snapshot files kept on disk.
pub const SNAPSHOTS_ON_DISK: usize = 32;

type ContributionKey = (Hash, LayerRange, u32, Hash);
type SnapshotKey = (Hash, LayerRange, Hash);

#[derive(Default)]
struct Held {
    contributions: HashMap<ContributionKey, Contribution>,
    /// (encoded, decoded) per adapter version, oldest first in `order`.
    snapshots: HashMap<SnapshotKey, (Vec<u8>, AdapterSnapshot)>,
    order: VecDeque<SnapshotKey>,
}

/// A local holder's progress, as `neuroshard_training` shows it.
#[derive(Clone, Debug, Default, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct HolderStatus {
    /// The next round this holder trains.
    pub round: u32,
    /// The adapter version it holds (hex; `None`: the initial one).
    pub adapter: Option<String>,
    /// Loss on the held-out corpus before training, then after every round it applied.
    pub held_out_loss: Vec<f32>,
    /// Loss on its own probe windows before and after its last inner loop.
    pub local_loss: Option<(f32, f32)>,
    /// Rounds it aggregated itself, and rounds it resumed from a peer's snapshot.
    pub rounds_applied: u32,
    pub rounds_resumed: u32,
    /// Fault injection: its pseudo-gradients are scaled by this factor.
    pub poison: Option<f32>,
    pub last_error: Option<String>,
}

/// See the module docs.
#[derive(Default)]
pub struct TrainingBoard {
    held: Mutex<Held>,
    status: Mutex<BTreeMap<LayerRange, HolderStatus>>,
    /// The adapter version each of this node's shards serves to new sessions.
    served: Mutex<BTreeMap<LayerRange, Hash>>,
    /// Where snapshots are written (None: memory only), and the files there, oldest
    /// first.
    disk: Option<(PathBuf, Mutex<VecDeque<PathBuf>>)>,
}

impl TrainingBoard {
    /// A board that also keeps snapshots as files in `dir` (created if missing; the
    /// files already there, from before a restart, are served again).
    pub fn persistent(dir: PathBuf) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(&dir)?
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "snapshot"))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        files.sort();
        let files = files.into_iter().map(|(_, p)| p).collect();
        Ok(Self {
            disk: Some((dir, Mutex::new(files))),
            ..Self::default()
        })
    }

    /// The file of a snapshot (when the board is persistent).
    fn file(&self, (model, layers, version): &SnapshotKey) -> Option<PathBuf> {
        let (dir, _) = self.disk.as_ref()?;
        let name = format!(
            "{}-{}-{}-{}.snapshot",
            hex::encode(&model.as_bytes()[..8]),
            layers.start,
            layers.end,
            hex::encode(version.as_bytes())
        );
        Some(dir.join(name))
    }

    /// Writes a snapshot's file (atomically: a temporary file renamed) and drops the
    /// oldest files beyond [`SNAPSHOTS_ON_DISK`]. Failures are logged: the snapshot
    /// is still held in memory.
    fn write(&self, key: &SnapshotKey, encoded: &[u8]) {
        let (Some(path), Some((_, files))) = (self.file(key), self.disk.as_ref()) else {
            return;
        };
        let tmp = path.with_extension("tmp");
        let written = std::fs::write(&tmp, encoded).and_then(|()| std::fs::rename(&tmp, &path));
        if let Err(e) = written {
            return tracing::warn!(path = %path.display(), error = %e, "cannot keep the adapter snapshot on disk");
        }
        let mut files = files.lock();
        files.retain(|p| *p != path);
        files.push_back(path);
        while files.len() > SNAPSHOTS_ON_DISK {
            if let Some(old) = files.pop_front() {
                let _ = std::fs::remove_file(old);
            }
        }
    }

    /// Records that this node's shard of `layers` now serves adapter `version`.
    pub fn set_served(&self, layers: LayerRange, version: Hash) {
        self.served.lock().insert(layers, version);
    }

    /// The adapter version this node's shard of `layers` serves (`None`: the base model
    /// or no such shard).
    pub fn served(&self, layers: LayerRange) -> Option<Hash> {
        self.served.lock().get(&layers).copied()
    }

    /// Updates the status of the local holder of `layers`.
    pub fn update_status(&self, layers: LayerRange, f: impl FnOnce(&mut HolderStatus)) {
        f(self.status.lock().entry(layers).or_default());
    }

    /// The status of the local holder of `layers`, if this node trains it.
    pub fn status(&self, layers: LayerRange) -> Option<HolderStatus> {
        self.status.lock().get(&layers).cloned()
    }

    /// Keeps a contribution the caller has checked (its payload hashes to what its
    /// receipt signs), dropping the shard's rounds older than [`ROUNDS_KEPT`].
    pub fn insert_contribution(&self, contribution: Contribution) {
        let b = &contribution.receipt.body;
        let key = (b.model, b.layers, b.round, b.pseudo_gradient);
        let oldest = b.round.saturating_sub(ROUNDS_KEPT - 1);
        let mut held = self.held.lock();
        held.contributions
            .retain(|(m, l, r, _), _| !(*m == key.0 && *l == key.1 && *r < oldest));
        held.contributions.insert(key, contribution);
    }

    /// The contribution with `pseudo_gradient` in `round` of a shard, when held.
    pub fn contribution(
        &self,
        model: Hash,
        layers: LayerRange,
        round: u32,
        pseudo_gradient: &Hash,
    ) -> Option<Contribution> {
        let key = (model, layers, round, *pseudo_gradient);
        self.held.lock().contributions.get(&key).cloned()
    }

    /// Keeps the snapshot of adapter `version` (already verified against it).
    pub fn insert_snapshot(
        &self,
        model: Hash,
        layers: LayerRange,
        version: Hash,
        snapshot: AdapterSnapshot,
        encoded: Vec<u8>,
    ) {
        let key = (model, layers, version);
        if !self.held.lock().snapshots.contains_key(&key) {
            self.write(&key, &encoded);
        }
        let mut held = self.held.lock();
        if held.snapshots.insert(key, (encoded, snapshot)).is_none() {
            held.order.push_back(key);
        }
        while held.order.len() > SNAPSHOTS_KEPT {
            if let Some(old) = held.order.pop_front() {
                held.snapshots.remove(&old);
            }
        }
    }

    /// The snapshot of adapter `version` of a shard, when held.
    pub fn snapshot(
        &self,
        model: Hash,
        layers: LayerRange,
        version: &Hash,
    ) -> Option<AdapterSnapshot> {
        let key = (model, layers, *version);
        self.held.lock().snapshots.get(&key).map(|(_, s)| s.clone())
    }

    /// The encoded snapshot of adapter `version`, for a peer: from memory, else from
    /// its file (unchecked bytes: the reader verifies them against the version, as it
    /// does a peer's).
    pub fn snapshot_bytes(
        &self,
        model: Hash,
        layers: LayerRange,
        version: &Hash,
    ) -> Option<Vec<u8>> {
        let key = (model, layers, *version);
        if let Some((b, _)) = self.held.lock().snapshots.get(&key) {
            return Some(b.clone());
        }
        std::fs::read(self.file(&key)?).ok()
    }
}

/// Peers' Proof-of-Training calls over the shard protocol are answered from the board.
impl TrainingService for TrainingBoard {
    fn answer(&self, call: TrainingCall) -> TrainingReply {
        match call {
            TrainingCall::Gradient {
                model,
                layers,
                round,
                pseudo_gradient,
            } => TrainingReply::Gradient(
                self.contribution(model, layers, round, &pseudo_gradient)
                    .map(|c| (c.receipt, c.payload)),
            ),
            TrainingCall::Adapter {
                model,
                layers,
                version,
            } => TrainingReply::Adapter(self.snapshot_bytes(model, layers, &version)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_primitives::{
        blake2_256, crypto::keypair_from_uri, GradientReceipt, GradientReceiptBody,
    };
    use sp_core::Pair as _;

    fn contribution(round: u32, tag: u8) -> Contribution {
        let key = keypair_from_uri("//Bob").unwrap();
        let payload = vec![tag; 8];
        let body = GradientReceiptBody {
            worker: key.public().into(),
            model: blake2_256(b"m"),
            layers: LayerRange::new(0, 2).unwrap(),
            round,
            base_adapter: Hash::zero(),
            pseudo_gradient: blake2_256(&payload),
            payload_bytes: 8,
            loss_before: 0,
            loss_after: 0,
        };
        Contribution {
            receipt: GradientReceipt::sign(body, &key),
            payload,
        }
    }

    #[test]
    fn snapshots_survive_a_restart_of_a_persistent_board() {
        let dir = std::env::temp_dir().join(format!("ns-board-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let (model, layers) = (blake2_256(b"m"), LayerRange::new(0, 2).unwrap());
        let snap = AdapterSnapshot {
            round: 1,
            theta: vec![1.0],
            velocity: vec![0.0],
        };
        let board = TrainingBoard::persistent(dir.clone()).unwrap();
        board.insert_snapshot(model, layers, blake2_256(b"v1"), snap, vec![7, 7]);
        drop(board);
        let again = TrainingBoard::persistent(dir.clone()).unwrap();
        assert_eq!(
            again.snapshot_bytes(model, layers, &blake2_256(b"v1")),
            Some(vec![7, 7])
        );
        assert_eq!(
            again.snapshot_bytes(model, layers, &blake2_256(b"v2")),
            None
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn old_rounds_and_old_snapshots_are_dropped() {
        let board = TrainingBoard::default();
        let (model, layers) = (blake2_256(b"m"), LayerRange::new(0, 2).unwrap());
        for round in 0..6 {
            board.insert_contribution(contribution(round, round as u8));
        }
        let held = |round: u32| {
            let hash = blake2_256(&[round as u8; 8]);
            board.contribution(model, layers, round, &hash).is_some()
        };
        assert_eq!(
            (0..6).map(held).collect::<Vec<_>>(),
            [false, false, true, true, true, true]
        );
        for i in 0..(SNAPSHOTS_KEPT as u8 + 2) {
            let snap = AdapterSnapshot {
                round: u32::from(i),
                theta: vec![f32::from(i)],
                velocity: vec![0.0],
            };
            board.insert_snapshot(model, layers, blake2_256(&[i]), snap, vec![i]);
        }
        assert!(board.snapshot(model, layers, &blake2_256(&[0])).is_none());
        assert!(board.snapshot(model, layers, &blake2_256(&[1])).is_none());
        assert_eq!(
            board.snapshot_bytes(model, layers, &blake2_256(&[2])),
            Some(vec![2])
        );
    }
}
