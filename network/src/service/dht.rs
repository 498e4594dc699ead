//! The event loop's Kademlia events: the lookups the handle asked for end here (provider
//! lookups gather up to [`MAX_PROVIDERS`] peers; a record lookup stops at the first
//! record; a closest-peers walk reports what Kademlia found, each with what the query
//! cost), and records other peers ask us to store are checked first: only verified
//! provider records under their own key are kept, and whoever sends another is penalised.

use super::EventLoop;
use crate::handle::{ClosestPeers, QueryStats, RecordLookup, MAX_PROVIDERS};
use crate::peers::Offence;
use crate::records;
use libp2p::kad::{self, store::RecordStore, QueryId, QueryResult};
use std::time::Instant;
use tracing::debug;

/// What a query cost, from Kademlia's statistics (`started`: when we asked, for a query
/// whose statistics have no end yet).
fn query_stats(stats: &kad::QueryStats, started: Instant, timed_out: bool) -> QueryStats {
    QueryStats {
        requests: stats.num_requests(),
        duration: stats.duration().unwrap_or_else(|| started.elapsed()),
        timed_out,
        pending: stats.num_pending(),
    }
}

impl EventLoop {
    pub(super) fn on_kad(&mut self, event: kad::Event) {
        match event {
            kad::Event::OutboundQueryProgressed {
                id,
                result,
                stats,
                step,
            } => self.on_query(id, result, &stats, step.last),
            kad::Event::InboundRequest { request } => self.on_kad_inbound(request),
            _ => {}
        }
    }

    fn on_query(&mut self, id: QueryId, result: QueryResult, stats: &kad::QueryStats, last: bool) {
        match result {
            QueryResult::GetProviders(result) => self.on_providers(id, result, last),
            QueryResult::GetRecord(result) => self.on_record(id, result, stats, last),
            QueryResult::GetClosestPeers(result) => {
                let (peers, timed_out) = match result {
                    Ok(ok) => (ok.peers, false),
                    Err(kad::GetClosestPeersError::Timeout { peers, .. }) => (peers, true),
                };
                if let Some((started, done)) = self.closest_queries.remove(&id) {
                    let _ = done.send(ClosestPeers {
                        peers: peers.into_iter().map(|p| p.peer_id).collect(),
                        stats: query_stats(stats, started, timed_out),
                    });
                }
            }
            QueryResult::Bootstrap(Ok(_)) if last => debug!("DHT bootstrap done"),
            QueryResult::PutRecord(Err(e)) => {
                debug!(error = %e, "provider record not replicated yet")
            }
            QueryResult::StartProviding(Err(e)) => {
                debug!(error = %e, "provider key not replicated yet")
            }
            _ => {}
        }
    }

    fn on_providers(&mut self, id: QueryId, result: kad::GetProvidersResult, last: bool) {
        if let Some((_, found)) = self.provider_queries.get_mut(&id) {
            if let Ok(kad::GetProvidersOk::FoundProviders { providers, .. }) = result {
                found.extend(providers);
            }
            if found.len() >= MAX_PROVIDERS {
                if let Some(mut q) = self.behaviour().kad.query_mut(&id) {
                    q.finish();
                }
            }
        }
        if last {
            if let Some((done, found)) = self.provider_queries.remove(&id) {
                let _ = done.send(found);
            }
        }
    }

    /// A record lookup ends at the first record found, or at the query's end without one.
    fn on_record(
        &mut self,
        id: QueryId,
        result: kad::GetRecordResult,
        stats: &kad::QueryStats,
        last: bool,
    ) {
        let (value, timed_out) = match result {
            Ok(kad::GetRecordOk::FoundRecord(found)) => {
                if let Some(mut q) = self.behaviour().kad.query_mut(&id) {
                    q.finish();
                }
                (Some(found.record.value), false)
            }
            _ if !last => return,
            Err(kad::GetRecordError::Timeout { .. }) => (None, true),
            _ => (None, false),
        };
        if let Some((started, done)) = self.record_queries.remove(&id) {
            let _ = done.send(RecordLookup {
                value,
                stats: query_stats(stats, started, timed_out),
            });
        }
    }

    /// With record filtering on, Kademlia hands us records other peers want us to store;
    /// only verified provider records under their own key are kept.
    fn on_kad_inbound(&mut self, request: kad::InboundRequest) {
        match request {
            kad::InboundRequest::PutRecord {
                source,
                record: Some(record),
                ..
            } => {
                if records::acceptable(&record.key, &record.value) {
                    if let Err(e) = self.behaviour().kad.store_mut().put(record) {
                        debug!(error = %e, "record store full");
                    }
                } else {
                    self.penalise(source, Offence::ForgedRecord, "unverifiable DHT record");
                }
            }
            kad::InboundRequest::AddProvider {
                record: Some(provider),
            } => {
                if let Err(e) = self.behaviour().kad.store_mut().add_provider(provider) {
                    debug!(error = %e, "provider store full");
                }
            }
            _ => {}
        }
    }
}
