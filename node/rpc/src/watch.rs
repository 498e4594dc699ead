//! `author_submitAndWatchExtrinsic`: submits an extrinsic and reports its way into the
//! chain as Substrate does, one `author_extrinsicUpdate` notification per step:
//! `"ready"` (pooled), `{"inBlock": hash}` (in a block of the best chain),
//! `{"retracted": hash}` (that block left the best chain; it is watched again),
//! `{"finalized": hash}` (the block is final; the subscription ends), or `"dropped"`
//! when it is in no block [`WATCH_BLOCKS`] blocks after submission. A refused extrinsic
//! is refused as by `author_submitExtrinsic` (same codes) and opens no subscription.

use neuroshard_client::{hex_hash, Client};
use neuroshard_primitives::{BlockNumber, Hash};
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::broadcast::error::RecvError;

/// Blocks a watched extrinsic may take to be included before it is reported dropped.
pub const WATCH_BLOCKS: BlockNumber = 256;

/// Where a watched extrinsic is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Seen {
    Pooled,
    InBlock(BlockNumber, Hash),
}

/// Follows the extrinsic `xt` (submitted when the best block was `from`) and sends each
/// update to `send` until it is final or dropped, or `send` fails (the subscriber left).
pub async fn follow<F, Fut>(client: Arc<Client>, xt: Hash, from: BlockNumber, mut send: F)
where
    F: FnMut(Value) -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let mut heads = client.subscribe_new_heads();
    let mut finalized = client.subscribe_finalized_heads();
    if !send(json!("ready")).await {
        return;
    }
    let mut seen = Seen::Pooled;
    let mut scanned = Scanned {
        xt,
        from,
        blocks: Vec::new(),
    };
    loop {
        // Each new best or final block: look where the extrinsic is now.
        let now = match scanned.locate(&client) {
            Ok(now) => now,
            Err(()) => return,
        };
        let update = match (seen, now) {
            (Seen::Pooled, Seen::InBlock(_, hash)) => Some(json!({"inBlock": hex_hash(&hash)})),
            (Seen::InBlock(_, old), Seen::Pooled) => Some(json!({"retracted": hex_hash(&old)})),
            (Seen::InBlock(_, old), Seen::InBlock(_, new)) if old != new => {
                Some(json!({"inBlock": hex_hash(&new)}))
            }
            _ => None,
        };
        seen = now;
        if let Some(update) = update {
            if !send(update).await {
                return;
            }
        }
        let final_number = client.finalized_header().number;
        match seen {
            Seen::InBlock(number, hash) if number <= final_number => {
                send(json!({"finalized": hex_hash(&hash)})).await;
                return;
            }
            Seen::Pooled if client.best_header().number > from + WATCH_BLOCKS => {
                send(json!("dropped")).await;
                return;
            }
            _ => {}
        }
        tokio::select! {
            next = heads.recv() => if matches!(next, Err(RecvError::Closed)) { return },
            next = finalized.recv() => if matches!(next, Err(RecvError::Closed)) { return },
        }
    }
}

/// The best-chain blocks after the submission, each with whether it holds the watched
/// extrinsic: a block is read once, however many heads arrive (only blocks whose hash at
/// a height changed are read again).
struct Scanned {
    xt: Hash,
    from: BlockNumber,
    blocks: Vec<(Hash, bool)>,
}

impl Scanned {
    /// The best-chain block after `from` that holds the extrinsic, if any.
    fn locate(&mut self, client: &Client) -> Result<Seen, ()> {
        let best = client.best_header().number;
        let count = best.saturating_sub(self.from) as usize;
        self.blocks.truncate(count);
        let mut found = Seen::Pooled;
        for i in 0..count {
            let number = self.from + 1 + i as BlockNumber;
            let Some(hash) = client.block_hash(number).map_err(|_| ())? else {
                break;
            };
            if self.blocks.get(i).is_none_or(|(known, _)| *known != hash) {
                let Some(block) = client.block(&hash).map_err(|_| ())? else {
                    break;
                };
                let holds = block.extrinsics.iter().any(|x| x.hash() == self.xt);
                self.blocks.truncate(i);
                self.blocks.push((hash, holds));
            }
            if self.blocks[i].1 && found == Seen::Pooled {
                found = Seen::InBlock(number, hash);
            }
        }
        Ok(found)
    }
}
