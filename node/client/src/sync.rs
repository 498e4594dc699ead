//! Blocks over the network: gossip of newly authored blocks, and the `/neuroshard/sync/1`
//! protocol by which a node that is behind (started late, missed gossip, restarted) asks a
//! peer for the canonical blocks after its head and imports them one by one. Fork choice:
//! the longest chain on top of the last finalized block; when a peer's chain does not
//! attach to our head and is longer, we find where the two branches part (above the
//! finalized block), revert ours to that point and import the peer's branch. Every block is
//! fully executed and checked by the runtime before it is stored (seal, author, roots),
//! so a peer can slow us down but never make us accept a wrong block; peers that send
//! undecodable or invalid blocks are penalised.

use crate::client::{unix_millis, Client, ClientError};
use neuroshard_network::{NetworkHandle, Offence, PeerId, Protocol, Verdict};
use neuroshard_primitives::{Block, BlockNumber, Hash};
use neuroshard_runtime::BlockError;
use parity_scale_codec::{Decode, DecodeAll, Encode};
use std::sync::Arc;
use tracing::{debug, info, warn};

/// Most blocks in one sync response.
pub const MAX_BLOCKS_PER_RESPONSE: u32 = 64;

/// A request for canonical blocks `from..from + max`.
#[derive(Clone, Debug, Encode, Decode)]
pub struct SyncRequest {
    pub from: BlockNumber,
    pub max: u32,
}

/// The blocks a peer has, in order (fewer than asked, or none, when it has no more).
#[derive(Clone, Debug, Encode, Decode)]
pub struct SyncResponse {
    pub blocks: Vec<Block>,
}

/// What became of a block offered by a peer.
#[derive(Debug, PartialEq, Eq)]
pub enum Offered {
    /// Imported as the new head.
    Imported,
    /// Already known or not on our head (a fork or stale): nothing to do.
    Ignored,
    /// Ahead of our head: we are missing its ancestors and should sync.
    Ahead,
    /// Invalid: the peer is to blame.
    Invalid,
}

/// Checks and imports one block offered by a peer (gossip or sync). Runs on a blocking
/// thread (import executes the block).
pub fn offer_block(client: &Client, block: &Block) -> Offered {
    let head = client.best_header();
    let hash = block.hash();
    if matches!(client.header(&hash), Ok(Some(_))) {
        return Offered::Ignored;
    }
    if block.header.number > head.number + 1 {
        return Offered::Ahead;
    }
    if block.header.parent_hash != head.hash() {
        // On another branch: longer than ours means sync (and maybe switch, see
        // `sync_from`); as long or shorter, we keep ours (first seen wins ties).
        return if block.header.number > head.number {
            Offered::Ahead
        } else {
            Offered::Ignored
        };
    }
    // A block for a slot that has not started yet cannot be honest.
    let slot_ms = client
        .params()
        .map(|p| p.system.slot_duration_ms.max(1))
        .unwrap_or(1);
    if block.header.slot() > unix_millis() / slot_ms + 1 {
        return Offered::Invalid;
    }
    match client.import_block(block) {
        Ok(()) => Offered::Imported,
        Err(ClientError::Block(BlockError::WrongParent { .. })) => Offered::Ignored,
        Err(ClientError::Block(e)) => {
            warn!(number = block.header.number, error = %e, "invalid block from the network");
            Offered::Invalid
        }
        Err(e) => {
            warn!(number = block.header.number, error = %e, "cannot import block");
            Offered::Ignored
        }
    }
}

/// Handles a gossiped block; returns whether we should sync from the sender.
pub async fn on_gossip_block(client: &Arc<Client>, block: Block) -> (Verdict, bool) {
    let c = client.clone();
    let offered = tokio::task::spawn_blocking(move || offer_block(&c, &block))
        .await
        .unwrap_or(Offered::Ignored);
    match offered {
        Offered::Imported => (Verdict::Accept, false),
        Offered::Ignored => (Verdict::Ignore, false),
        Offered::Ahead => (Verdict::Ignore, true),
        Offered::Invalid => (Verdict::Reject, false),
    }
}

