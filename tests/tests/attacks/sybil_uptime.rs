//! Many accounts, one machine (issue 21): uptime paid `1 NSHD` a minute per registered
//! worker that shows the minute's model chunk and answers its liveness probe. Two ways
//! to collect it without the serving capacity it stands for:
//! - **Sybils**: one machine with one model copy (//Ferdie, 0-10) registered once, then
//!   behind it [`SYBILS`] more accounts, each a process that computes nothing and relays
//!   every request it gets (the validator's probes) to Ferdie (`--fault-relay-probes`),
//!   so Ferdie's one model copy answers for all of them (`--fault-answer-foreign-probes`:
//!   his node computes probes of other accounts, which an honest node refuses). Ferdie's
//!   machine has a fixed capacity (`--fault-probe-jobs-per-sec`: [`JOBS_PER_SEC`] probe
//!   jobs a second, all his windows together), so the two phases compare one machine
//!   with itself whatever else the host runs; whether K windows get more out of real
//!   cores than one is measured by `bench verify` (its "accounts' windows at once" line);
//! - **a relayer**: Eve registers for 10-30 and relays her probes to Bob, an honest
//!   provider of 10-30, as an ordinary client session of hers.
//!
//! Checked: Eve earns nothing while Bob and Alice (honest) earn, and blocks keep being
//! finalised; the sybil group (Ferdie and his relayers) earns per minute no more than
//! 1.1x what Ferdie earned registered alone. Before the defence the group earned 9x (a
//! whole minute per account); with probes timed per answer 2.6x (the sum of `work /
//! time` over K answers finishing one after another is the harmonic number H(K) times
//! one answer's). Now every probe of a minute is work done in one shared window
//! (`neuroshard_inference::probe_window`), so the accounts split what the machine does
//! in it. Credit per minute is the `creditPermill` of `UptimeCredited` (one whole
//! minute when the event has no such field, as before the defence). The chain's
//! reference throughput is set far above what the machine proves, so no account's credit
//! is capped and the credits measure the work itself.

use super::*;
use std::collections::BTreeMap;

/// Extra accounts in front of Ferdie's machine.
const SYBILS: usize = 8;
/// Minutes measured in each phase: the pacer gives Ferdie's machine a fixed capacity,
/// so two minutes measure it as well as more would (40, 39, 40 jobs in three).
const MINUTES: usize = 2;
const FULL: u64 = 1_000_000;
/// Layer-positions per second of a whole minute: far above what Ferdie's machine proves.
const REFERENCE: u64 = 10_000_000;
/// Ferdie's machine: probe jobs (32 positions through 10 layers) started per second, far
/// below what even a loaded core of the test host does, so the host's load does not
/// change it.
const JOBS_PER_SEC: &str = "10";
/// The probe window of the test chain: 4 s, so a window holds ~40 jobs and the job in
/// flight at its end is a small part of it.
const WINDOW_MS: u64 = 4_000;

fn sybil_uri(i: usize) -> String {
    format!("//Sybil//{i}")
}

/// Funds every sybil account at genesis (the dev spec endows only the six dev keys).
fn fund_sybils(spec: &Path) {
    let mut json: Value = serde_json::from_slice(&std::fs::read(spec).unwrap()).unwrap();
    let balances = json["genesis"]["balances"].as_array_mut().unwrap();
    for i in 0..SYBILS {
        balances.push(json!([address(&sybil_uri(i)), "1000000000000000000"]));
    }
    std::fs::write(spec, serde_json::to_vec_pretty(&json).unwrap()).unwrap();
    neuroshard_chain_spec::load(spec.to_str().unwrap()).unwrap();
}

/// Uptime credit per (minute, account) in millionths, and which workers were probed in
/// which minute, from the chain's events.
#[derive(Debug, Default)]
struct Uptime {
    credit: BTreeMap<u64, BTreeMap<String, u64>>,
    /// Workers probed (answered or failed), per minute.
    probed: BTreeMap<u64, Vec<String>>,
    /// Workers whose probe was answered (in time and right), per minute.
    answered: BTreeMap<u64, Vec<String>>,
    registered: Vec<String>,
    latest_minute: u64,
    next: u64,
}

impl Uptime {
    fn poll(&mut self, rpc: &RpcClient) -> anyhow::Result<()> {
        for e in rpc.new_events(&mut self.next)? {
            let who = e["worker"].as_str().unwrap_or_default().to_string();
            let minute = e["minute"].as_u64().unwrap_or(0);
            match e["event"].as_str() {
                Some("UptimeCredited") => {
                    let permill = e["creditPermill"].as_u64().unwrap_or(FULL);
                    self.credit.entry(minute).or_default().insert(who, permill);
                }
                Some("LivenessProbed") => {
                    if e["answered"].as_bool() == Some(true) {
                        self.answered.entry(minute).or_default().push(who.clone());
                    }
                    self.probed.entry(minute).or_default().push(who)
                }
                Some("WorkerRegistered") => self.registered.push(who),
                _ => continue,
            }
            self.latest_minute = self.latest_minute.max(minute);
        }
        Ok(())
    }

