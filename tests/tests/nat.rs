//! Home machines behind NAT serve each other (issue 28), on real network namespaces (run
//! as root; where namespaces cannot be made the test fails saying why). A public segment
//! (198.18.0.0/24, a bridge) holds two public nodes, both relays: Alice (the validator
//! and bootnode) and Dave, each serving layers 0-10. Two home segments sit behind their
//! own NAT routers (nft masquerade; unsolicited inbound TCP is reset, anything else
//! dropped, as a home router's firewall does): Bob serves 10-20 behind router A
//! (198.18.1.0/24), Charlie 20-30 behind router B (198.18.2.0/24). No node gets a NAT
//! flag: each finds out it is private (AutoNAT), reserves with the relays it met and
//! announces its relayed addresses in its provider record.
//!
//! Shown: the home nodes cannot be dialed directly; they turn private, hold two relay
//! reservations each and appear in `neuroshard_shards`; a completion asked of Bob runs
//! through Charlie, and one asked of Alice through both, matching single-process
//! output; DCUtR's first punch between Bob and Charlie fails (router B drops router A's
//! packets until then), and once the way is open a retry upgrades the relayed
//! connection to a direct one (`system_peers` says `direct-after-punch`). Then router
//! A's public address changes (the old one goes dead, as when an ISP hands a home router
//! another): Bob makes his reservations with both relays again by himself, neither
//! relay keeps his old connection (a relay routing circuits to the reservation on it
//! would lose them), his record still carries relayed addresses, and completions
//! through him (asked of Alice, and of Charlie behind the other NAT) work again. Then
//! Charlie restarts without hole punching (`--fault-no-hole-punching`: relay only, as
//! behind a symmetric NAT); Bob's completions through Charlie keep one relayed
//! connection busy for over two minutes (beyond libp2p's default circuit limits of 2
//! minutes and 128 KiB); then a streamed completion asked of Bob runs through a relay,
//! and the relay carrying it is killed mid-generation: the call goes through the other
//! relay and the output does not change. Finally the NATed workers' receipts are paid
//! at an epoch boundary.

use neuroshard_tests::chain::address;
use neuroshard_tests::generation::{complete_streamed, generate_text};
use neuroshard_tests::http::request;
use neuroshard_tests::netns::{in_netns, Lab};
use neuroshard_tests::spec::write_fast_dev_spec;
use neuroshard_tests::{wait_for, NodeProcess};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

const PROMPT: &str = "The capital of France is";
const MODEL_TIMEOUT: Duration = Duration::from_secs(600);
const NET_TIMEOUT: Duration = Duration::from_secs(90);
/// Bound on the wait for a punch once the way is open: a punch that failed is tried
/// again 10 s later, then after 20 s, 40 s... per further failure (see the network
/// crate's `service/punch.rs`); at most a couple of failures precede the unblocking.
const PUNCH_TIMEOUT: Duration = Duration::from_secs(300);
const PORT: u16 = 4001;

/// One node: its namespace, address, key and shards.
struct Spot {
    ns: &'static str,
    ip: &'static str,
    key: &'static str,
    shards: &'static str,
}

const ALICE: Spot = Spot {
    ns: "p1",
    ip: "198.18.0.1",
    key: "//Alice",
    shards: "0-10",
};
const DAVE: Spot = Spot {
    ns: "p2",
    ip: "198.18.0.2",
    key: "//Dave",
    shards: "0-10",
};
const BOB: Spot = Spot {
    ns: "ha",
    ip: "198.18.1.2",
    key: "//Bob",
    shards: "10-20",
};
const CHARLIE: Spot = Spot {
    ns: "hb",
    ip: "198.18.2.2",
    key: "//Charlie",
    shards: "20-30",
};

/// A home router's rules: masquerade out of `wan`; from `wan` only replies get in
/// (new TCP is reset, the rest dropped).
const ROUTER_RULES: &str = r#"
table ip nat {
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
}
table inet filter {
  chain input {
    type filter hook input priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto tcp reject with tcp reset
    iifname "wan" drop
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" meta l4proto tcp reject with tcp reset
    iifname "wan" drop
  }
}
"#;