/// Answers a sync request from the canonical chain.
pub fn answer(client: &Client, data: &[u8]) -> Option<Vec<u8>> {
    let req = SyncRequest::decode_all(&mut &data[..]).ok()?;
    let head = client.best_header().number;
    let max = req.max.min(MAX_BLOCKS_PER_RESPONSE);
    let mut blocks = Vec::new();
    let mut bytes = 0usize;
    let limit = Protocol::Sync.max_response() / 2;
    for number in req.from..=head.min(req.from.saturating_add(u64::from(max)).saturating_sub(1)) {
        let Ok(Some(hash)) = client.block_hash(number) else {
            break;
        };
        let Ok(Some(block)) = client.block(&hash) else {
            break;
        };
        bytes += block.encoded_size();
        if bytes > limit && !blocks.is_empty() {
            break;
        }
        blocks.push(block);
    }
    Some(SyncResponse { blocks }.encode())
}

/// Pulls blocks after our head from `peer` until it has no more or one fails.
pub async fn sync_from(client: &Arc<Client>, network: &NetworkHandle, peer: PeerId) {
    let mut imported = 0u64;
    loop {
        let from = client.best_header().number + 1;
        let req = SyncRequest {
            from,
            max: MAX_BLOCKS_PER_RESPONSE,
        };
        let data = match network.request(peer, Protocol::Sync, req.encode()).await {
            Ok(d) => d,
            Err(e) => {
                debug!(%peer, error = %e, "sync request failed");
                break;
            }
        };
        let Ok(resp) = SyncResponse::decode_all(&mut &data[..]) else {
            network.penalise(peer, Offence::Malformed);
            break;
        };
        if resp.blocks.is_empty() {
            break;
        }
        let attaches = resp.blocks[0].header.parent_hash == client.best_header().hash();
        if !attaches {
            if switch_to_longer_fork(client, network, peer).await {
                continue;
            }
            break;
        }
        let c = client.clone();
        let results = tokio::task::spawn_blocking(move || {
            let mut imported = 0u64;
            for block in &resp.blocks {
                match offer_block(&c, block) {
                    Offered::Imported => imported += 1,
                    Offered::Invalid => return (imported, true, false),
                    Offered::Ahead | Offered::Ignored => return (imported, false, false),
                }
            }
            (imported, false, true)
        })
        .await;
        let Ok((n, invalid, go_on)) = results else {
            break;
        };
        imported += n;
        if invalid {
            network.penalise(peer, Offence::InvalidGossip);
        }
        if !go_on {
            break;
        }
    }
    if imported > 0 {
        info!(%peer, imported, head = client.best_header().number, "synced blocks from peer");
    }
}

/// Most blocks fetched to compare a peer's branch with ours.
pub const MAX_REORG_BLOCKS: usize = 1024;

async fn fetch(network: &NetworkHandle, peer: PeerId, from: BlockNumber) -> Option<Vec<Block>> {
    let req = SyncRequest {
        from,
        max: MAX_BLOCKS_PER_RESPONSE,
    };
    let data = network
        .request(peer, Protocol::Sync, req.encode())
        .await
        .ok()?;
    match SyncResponse::decode_all(&mut &data[..]) {
        Ok(r) => Some(r.blocks),
        Err(_) => {
            network.penalise(peer, Offence::Malformed);
            None
        }
    }
}