    /// Closed minutes (a later minute has events) after `after` in which every one of
    /// `group` answered its probe (a minute in which one of them was not yet reachable
    /// would understate what the group can earn).
    fn closed_minutes_with(&self, after: u64, group: &[String]) -> Vec<u64> {
        self.answered
            .iter()
            .filter(|(m, who)| {
                **m > after && **m < self.latest_minute && group.iter().all(|g| who.contains(g))
            })
            .map(|(m, _)| *m)
            .collect()
    }

    /// Total credit of `group` in `minute`.
    fn total(&self, minute: u64, group: &[String]) -> u64 {
        self.credit
            .get(&minute)
            .map_or(0, |c| group.iter().filter_map(|g| c.get(g)).sum())
    }

    fn minutes_credited(&self, who: &str) -> usize {
        self.credit.values().filter(|c| c.contains_key(who)).count()
    }

    /// Waits until `MINUTES` closed minutes after `after` in which all of `group`
    /// answered; returns them.
    fn wait_minutes(
        &mut self,
        rpc: &RpcClient,
        after: u64,
        group: &[String],
        nodes: &[&NodeProcess],
    ) -> Vec<u64> {
        self.wait_n_minutes(rpc, after, group, nodes, MINUTES)
    }

    /// [`Self::wait_minutes`] for `n` minutes.
    fn wait_n_minutes(
        &mut self,
        rpc: &RpcClient,
        after: u64,
        group: &[String],
        nodes: &[&NodeProcess],
        n: usize,
    ) -> Vec<u64> {
        let timeout = PROBE_TIMEOUT + Duration::from_secs(60 * n as u64);
        wait_for("minutes in which the group answered", timeout, || {
            self.poll(rpc)?;
            let m = self.closed_minutes_with(after, group);
            Ok((m.len() >= n).then(|| m[..n].to_vec()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{self:#?}\n{}", joint_log(nodes)))
    }
}

/// Eve relays her probes to Bob: Bob refuses them (another account's probe input), so
/// Eve earns nothing, and Bob and Alice still do.
#[test]
fn a_relayer_earns_nothing_for_probes_an_honest_provider_answers() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |params| {
        params["ponw"]["spot_check_permill"] = 0.into();
    })
    .unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "20-30").unwrap();
    let bob = address("//Bob");
    let b = worker(&spec, dir.path(), ("b", "//Bob"), &boot, "10-30", &[]);
    let relay = ["--fault-relay-probes", bob.as_str()];
    let e = worker(&spec, dir.path(), ("e", "//Eve"), &boot, "10-30", &relay);
    let nodes = [&a, &b, &e];
    for n in nodes {
        n.wait_serving(MODEL_TIMEOUT);
    }
    let rpc = a.rpc();
    let mut seen = Uptime {
        next: 1,
        ..Uptime::default()
    };
    let eve = address("//Eve");
    let alice = address("//Alice");
    let minutes = seen.wait_minutes(&rpc, 0, std::slice::from_ref(&bob), &nodes);
    // Everything the assertions below need has happened, whenever the host lets it: Eve
    // was probed in those minutes, at least one of her relayed probes reached Bob (her
    // directory may learn Bob's provider record only after her first probes, which then
    // fail without reaching him), and both honest providers were credited.
    wait_for(
        "Eve probed, a relayed probe refused, honest credits",
        PROBE_TIMEOUT,
        || {
            seen.poll(&rpc)?;
            let probed = minutes
                .iter()
                .all(|m| seen.probed.get(m).is_some_and(|w| w.contains(&eve)));
            let refused = b
                .log_text()
                .contains("refused another account's capacity probe");
            let honest = seen.minutes_credited(&bob) >= 1 && seen.minutes_credited(&alice) >= 1;
            Ok((probed && refused && honest).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e}\n{seen:#?}\n{}", joint_log(&nodes)));
    println!(
        "minutes {minutes:?}: Eve (relayer) credited in {} minutes, Bob in {}; credits {:?}",
        seen.minutes_credited(&eve),
        seen.minutes_credited(&bob),
        seen.credit
    );
    assert_eq!(
        seen.minutes_credited(&eve),
        0,
        "a relayer earns nothing: {seen:#?}"
    );
    finality_advances(&rpc, &nodes);
}

/// Ferdie's machine (one CPU) registered once, then behind [`SYBILS`] relaying accounts.
#[test]
fn many_accounts_on_one_machine_earn_what_it_earns_once() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |params| {
        params["ponw"]["spot_check_permill"] = 0.into();
        params["ponw"]["probe"]["reference_throughput"] = REFERENCE.into();
        params["ponw"]["probe"]["window_ms"] = WINDOW_MS.into();
        // Deadlines are not what this test is about: a loaded machine finishes the
        // jobs it has in flight at the window's end late, and is credited the jobs it
        // finished in the window.
        params["ponw"]["probe"]["deadline_slack_ms"] = 8_000.into();
    })
    .unwrap();
    fund_sybils(&spec);
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "20-30").unwrap();
    let ferdie = address("//Ferdie");
    let machine = [
        "--fault-answer-foreign-probes",
        "--fault-probe-jobs-per-sec",
        JOBS_PER_SEC,
    ];
    let f = worker(
        &spec,
        dir.path(),
        ("f", "//Ferdie"),
        &boot,
        "0-10",
        &machine,
    );
    let rpc = a.rpc();
    let mut seen = Uptime {
        next: 1,
        ..Uptime::default()
    };

    // Phase 1: Ferdie's machine registered once.
    let nodes = [&a, &f];
    for n in nodes {
        n.wait_serving(MODEL_TIMEOUT);
    }
    // The first minute he answers is a warm-up (weights paged in, pools started).
    let warm = seen.wait_n_minutes(&rpc, 0, std::slice::from_ref(&ferdie), &nodes, 1);
    let once = seen.wait_minutes(&rpc, warm[0], std::slice::from_ref(&ferdie), &nodes);
    let single: u64 = once
        .iter()
        .map(|m| seen.total(*m, std::slice::from_ref(&ferdie)))
        .sum();

    // Phase 2: the same machine behind SYBILS more accounts.
    let sybils: Vec<NodeProcess> = (0..SYBILS)
        .map(|i| {
            let uri = sybil_uri(i);
            let extra = ["--fault-relay-probes", ferdie.as_str()];
            let name = format!("s{i}");
            worker(&spec, dir.path(), (&name, &uri), &boot, "0-10", &extra)
        })
        .collect();
    let mut all: Vec<&NodeProcess> = nodes.to_vec();
    all.extend(sybils.iter());
    for s in &sybils {
        s.wait_serving(MODEL_TIMEOUT);
    }
    let mut group: Vec<String> = (0..SYBILS).map(|i| address(&sybil_uri(i))).collect();
    group.push(ferdie.clone());
    let start = seen.latest_minute;
    let many = seen.wait_minutes(&rpc, start, &group, &all);
    let grouped: u64 = many.iter().map(|m| seen.total(*m, &group)).sum();
    println!(
        "uptime credit (millionths of a minute) over {MINUTES} minutes: Ferdie alone {single} \
         (minutes {once:?}); Ferdie + {SYBILS} sybils {grouped} (minutes {many:?}); \
         per minute {:?}",
        seen.credit,
    );
    assert!(
        seen.minutes_credited(&address("//Alice")) >= 1,
        "honest providers earn: {seen:#?}"
    );
    assert!(single > 0, "Ferdie alone earns: {seen:#?}");
    assert!(
        grouped * 10 <= single * 11,
        "{SYBILS} sybils on one machine earned {grouped} against {single} registered once"
    );
    finality_advances(&rpc, &all);
}

/// Bob serves behind a slow path (every reply to a shard call held back 150 ms, a 150 ms
/// longer round trip): he works the same window as a near provider, so every minute he
/// is probed is credited in full. (The reference is set to 1 layer-position per second,
/// so any answer in time and right earns a whole minute: what is tested is that the
/// deadline leaves room for the round trip, not the machine's speed.)
#[test]
fn an_honest_provider_behind_a_150_ms_round_trip_earns_full_uptime() {
    let dir = tempfile::tempdir().unwrap();
    let spec = write_spec_with(dir.path(), "dev", 1000, 10, |params| {
        params["ponw"]["spot_check_permill"] = 0.into();
        params["ponw"]["probe"]["reference_throughput"] = 1.into();
    })
    .unwrap();
    let (a, boot) = NodeProcess::alice_serving(&spec, dir.path(), "20-30").unwrap();
    let slow = ["--fault-reply-delay-ms", "150"];
    let b = worker(&spec, dir.path(), ("b", "//Bob"), &boot, "10-30", &slow);
    let nodes = [&a, &b];
    for n in nodes {
        n.wait_serving(MODEL_TIMEOUT);
    }
    let rpc = a.rpc();
    let mut seen = Uptime {
        next: 1,
        ..Uptime::default()
    };
    let bob = address("//Bob");
    let minutes = seen.wait_minutes(&rpc, 0, std::slice::from_ref(&bob), &nodes);
    let credits: Vec<u64> = minutes
        .iter()
        .map(|m| seen.total(*m, std::slice::from_ref(&bob)))
        .collect();
    println!("Bob (150 ms slower path): minutes {minutes:?}, credits {credits:?}");
    assert!(
        credits.iter().all(|c| *c == FULL),
        "every probed minute is credited in full: {credits:?}\n{seen:#?}\n{}",
        joint_log(&nodes)
    );
    finality_advances(&rpc, &nodes);
}
