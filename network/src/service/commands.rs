//! The event loop's side of [`NetworkHandle`](crate::NetworkHandle): every [`Command`] a
//! handle sends is carried out here, on the swarm the loop owns. Commands that wait for
//! an answer carry a oneshot sender; DHT lookups park theirs with the loop until the
//! query ends (see [`super::dht`]).

use super::EventLoop;
use crate::handle::{Command, NetworkStats, Reply};
use crate::peers::Offence;
use crate::protocol::{Protocol, Topic};
use crate::records::{
    model_key, record_key, shard_key, ProviderInfo, ProviderRecord, MAX_ADDRESSES_PER_RECORD,
    MAX_ADDRESS_BYTES,
};
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageId};
use libp2p::{kad, PeerId};
use std::collections::HashSet;
use std::time::Instant;
use tracing::{debug, warn};

impl EventLoop {
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Publish { topic, data } => self.publish(topic, data),
            Command::Validate {
                id,
                source,
                acceptance,
            } => self.validate(id, source, acceptance),
            Command::Request {
                peer,
                protocol,
                data,
                done,
            } => self.request(peer, protocol, data, done),
            Command::Respond { reply, data } => self.respond(reply, data),
            Command::Announce(info) => self.announce(info),
            Command::FindProviders { key, done } => {
                let id = self.behaviour().kad.get_providers(key);
                self.provider_queries.insert(id, (done, HashSet::new()));
            }
            Command::GetRecord { key, done } => {
                let id = self.behaviour().kad.get_record(key);
                self.record_queries.insert(id, (Instant::now(), done));
            }
            Command::ClosestPeers { key, done } => {
                let id = self.behaviour().kad.get_closest_peers(key);
                self.closest_queries.insert(id, (Instant::now(), done));
            }
            Command::AddAddress { peer, addr } => {
                let state = self.peers.get_mut(peer);
                let news = !state.connected || !state.announced.contains(&addr);
                state.announce(addr.clone());
                // Kademlia's routing table, and every behaviour that dials (request-
                // response keeps its own address cache: a provider behind NAT is only
                // reachable at the relayed addresses of its record); a connected peer's
                // known address is no news to them.
                if news {
                    self.behaviour().kad.add_address(&peer, addr.clone());
                    self.swarm.add_peer_address(peer, addr);
                }
            }
            Command::Bootstrap => match self.behaviour().kad.bootstrap() {
                Ok(_) => self.bootstrapped = true,
                Err(e) => debug!(error = %e, "cannot bootstrap the DHT yet"),
            },
            Command::Peers(done) => {
                let _ = done.send(self.peers.connected());
            }
            Command::ListenAddrs(done) => {
                let _ = done.send(self.listen_addrs.clone());
            }
            Command::Stats(done) => {
                let _ = done.send(self.stats());
            }
            Command::Penalise { peer, offence } => {
                self.penalise(peer, offence, "reported by the node")
            }
            #[cfg(feature = "fault-injection")]
            Command::Partition(peers) => self.partition(peers),
            Command::Dial(addr) => {
                if let Err(e) = self.swarm.dial(addr.clone()) {
                    warn!(%addr, error = %e, "dial failed");
                }
            }
        }
    }

    fn validate(&mut self, id: MessageId, source: PeerId, acceptance: MessageAcceptance) {
        let rejected = matches!(acceptance, MessageAcceptance::Reject);
        self.behaviour()
            .gossipsub
            .report_message_validation_result(&id, &source, acceptance);
        if rejected {
            self.penalise(source, Offence::InvalidGossip, "rejected gossip message");
        }
    }

    fn respond(&mut self, reply: Reply, data: Vec<u8>) {
        let result = match reply.protocol {
            Protocol::Activations => self
                .behaviour()
                .activations
                .send_response(reply.channel, data),
            Protocol::Sync => self.behaviour().sync.send_response(reply.channel, data),
        };
        if result.is_err() {
            debug!("response not sent: the requester went away");
        }
    }

    fn publish(&mut self, topic: Topic, data: Vec<u8>) {
        let t = IdentTopic::new(topic.name(&self.genesis));
        match self.behaviour().gossipsub.publish(t, data) {
            Ok(_) => {}
            Err(gossipsub::PublishError::NoPeersSubscribedToTopic) => {
                debug!(?topic, "no peers to gossip to")
            }
            Err(gossipsub::PublishError::Duplicate) => {}
            Err(e) => warn!(?topic, error = %e, "gossip publish failed"),
        }
    }

    fn stats(&mut self) -> NetworkStats {
        NetworkStats {
            connections: self.connections.open(),
            routing_table: self
                .behaviour()
                .kad
                .kbuckets()
                .map(|b| b.num_entries())
                .sum(),
            reachability: self.nat.reachability,
            relays: self.nat.relays(),
        }
    }

    /// Where peers can reach this node: its confirmed external addresses, then its
    /// specific (not 0.0.0.0) listen addresses, at most what a record may carry.
    fn reachable_addresses(&self) -> Vec<Vec<u8>> {
        use libp2p::multiaddr::Protocol;
        let unspecified = |a: &libp2p::Multiaddr| {
            a.iter().any(|p| match p {
                Protocol::Ip4(ip) => ip.is_unspecified(),
                Protocol::Ip6(ip) => ip.is_unspecified(),
                _ => false,
            })
        };
        let mut out: Vec<Vec<u8>> = Vec::new();
        let candidates = self
            .swarm
            .external_addresses()
            .chain(self.swarm.listeners())
            .filter(|a| !unspecified(a));
        for addr in candidates {
            let bytes = addr.to_vec();
            if bytes.len() <= MAX_ADDRESS_BYTES && !out.contains(&bytes) {
                out.push(bytes);
            }
            if out.len() == MAX_ADDRESSES_PER_RECORD {
                break;
            }
        }
        out
    }

    fn announce(&mut self, mut info: ProviderInfo) {
        info.addresses = self.reachable_addresses();
        let local = *self.swarm.local_peer_id();
        let model = info.model;
        let shards = info.shards.clone();
        let record = ProviderRecord::sign(info, &self.keypair);
        let kad = &mut self.swarm.behaviour_mut().kad;
        let value = parity_scale_codec::Encode::encode(&record);
        let rec = kad::Record::new(record_key(&model, &local), value);
        if let Err(e) = kad.put_record(rec, kad::Quorum::One) {
            warn!(error = %e, "cannot store our provider record");
        }
        let keys =
            std::iter::once(model_key(&model)).chain(shards.iter().map(|s| shard_key(&model, *s)));
        for key in keys {
            if let Err(e) = kad.start_providing(key) {
                warn!(error = %e, "cannot announce a provider key");
            }
        }
    }
}
