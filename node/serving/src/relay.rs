//! Fault injection for tests (`--fault-relay-probes ACCOUNT`, builds with the
//! `fault-injection` feature only): a relayer that computes nothing for its peers. Every
//! forward call it receives (a validator's liveness probe among them) is passed on, as
//! an ordinary client session of this node, to a provider of the same layers bound to
//! ACCOUNT, and that provider's answer is returned as this node's own. ACCOUNT is an
//! honest provider (the relayer earns uptime on someone else's compute) or the
//! attacker's own machine (many registered accounts in front of one model copy).

use crate::protocol::{ask, InferenceCall, ShardCall, ShardReply};
use crate::ShardNetwork;
use neuroshard_primitives::AccountId;
use parity_scale_codec::Encode;
use parking_lot::RwLock;
use std::sync::Arc;
use tracing::{debug, warn};

/// See the module docs. The default relays nothing.
#[derive(Clone, Default)]
pub struct ProbeRelay {
    target: Option<AccountId>,
    net: Arc<RwLock<Option<ShardNetwork>>>,
}

impl ProbeRelay {
    /// A relay to the providers bound to `target` (none: no relaying).
    pub fn new(target: Option<AccountId>) -> Self {
        if let Some(t) = &target {
            warn!(target = %t, "fault injection: forward calls are relayed to another provider");
        }
        Self {
            target,
            net: Arc::default(),
        }
    }

    /// Starts relaying through `net` (once the node's network is up).
    pub fn attach(&self, net: ShardNetwork) {
        *self.net.write() = Some(net);
    }

    /// The encoded reply to `call` when this relay handles it: forward and end-session
    /// calls while a target is set. `None`: the node answers as usual.
    pub async fn relay(&self, call: &ShardCall) -> Option<Vec<u8>> {
        let target = self.target.as_ref()?;
        let layers = match call {
            ShardCall::Inference(InferenceCall::Forward(reqs)) => reqs.first()?.layers,
            ShardCall::Inference(InferenceCall::EndSession { layers, .. }) => *layers,
            ShardCall::Inference(InferenceCall::CapacityProbe(p)) => p.layers,
            _ => return None,
        };
        let Some(net) = self.net.read().clone() else {
            return Some(ShardReply::Error("relay: no network yet".into()).encode());
        };
        let peers: Vec<_> = net
            .directory
            .snapshot()
            .into_iter()
            .filter(|p| p.account == *target && !p.local && p.shards.contains(&layers))
            .map(|p| p.peer)
            .collect();
        let mut last = format!("relay: no provider of {layers} bound to {target}");
        for peer in peers {
            match ask(&net.network, peer, call.clone()).await {
                Ok(reply) => {
                    debug!(%peer, %layers, "fault injection: call relayed");
                    return Some(reply.encode());
                }
                Err(e) => last = format!("relay: {e:#}"),
            }
        }
        Some(ShardReply::Error(last).encode())
    }
}
