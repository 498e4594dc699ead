//! Errors of the network service.

use libp2p::PeerId;

#[derive(Debug, thiserror::Error)]
pub enum NetworkError {
    #[error("network setup failed: {0}")]
    Setup(String),
    #[error("cannot listen on {addr}: {reason}")]
    Listen { addr: String, reason: String },
    #[error("the network service has stopped")]
    Stopped,
    #[error("request to {peer} failed: {reason}")]
    Request { peer: PeerId, reason: String },
}
