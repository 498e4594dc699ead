//! Requests to peers we are not connected to. The loop dials such a peer itself, at the
//! addresses it announced (its provider record: relayed ones for a peer behind NAT) and
//! at whatever the behaviours know, holds the requests until a connection to the peer
//! opens, and fails them only when *that* dial fails (or outlives [`DIAL_TIMEOUT`]).
//!
//! Why not leave the dial to request-response (`send_request_with_addresses`): its dial
//! is refused while any other dial to the peer is under way (Kademlia's lookups and
//! bootstraps dial the peers they meet, at the addresses the DHT holds: for a peer
//! behind NAT its unreachable LAN address), and when that other dial fails,
//! request-response fails every request waiting for the peer, although the addresses
//! that would have worked were never tried ("Failed to dial the requested peer"). Our
//! dial runs beside any other ([`PeerCondition::Disconnected`]), and only its own
//! outcome, known by its connection id, decides.

use super::{EventLoop, ResponseSender};
use crate::codec::Request;
use crate::error::NetworkError;
use crate::protocol::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{ConnectionId, DialError};
use libp2p::PeerId;
use std::time::{Duration, Instant};
use tracing::debug;

/// How long requests wait for a dial before they fail. The transport gives up on one
/// address after 10 s (libp2p's connection timeout) and dials up to 8 at once, so a dial
/// ends sooner unless a peer announced many addresses that all hang.
pub(super) const DIAL_TIMEOUT: Duration = Duration::from_secs(30);

/// A request held until its peer is connected.
pub(super) struct Held {
    protocol: Protocol,
    data: Vec<u8>,
    done: ResponseSender,
}

/// Our dial to a peer and the requests waiting for it.
pub(super) struct PendingDial {
    connection: ConnectionId,
    since: Instant,
    held: Vec<Held>,
}

impl EventLoop {
    /// Sends a request to `peer`, dialing it first when we are not connected.
    pub(super) fn request(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        data: Vec<u8>,
        done: ResponseSender,
    ) {
        if self.swarm.is_connected(&peer) {
            return self.send_request(peer, protocol, data, done);
        }
        let held = Held {
            protocol,
            data,
            done,
        };
        if let Some(dial) = self.dials.get_mut(&peer) {
            dial.held.push(held);
            return;
        }
        let addrs = self
            .peers
            .get(&peer)
            .map(|s| s.announced.clone())
            .unwrap_or_default();
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs.clone())
            .extend_addresses_through_behaviour()
            .condition(PeerCondition::Disconnected)
            .build();
        let connection = opts.connection_id();
        match self.swarm.dial(opts) {
            // No address of it known yet (say the bootnode dial that will connect it is
            // under way): the requests wait for a connection within the dial timeout.
            Ok(()) | Err(DialError::NoAddresses) => {
                debug!(%peer, %connection, announced = ?addrs, "dialing a peer to send it a request");
                let dial = PendingDial {
                    connection,
                    since: Instant::now(),
                    held: vec![held],
                };
                self.dials.insert(peer, dial);
            }
            Err(e) => fail(peer, vec![held], &format!("cannot dial it: {e}")),
        }
    }

    /// Hands a request for a connected peer to its protocol's behaviour.
    fn send_request(
        &mut self,
        peer: PeerId,
        protocol: Protocol,
        data: Vec<u8>,
        done: ResponseSender,
    ) {
        let id = match protocol {
            Protocol::Activations => self
                .behaviour()
                .activations
                .send_request(&peer, Request::Frame(data)),
            Protocol::Sync => self
                .behaviour()
                .sync
                .send_request(&peer, Request::Frame(data)),
        };
        self.requests.insert((protocol, id), (peer, done));
    }

    /// A connection to `peer` opened (ours or not): the requests held for it go out.
    pub(super) fn on_dialed(&mut self, peer: PeerId) {
        let Some(dial) = self.dials.remove(&peer) else {
            return;
        };
        for Held {
            protocol,
            data,
            done,
        } in dial.held
        {
            self.send_request(peer, protocol, data, done);
        }
    }

    /// A dial failed: if it was ours, the requests held for its peer fail with it, unless
    /// it had no address to try (they wait for another connection to the peer until
    /// [`expire_dials`](Self::expire_dials)).
    pub(super) fn on_dial_failed(
        &mut self,
        peer: Option<PeerId>,
        connection: ConnectionId,
        error: &DialError,
    ) {
        let Some(peer) = peer else { return };
        if self
            .dials
            .get(&peer)
            .is_none_or(|d| d.connection != connection)
            || matches!(error, DialError::NoAddresses)
        {
            return;
        }
        if let Some(dial) = self.dials.remove(&peer) {
            fail(peer, dial.held, &format!("cannot dial it: {error}"));
        }
    }

    /// Fails the requests of dials older than [`DIAL_TIMEOUT`].
    pub(super) fn expire_dials(&mut self) {
        let expired: Vec<PeerId> = self
            .dials
            .iter()
            .filter(|(_, d)| d.since.elapsed() > DIAL_TIMEOUT)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            if let Some(dial) = self.dials.remove(&peer) {
                fail(
                    peer,
                    dial.held,
                    "no connection to it within the dial timeout",
                );
            }
        }
    }
}

fn fail(peer: PeerId, held: Vec<Held>, reason: &str) {
    debug!(%peer, requests = held.len(), reason, "requests failed before being sent");
    for h in held {
        let _ = h.done.send(Err(NetworkError::Request {
            peer,
            reason: reason.to_string(),
        }));
    }
}
