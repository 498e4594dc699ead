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
    /// The connection carrying the request closed before the answer came (the peer
    /// went away, or the relay carrying the connection did), or the request's stream
    /// broke under it, or a relayed connection carried no answer in time (it is closed
    /// then: its relay may have died without a word): the peer may still be reachable
    /// another way, so a call that is safe to repeat may be sent again.
    #[error("request to {peer} failed: its connection closed")]
    ConnectionLost { peer: PeerId },
}