/// Builds the public segment and the two homes behind their routers.
fn build(lab: &mut Lab) -> anyhow::Result<()> {
    let sw = lab.add("sw")?;
    neuroshard_tests::netns::ip(&["-n", &sw, "link", "add", "br0", "type", "bridge"])?;
    neuroshard_tests::netns::ip(&["-n", &sw, "link", "set", "br0", "up"])?;
    let public = [
        ("p1", "eth0", "198.18.0.1/24"),
        ("p2", "eth0", "198.18.0.2/24"),
        ("ra", "wan", "198.18.0.11/24"),
        ("rb", "wan", "198.18.0.12/24"),
    ];
    for (name, iface, cidr) in public {
        let ns = lab.add(name)?;
        let port = format!("to-{name}");
        lab.link(&ns, iface, &sw, &port)?;
        neuroshard_tests::netns::ip(&["-n", &sw, "link", "set", &port, "master", "br0"])?;
        lab.address(&ns, iface, cidr)?;
    }
    for (router, home, net) in [("ra", "ha", "198.18.1"), ("rb", "hb", "198.18.2")] {
        let (router, home) = (lab.name(router), lab.add(home)?);
        lab.link(&router, "lan", &home, "eth0")?;
        lab.address(&router, "lan", &format!("{net}.1/24"))?;
        lab.address(&home, "eth0", &format!("{net}.2/24"))?;
        let gateway = format!("{net}.1");
        neuroshard_tests::netns::ip(&["-n", &home, "route", "add", "default", "via", &gateway])?;
        lab.exec(&router, "sysctl", &["-qw", "net.ipv4.ip_forward=1"], None)?;
        lab.exec(&router, "nft", &["-f", "-"], Some(ROUTER_RULES))?;
    }
    let rb = lab.name("rb");
    lab.exec(&rb, "nft", &["-f", "-"], Some(PUNCH_BLOCK))?;
    Ok(())
}

/// Router B drops everything from router A (until [`unblock_punch`]), so the first hole
/// punches between Bob and Charlie fail; relays (other addresses) still pass.
const PUNCH_BLOCK: &str = r#"
table ip punchblock {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    ip saddr 198.18.0.11 drop
  }
}
"#;

fn unblock_punch(lab: &Lab) -> anyhow::Result<()> {
    let rb = lab.name("rb");
    lab.exec(&rb, "nft", &["delete", "table", "ip", "punchblock"], None)
}

/// A running node and where it runs.
struct Node {
    ns: String,
    ip: &'static str,
    process: Option<NodeProcess>,
    base: PathBuf,
    args: Vec<String>,
    restarts: usize,
}

impl Node {
    fn start(lab: &Lab, spec: &Path, dir: &Path, spot: &Spot, extra: &[&str]) -> Self {
        let base = dir.join(spot.ns);
        let mut args: Vec<String> = [
            "run",
            "--chain",
            spec.to_str().unwrap(),
            "--base-path",
            base.to_str().unwrap(),
            "--key",
            spot.key,
            "--shards",
            spot.shards,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let mut node = Self {
            ns: lab.name(spot.ns),
            ip: spot.ip,
            process: None,
            base,
            args,
            restarts: 0,
        };
        node.launch(PORT, &[]);
        node
    }

    /// (Re)starts the process with the node's arguments and `extra`, listening on
    /// `port` (TCP and QUIC).
    fn launch(&mut self, port: u16, extra: &[&str]) {
        let log = self.base.with_extension(format!("{}.log", self.restarts));
        self.restarts += 1;
        let listen = format!("/ip4/{0}/tcp/{port},/ip4/{0}/udp/{port}/quic-v1", self.ip);
        let mut args: Vec<&str> = self.args.iter().map(String::as_str).collect();
        args.extend_from_slice(&["--listen", &listen]);
        args.extend_from_slice(extra);
        let launcher = ["ip", "netns", "exec", self.ns.as_str()];
        self.process = Some(NodeProcess::start_via(&launcher, &args, &log).unwrap());
    }

    fn process(&self) -> &NodeProcess {
        self.process.as_ref().expect("node is running")
    }

    fn peer_id(&self) -> String {
        let addr = self.process().wait_p2p_addr().unwrap();
        addr.rsplit("/p2p/").next().unwrap().to_string()
    }

    fn rpc(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        let rpc = self.process().rpc();
        in_netns(&self.ns, || rpc.call(method, params))?
    }

    fn metrics(&self) -> anyhow::Result<String> {
        let api = self.process().api_port();
        let r = in_netns(&self.ns, || request(api, "GET", "/metrics", None))??;
        Ok(r.body)
    }

    fn log(&self) -> String {
        self.process().log_text()
    }

    /// This node's connected peer `peer` in `system_peers`.
    fn peer(&self, peer: &str) -> anyhow::Result<Option<Value>> {
        let peers = self.rpc("system_peers", json!([]))?;
        Ok(peers
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["peerId"] == peer)
            .cloned())
    }

