//! Slot-based block production. Time is divided into slots of the chain's
//! `slot_duration_ms` (slot = unix_time_ms / slot_duration); at the start of every slot
//! the task asks the client to author a block, which it does only when the runtime names
//! our key as the slot's author. Building runs on the blocking pool, so a heavy block
//! (thousands of receipts to verify) never stalls the RPC server's async tasks.

use crate::client::{unix_millis, Client};
use neuroshard_primitives::Keypair;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{error, warn};

/// Authors blocks with `key` until `shutdown` turns true.
pub async fn run(client: Arc<Client>, key: Keypair, mut shutdown: watch::Receiver<bool>) {
    loop {
        let slot_ms = match client.params() {
            Ok(p) => p.system.slot_duration_ms.max(1),
            Err(e) => {
                error!(%e, "cannot read the slot duration; block production stops");
                return;
            }
        };
        let now = unix_millis();
        let next_slot = now / slot_ms + 1;
        let wait = next_slot * slot_ms - now;
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(wait)) => {}
            _ = shutdown.changed() => return,
        }
        if *shutdown.borrow() {
            return;
        }
        let client = client.clone();
        let key = key.clone();
        let result =
            tokio::task::spawn_blocking(move || client.author_block(next_slot, &key)).await;
        match result {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => warn!(slot = next_slot, %e, "failed to author a block"),
            Err(e) => error!(slot = next_slot, %e, "block authoring task panicked"),
        }
    }
}
