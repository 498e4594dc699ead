//! Route planning for the pipeline client, in the spirit of Petals' routing: given every
//! provider we know of (this node's own shards and the DHT's records), choose a chain of
//! layer ranges that tiles `0..num_layers` at the least total cost, and give each hop all
//! providers of its range, cheapest first, so the pipeline can fail over to the next one
//! (replaying the session) when a provider dies.
//!
//! Cost of a provider = a fixed per-hop overhead + its measured round-trip time + a
//! penalty per session it is already serving; local shards cost nothing but the hop.

use neuroshard_primitives::LayerRange;
use std::collections::BTreeMap;

/// Milliseconds charged for every hop (serialisation, scheduling).
pub const HOP_COST_MS: f64 = 2.0;
/// Milliseconds charged per session a provider is already serving.
pub const LOAD_COST_MS: f64 = 20.0;

/// One provider `P` (the node's [`crate::billing::Provider`]) of one layer range.
pub struct Candidate<P> {
    pub layers: LayerRange,
    pub provider: P,
    /// Estimated milliseconds per call (see the module docs).
    pub cost_ms: f64,
}

impl<P> Candidate<P> {
    /// A candidate serving `layers` with cost from its round-trip time and load.
    pub fn new(provider: P, layers: LayerRange, rtt_ms: f64, active_sessions: u32) -> Self {
        Self {
            layers,
            provider,
            cost_ms: HOP_COST_MS + rtt_ms + LOAD_COST_MS * f64::from(active_sessions),
        }
    }
}

/// Why no route exists.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("no provider chain covers layers 0-{num_layers}: reachable up to layer {reached}; known ranges: {known}")]
pub struct NoRoute {
    pub num_layers: u16,
    pub reached: u16,
    pub known: String,
}

/// Plans the cheapest route over `candidates` (see the module docs): the providers of
/// each hop in order, cheapest first.
pub fn plan_route<P>(
    num_layers: u16,
    candidates: Vec<Candidate<P>>,
) -> Result<Vec<Vec<P>>, NoRoute> {
    // Providers grouped by exact range, cheapest first.
    let mut by_range: BTreeMap<LayerRange, Vec<Candidate<P>>> = BTreeMap::new();
    for c in candidates {
        if c.layers.end <= num_layers && c.layers.start < c.layers.end {
            by_range.entry(c.layers).or_default().push(c);
        }
    }
    for list in by_range.values_mut() {
        list.sort_by(|a, b| a.cost_ms.total_cmp(&b.cost_ms));
    }
    // Shortest path over layer boundaries (ranges only go forward, so one pass in order
    // of the start boundary is enough).
    let n = num_layers as usize;
    let mut best: Vec<Option<(f64, Option<LayerRange>)>> = vec![None; n + 1];
    best[0] = Some((0.0, None));
    for start in 0..n {
        let Some((cost, _)) = best[start] else {
            continue;
        };
        for (range, list) in by_range.range(
            LayerRange {
                start: start as u16,
                end: 0,
            }..LayerRange {
                start: start as u16 + 1,
                end: 0,
            },
        ) {
            let total = cost + list[0].cost_ms;
            let end = range.end as usize;
            if best[end].is_none_or(|(c, _)| total < c) {
                best[end] = Some((total, Some(*range)));
            }
        }
    }
    if best[n].is_none() {
        let reached = (0..=n).rev().find(|&i| best[i].is_some()).unwrap_or(0) as u16;
        return Err(NoRoute {
            num_layers,
            reached,
            known: by_range
                .keys()
                .map(|r| r.to_string())
                .collect::<Vec<_>>()
                .join(","),
        });
    }
    let mut ranges = Vec::new();
    let mut at = n;
    while at > 0 {
        let Some((_, Some(range))) = best[at] else {
            break;
        };
        ranges.push(range);
        at = range.start as usize;
    }
    ranges.reverse();
    Ok(ranges
        .into_iter()
        .map(|r| {
            by_range
                .remove(&r)
                .unwrap_or_default()
                .into_iter()
                .map(|c| c.provider)
                .collect()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(start: u16, end: u16, name: &'static str, rtt: f64, load: u32) -> Candidate<&'static str> {
        Candidate::new(name, LayerRange { start, end }, rtt, load)
    }

    #[test]
    fn picks_the_cheapest_tiling_and_orders_failover_providers() {
        let hops = plan_route(
            30,
            vec![
                c(0, 10, "a", 1.0, 0),
                c(10, 20, "b-busy", 1.0, 3),
                c(10, 20, "b", 5.0, 0),
                c(20, 30, "c", 1.0, 0),
                c(10, 30, "slow-wide", 500.0, 0),
            ],
        )
        .unwrap();
        assert_eq!(hops, vec![vec!["a"], vec!["b", "b-busy"], vec!["c"]]);
        // One wide fast provider beats two hops.
        let hops = plan_route(
            30,
            vec![
                c(0, 10, "a", 1.0, 0),
                c(10, 20, "b", 50.0, 0),
                c(20, 30, "c", 50.0, 0),
                c(10, 30, "w", 3.0, 0),
            ],
        )
        .unwrap();
        assert_eq!(hops, vec![vec!["a"], vec!["w"]]);
    }

    #[test]
    fn a_gap_is_a_clear_error() {
        let err = plan_route(30, vec![c(0, 10, "a", 1.0, 0), c(20, 30, "c", 1.0, 0)])
            .err()
            .unwrap();
        assert_eq!(err.reached, 10);
        assert!(err.to_string().contains("0-10,20-30"), "{err}");
        assert!(plan_route::<&str>(30, vec![]).is_err());
    }
}