    /// A greedy completion of `tokens` asked of this node's HTTP API; on failure the
    /// test fails with the logs of this node and of `route` (the providers it uses).
    fn complete(&self, tokens: usize, route: &[&Node]) -> String {
        let (api, ns) = (self.process().api_port(), self.ns.clone());
        let (tx, _rx) = std::sync::mpsc::channel();
        in_netns(&ns, || complete_streamed(api, PROMPT, tokens, tx))
            .unwrap()
            .unwrap_or_else(|e| {
                let logs: Vec<String> = route.iter().map(|n| n.log()).collect();
                panic!("{e}\n{}\n----\n{}", self.log(), logs.join("\n----\n"))
            })
    }
}

/// The value of the metric line starting with `name` (labels included).
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.trim().parse().ok())
}

/// Waits until `node`'s /metrics say it is `state` (public, private) with `relays`
/// relay reservations.
fn wait_reachability(node: &Node, state: &str, relays: usize) {
    let what = format!("{state}, with {relays} relay reservations");
    let gauge = format!("neuroshard_reachability{{state=\"{state}\"}}");
    wait_for(&what, NET_TIMEOUT, || {
        let m = node.metrics()?;
        let reservations = metric(&m, "neuroshard_relay_reservations");
        Ok((metric(&m, &gauge) == Some(1.0) && reservations == Some(relays as f64)).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
}

/// Waits until `node` sees every provider in `neuroshard_shards`, those of `natted`
/// with relayed addresses in their records.
fn wait_providers(node: &Node, natted: &[&str]) {
    wait_for("every provider, NATed ones relayed", NET_TIMEOUT, || {
        let v = node.rpc("neuroshard_shards", json!([]))?;
        let providers = v["providers"].as_array().cloned().unwrap_or_default();
        let mut ranges: Vec<&str> = providers
            .iter()
            .flat_map(|p| p["shards"].as_array().into_iter().flatten())
            .filter_map(|s| s.as_str())
            .collect();
        ranges.sort();
        let relayed = |peer: &str| {
            providers.iter().any(|p| {
                let addrs = p["addresses"].as_array().into_iter().flatten();
                p["peerId"] == peer
                    && addrs
                        .filter_map(|a| a.as_str())
                        .any(|a| a.contains("/p2p-circuit"))
            })
        };
        let done =
            ranges == ["0-10", "0-10", "10-20", "20-30"] && natted.iter().all(|p| relayed(p));
        Ok(done.then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", node.log()));
}

/// Neither home node can be reached from the public segment: not at its own address
/// (no route) nor at its router's (a reset).
fn assert_not_dialable(alice: &Node) {
    let targets = ["198.18.1.2", "198.18.2.2", "198.18.0.11", "198.18.0.12"];
    let results = in_netns(&alice.ns, || {
        targets.map(|ip| {
            let addr = std::net::SocketAddr::new(ip.parse().unwrap(), PORT);
            std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_ok()
        })
    })
    .unwrap();
    assert_eq!(results, [false; 4], "a home node was dialable directly");
}

/// Adds to `paid` the accounts `node`'s chain rewarded for tokens in the blocks after
/// `seen` (which moves to the best block).
fn paid_workers(node: &Node, seen: &mut u64, paid: &mut Vec<String>) -> anyhow::Result<()> {
    let rpc = node.process().rpc();
    let best = in_netns(&node.ns, || rpc.best_number())??;
    while *seen < best {
        *seen += 1;
        let rewards = node.rpc("neuroshard_rewards", json!([*seen]))?;
        for r in rewards.as_array().into_iter().flatten() {
            if r["layer_tokens"].as_u64().is_some_and(|t| t > 0) {
                paid.extend(r["account"].as_str().map(str::to_string));
            }
        }
    }
    Ok(())
}

/// Asks Bob for completions (through Charlie, over a relay) every few seconds until
/// Bob's relayed connection to Charlie has been open for over two minutes and has
/// carried several completions' activations. With libp2p's default circuit limits (a
/// circuit lives 2 minutes and carries 128 KiB) it would have been closed and replaced
/// before: its age would never pass 120 s.
fn relayed_for_over_two_minutes(bob: &Node, charlie: &Node, expected: &str) {
    let charlie_id = charlie.peer_id();
    let start = std::time::Instant::now();
    let mut completions = 0;
    loop {
        assert_eq!(bob.complete(24, &[charlie]), expected);
        completions += 1;
        let link = bob
            .peer(&charlie_id)
            .unwrap()
            .expect("Bob is connected to Charlie");
        assert_eq!(link["link"], "relayed", "{link}");
        if link["linkSecs"].as_u64().is_some_and(|s| s >= 125) && completions >= 4 {
            eprintln!("Bob -> Charlie after {completions} relayed completions: {link}");
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the relayed connection to Charlie did not last: {link}\n{}",
            bob.log()
        );
        std::thread::sleep(Duration::from_secs(5));
    }
}

/// Streams a completion asked of Bob and, after its first piece, kills the relay that
/// carries Bob's connection to Charlie (one of `relays`, with their peer ids): the
/// output must not change, and Bob must then reach Charlie through the other relay.
/// Returns the index of the relay killed.
fn kill_relay_mid_generation(
    bob: &Node,
    charlie_id: &str,
    relays: [(&mut Node, String); 2],
    expected: &str,
) -> usize {
    let (api, ns) = (bob.process().api_port(), bob.ns.clone());
    let (first_piece_tx, first_piece) = std::sync::mpsc::channel();
    let generation = std::thread::spawn(move || {
        in_netns(&ns, || complete_streamed(api, PROMPT, 96, first_piece_tx))
    });
    first_piece
        .recv_timeout(Duration::from_secs(180))
        .unwrap_or_else(|e| panic!("no text streamed ({e})\n{}", bob.log()));
    let link = bob
        .peer(charlie_id)
        .unwrap()
        .expect("Bob is connected to Charlie");
    assert_eq!(link["link"], "relayed", "{link}");
    let relay = link["relay"].as_str().unwrap_or_default().to_string();
    let [mut first, mut second] = relays;
    let (killed, other, index) = if first.1 == relay {
        (&mut first, &second, 0)
    } else {
        assert_eq!(
            second.1, relay,
            "Charlie relayed by an unknown peer: {link}"
        );
        (&mut second, &first, 1)
    };
    eprintln!("Bob -> Charlie mid-generation: {link}; killing that relay");
    killed.0.process = None;
    let text = generation.join().unwrap().unwrap();
    let text = text.unwrap_or_else(|e| panic!("{e}\n{}", bob.log()));
    assert_eq!(text, expected, "output changed by the relay failover");
    let link = bob
        .peer(charlie_id)
        .unwrap()
        .expect("Bob is connected to Charlie");
    assert_eq!(link["link"], "relayed", "{link}");
    assert_eq!(
        link["relay"],
        other.1.as_str(),
        "not through the other relay: {link}"
    );
    eprintln!("Bob -> Charlie after the relay's death: {link}");
    index
}

#[test]
fn home_nodes_behind_nat_serve_each_other() {
    // The single-process oracle first (it also puts the model in the shared cache).
    let expected = generate_text(PROMPT, 24, &[]).unwrap();
    let expected_long = generate_text(PROMPT, 96, &[]).unwrap();

    let mut lab = Lab::new().unwrap();
    build(&mut lab).unwrap_or_else(|e| panic!("cannot build the NAT network: {e:#}"));
    let dir = tempfile::tempdir().unwrap();
    let spec = write_fast_dev_spec(dir.path(), 1000, 10).unwrap();

    let mut alice = Node::start(&lab, &spec, dir.path(), &ALICE, &["--validator"]);
    let boot = alice.process().wait_p2p_addr().unwrap();
    let with_boot = ["--bootnodes", boot.as_str()];
    let mut dave = Node::start(&lab, &spec, dir.path(), &DAVE, &with_boot);
    let bob = Node::start(&lab, &spec, dir.path(), &BOB, &with_boot);
    let mut charlie = Node::start(&lab, &spec, dir.path(), &CHARLIE, &with_boot);
    for node in [&alice, &dave, &bob, &charlie] {
        node.process().wait_serving(MODEL_TIMEOUT);
    }
    let (alice_id, dave_id, charlie_id) = (alice.peer_id(), dave.peer_id(), charlie.peer_id());
    assert_not_dialable(&alice);
    wait_reachability(&alice, "public", 0);
    wait_reachability(&dave, "public", 0);
    wait_reachability(&bob, "private", 2);
    wait_reachability(&charlie, "private", 2);
    let bob_id = bob.peer_id();
    for node in [&alice, &bob] {
        wait_providers(node, &[&bob_id, &charlie_id]);
    }

    // Bob's completion runs through Charlie (behind the other NAT), over a relay: router
    // B drops router A's packets, so the hole punch fails and the connection stays
    // relayed. Once router B lets them in, a retry (the side whose punch failed dials
    // the other through its relays, and the other punches on that connection) upgrades
    // it. The wait is bounded by the retry schedule (10 s after a failure,
    // doubling per failure).
    assert_eq!(bob.complete(24, &[&charlie]), expected);
    assert!(charlie.log().contains("serving a new session"));
    // (The side that accepted the relayed connection punches: Charlie, unless a DHT
    // walk of his dialed Bob's relayed address first.)
    let failed = |node: &Node, other: &str| {
        let log = node.log();
        log.lines()
            .any(|l| l.contains("hole punch failed") && l.contains(other))
    };
    wait_for(
        "a failed hole punch between Bob and Charlie",
        NET_TIMEOUT,
        || Ok((failed(&charlie, &bob_id) || failed(&bob, &charlie_id)).then_some(())),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}\n----\n{}", bob.log(), charlie.log()));
    let link = bob
        .peer(&charlie_id)
        .unwrap()
        .expect("Bob is connected to Charlie");
    assert_eq!(link["link"], "relayed", "{link}");
    unblock_punch(&lab).unwrap();
    let punched = wait_for("a hole punched to Charlie", PUNCH_TIMEOUT, || {
        Ok(bob
            .peer(&charlie_id)?
            .filter(|p| p["link"] == "direct-after-punch"))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}\n----\n{}", bob.log(), charlie.log()));
    eprintln!("Bob -> Charlie after the punch: {punched}");
    let sessions = |n: &Node| n.log().matches("serving a new session").count();
    let (bob_before, charlie_before) = (sessions(&bob), sessions(&charlie));
    assert_eq!(alice.complete(24, &[&bob, &charlie]), expected);
    assert!(sessions(&bob) > bob_before && sessions(&charlie) > charlie_before);

    // Router A's public address changes (while Bob's first connections, the TCP one to
    // the bootnode among them, are all open); Bob finds out by himself.
    survive_address_change(&lab, [&alice, &dave, &bob, &charlie], &expected);

    // Relay only: Charlie restarts without hole punching, on another port (router B
    // still maps the old one to him: Bob could walk in through the punched hole); the
    // relay carrying Bob's calls to him dies mid-generation.
    charlie.process = None;
    charlie.launch(PORT + 1, &["--fault-no-hole-punching"]);
    charlie.process().wait_serving(MODEL_TIMEOUT);
    wait_reachability(&charlie, "private", 2);
    wait_for("the punched connection gone", NET_TIMEOUT, || {
        let link = bob.peer(&charlie_id)?;
        Ok(link.is_none_or(|p| p["link"] == "relayed").then_some(()))
    })
    .unwrap();
    relayed_for_over_two_minutes(&bob, &charlie, &expected);
    let relays = [(&mut alice, alice_id), (&mut dave, dave_id)];
    let killed = kill_relay_mid_generation(&bob, &charlie_id, relays, &expected_long);
    // The relay comes back (Alice is also the only validator: the chain waits for her).
    [&mut alice, &mut dave][killed].launch(PORT, &[]);

    // The NATed workers' receipts are paid.
    let (mut seen, mut paid) = (0, Vec::new());
    let workers = [address("//Bob"), address("//Charlie")];
    wait_for(
        "Bob's and Charlie's receipts paid",
        Duration::from_secs(180),
        || {
            paid_workers(&alice, &mut seen, &mut paid)?;
            Ok(workers.iter().all(|w| paid.contains(w)).then_some(()))
        },
    )
    .unwrap_or_else(|e| panic!("{e} (paid: {paid:?})\n{}", alice.log()));
}

/// Router A's public address changes: Bob makes his reservations again (the relays
/// close the connections of his old ones), his record still carries relayed addresses,
/// and completions through him work again: one asked of Alice (Bob and Charlie) and one
/// asked of Charlie (behind the other NAT).
fn survive_address_change(lab: &Lab, nodes: [&Node; 4], expected: &str) {
    let [alice, dave, bob, charlie] = nodes;
    let (bob_id, charlie_id) = (bob.peer_id(), charlie.peer_id());
    let accepted = |n: &Node| n.log().matches("relay reservation accepted").count();
    let before = accepted(bob);
    change_public_address(lab, "198.18.0.13").unwrap();
    let changed = std::time::Instant::now();
    wait_for("Bob's reservations made again", NET_TIMEOUT, || {
        Ok((accepted(bob) >= before + 2).then_some(()))
    })
    .unwrap_or_else(|e| panic!("{e}\n{}", bob.log()));
    eprintln!("Bob reserved again after {:?}", changed.elapsed());
    // Neither relay keeps the old connection (and the reservation on it) open: its
    // oldest connection to Bob is younger than the change.
    for relay in [alice, dave] {
        let fresh = || {
            let link = relay.peer(&bob_id)?;
            let since = changed.elapsed().as_secs();
            Ok(link.filter(|l| l["linkSecs"].as_u64().is_some_and(|s| s < since)))
        };
        wait_for(
            "the relay done with Bob's old connection",
            NET_TIMEOUT,
            fresh,
        )
        .unwrap_or_else(|e| panic!("{e}\n{}", relay.log()));
    }
    eprintln!(
        "relays done with Bob's old connections after {:?}",
        changed.elapsed()
    );
    wait_reachability(bob, "private", 2);
    for node in [alice, charlie] {
        wait_providers(node, &[&bob_id, &charlie_id]);
    }
    assert_eq!(alice.complete(24, &[bob, charlie]), expected);
    assert_eq!(charlie.complete(24, &[bob]), expected);
    eprintln!("completions through Bob after {:?}", changed.elapsed());
}

/// Router A's public address becomes `new`: its old one (198.18.0.11) is taken off its
/// public interface, and what still comes to or from it is dropped (nobody holds it any
/// more), so every connection through the old mappings goes silent; the masquerade rule
/// maps new flows to `new`.
fn change_public_address(lab: &Lab, new: &str) -> anyhow::Result<()> {
    let ra = lab.name("ra");
    neuroshard_tests::netns::ip(&["-n", &ra, "addr", "del", "198.18.0.11/24", "dev", "wan"])?;
    lab.address(&ra, "wan", &format!("{new}/24"))?;
    lab.exec(&ra, "nft", &["-f", "-"], Some(OLD_ADDRESS_GONE))?;
    // The public nodes may still send to the old address (their neighbour caches).
    for ns in ["p1", "p2"] {
        let ns = lab.name(ns);
        neuroshard_tests::netns::ip(&["-n", &ns, "neigh", "flush", "dev", "eth0"])?;
    }
    eprintln!("router A: public address 198.18.0.11 -> {new}");
    Ok(())
}

/// Router A drops what is addressed to, or still mapped to, its former address.
const OLD_ADDRESS_GONE: &str = r#"
table ip oldaddress {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    ip daddr 198.18.0.11 drop
  }
  chain post {
    type filter hook postrouting priority 300; policy accept;
    ip saddr 198.18.0.11 drop
  }
}
"#;