/// Compares `peer`'s canonical chain above our finalized block with ours and switches to
/// it when it is longer. True when we switched.
async fn switch_to_longer_fork(
    client: &Arc<Client>,
    network: &NetworkHandle,
    peer: PeerId,
) -> bool {
    let finalized = client.finalized_header().number;
    let mut theirs: Vec<Block> = Vec::new();
    let mut from = finalized + 1;
    while theirs.len() < MAX_REORG_BLOCKS {
        let Some(blocks) = fetch(network, peer, from).await else {
            return false;
        };
        if blocks.is_empty() {
            break;
        }
        from += blocks.len() as u64;
        theirs.extend(blocks);
    }
    let ours_at = |n: BlockNumber| client.block_hash(n).ok().flatten();
    let Some(fork) = theirs
        .iter()
        .position(|b| ours_at(b.header.number) != Some(b.hash()))
    else {
        return false;
    };
    let first = &theirs[fork];
    let (their_len, our_len) = (
        theirs.last().map(|b| b.header.number).unwrap_or(0),
        client.best_header().number,
    );
    let Some(ancestor) = first.header.number.checked_sub(1).and_then(ours_at) else {
        return false;
    };
    if first.header.parent_hash != ancestor || their_len <= our_len {
        return false;
    }
    info!(
        %peer,
        fork_at = first.header.number,
        ours = our_len,
        theirs = their_len,
        "peer has a longer branch: switching"
    );
    let branch = theirs.split_off(fork);
    let c = client.clone();
    let outcome = tokio::task::spawn_blocking(move || adopt_branch(&c, &ancestor, &branch))
        .await
        .unwrap_or(Adopted::Stale);
    if outcome == Adopted::Invalid {
        network.penalise(peer, Offence::InvalidGossip);
    }
    outcome == Adopted::Switched
}

/// What became of a peer's branch offered to [`adopt_branch`].
#[derive(Debug, PartialEq, Eq)]
pub enum Adopted {
    /// Our chain now ends with the branch.
    Switched,
    /// The branch is wrong (not linked, a seal that does not verify, a block that does
    /// not execute): the peer is to blame.
    Invalid,
    /// Our own chain moved while the branch was fetched or checked (another peer's blocks
    /// were imported and finalized past the fork point, or the same blocks arrived by
    /// gossip): nothing wrong with the peer, nothing to do.
    Stale,
}

/// Reverts our chain to `ancestor` and imports `branch` (which must build on it), after
/// checking the branch: cheap checks first (contiguous, every block sealed by its author),
/// then executed in full on the fork point's state before anything is reverted. Runs on a
/// blocking thread. Sync runs for several peers at once, so by the time a branch is
/// checked our head may have moved past the fork point, even to finalized blocks; that is
/// [`Adopted::Stale`], never blamed on the peer.
pub fn adopt_branch(client: &Client, ancestor: &Hash, branch: &[Block]) -> Adopted {
    let linked = branch.windows(2).all(|w| {
        w[1].header.parent_hash == w[0].hash() && w[1].header.number == w[0].header.number + 1
    });
    if !linked || !branch.iter().all(|b| b.header.seal_is_valid()) {
        return Adopted::Invalid;
    }
    match client.verify_branch(ancestor, branch) {
        Ok(()) => {}
        Err(e @ (ClientError::Block(_) | ClientError::Runtime(_))) => {
            warn!(error = %e, "the longer branch does not execute: keeping ours");
            return Adopted::Invalid;
        }
        Err(e) => {
            // The fork point or its state is no longer ours to build on (reverted, or
            // too far behind a head that moved on): our side, not the peer's.
            debug!(error = %e, "cannot check the branch on the fork point: keeping ours");
            return Adopted::Stale;
        }
    }
    if let Err(e) = client.revert_to(ancestor) {
        info!(error = %e, "cannot revert to the fork point (our chain moved on): keeping ours");
        return Adopted::Stale;
    }
    for block in branch {
        match offer_block(client, block) {
            Offered::Imported => {}
            Offered::Invalid => return Adopted::Invalid,
            Offered::Ahead | Offered::Ignored => return Adopted::Stale,
        }
    }
    Adopted::Switched
}
