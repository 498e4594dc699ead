//! Node processes. [`NodeProcess`] starts the real `neuroshard` binary with
//! `--rpc-port 0`, sends its output to a log file in its base directory, learns the
//! RPC port from the "JSON-RPC server listening on" log line, and SIGKILLs the process
//! on drop. The binary is `$NEUROSHARD_BIN` or `neuroshard` in the target directory this
//! test binary runs from (`cargo test --workspace` builds it, because the node package
//! has integration tests of its own).

use crate::rpc::RpcClient;
use anyhow::{bail, Context};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Path of the `neuroshard` binary under test.
pub fn neuroshard_bin() -> PathBuf {
    if let Some(path) = std::env::var_os("NEUROSHARD_BIN") {
        return PathBuf::from(path);
    }
    // target/<profile>/deps/<test-binary> -> target/<profile>/neuroshard
    let exe = std::env::current_exe().expect("current test executable");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binary lives in target/<profile>/deps");
    let bin = profile_dir.join(format!("neuroshard{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} not found: run the tests with `cargo test --workspace` (or build it with \
         `cargo build -p neuroshard-node`, or set NEUROSHARD_BIN)",
        bin.display()
    );
    warn_if_stale(&bin);
    bin
}

/// `cargo test -p neuroshard-tests` alone does not rebuild the node binary; say so
/// loudly when a workspace source file is newer than the binary under test.
fn warn_if_stale(bin: &Path) {
    let Ok(built) = std::fs::metadata(bin).and_then(|m| m.modified()) else {
        return;
    };
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let crates = [
        "node",
        "runtime",
        "primitives",
        "chain-spec",
        "inference",
        "pallets-like",
    ];
    let mut stack: Vec<PathBuf> = crates.iter().map(|c| workspace.join(c)).collect();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs" || e == "json") {
                let newer = entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|modified| modified > built);
                if newer {
                    eprintln!(
                        "WARNING: {} is newer than {}; the binary under test may be stale \
                         (run `cargo test --workspace` or `cargo build -p neuroshard-node`)",
                        path.display(),
                        bin.display()
                    );
                    return;
                }
            }
        }
    }
}

/// The nodes' log filter: `$NEUROSHARD_TEST_NODE_LOG` (a `RUST_LOG` value, e.g.
/// `info,libp2p_swarm=debug` to see why a dial failed) or `info`.
fn node_log_filter() -> String {
    std::env::var("NEUROSHARD_TEST_NODE_LOG").unwrap_or_else(|_| "info".to_string())
}

/// A running node; killed (SIGKILL) and reaped on drop.
pub struct NodeProcess {
    child: Child,
    log: PathBuf,
    port: u16,
    api_port: u16,
}

impl NodeProcess {
    /// Starts `neuroshard <args> --rpc-port 0 --api-port 0`, logging to `log`, and
    /// waits until its RPC server and HTTP API are up.
    pub fn start(args: &[&str], log: &Path) -> anyhow::Result<Self> {
        Self::start_via(&[], args, log)
    }

    /// [`Self::start`] through a `launcher` command line that runs the binary (e.g.
    /// `taskset -c 1` or `ip netns exec NAME`, which exec it: the child is the node
    /// itself); empty for none.
    pub fn start_via(launcher: &[&str], args: &[&str], log: &Path) -> anyhow::Result<Self> {
        let out =
            std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let err = out.try_clone()?;
        let mut command = match launcher.split_first() {
            Some((program, rest)) => {
                let mut c = Command::new(program);
                c.args(rest).arg(neuroshard_bin());
                c
            }
            None => Command::new(neuroshard_bin()),
        };
        let child = command
            .args(args)
            .args(["--rpc-port", "0", "--api-port", "0"])
            .env("RUST_LOG", node_log_filter())
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("spawning neuroshard")?;
        let mut node = Self {
            child,
            log: log.to_path_buf(),
            port: 0,
            api_port: 0,
        };
        let (port, api_port) = crate::wait_for(
            "the node's RPC server and HTTP API",
            Duration::from_secs(60),
            || {
                if let Some(status) = node.child.try_wait()? {
                    bail!(
                        "node exited with {status} before serving RPC:\n{}",
                        node.log_text()
                    );
                }
                let log = node.log_text();
                let rpc = log.lines().find_map(|l| parse_port(l, RPC_LINE));
                let api = log.lines().find_map(|l| parse_port(l, API_LINE));
                Ok(rpc.zip(api))
            },
        )?;
        node.port = port;
        node.api_port = api_port;
        Ok(node)
    }

    /// `neuroshard dev --base-path DIR`.
    pub fn dev(base: &Path) -> anyhow::Result<Self> {
        let base_str = base.to_str().context("utf-8 path")?;
        Self::start(&["dev", "--base-path", base_str], &base.join("node.log"))
    }

    /// `neuroshard run --chain SPEC --base-path DIR --key //Alice --validator`.
    pub fn validator(spec: &Path, base: &Path, log_name: &str) -> anyhow::Result<Self> {
        Self::validator_serving(spec, base, log_name, None)
    }

    /// Like [`NodeProcess::validator`], also serving `shards` (e.g. "0-10,10-20,20-30")
    /// of the chain's model when given.
    pub fn validator_serving(
        spec: &Path,
        base: &Path,
        log_name: &str,
        shards: Option<&str>,
    ) -> anyhow::Result<Self> {
        let spec = spec.to_str().context("utf-8 path")?;
        let base_str = base.to_str().context("utf-8 path")?;
        let mut args = vec![
            "run",
            "--chain",
            spec,
            "--base-path",
            base_str,
            "--key",
            "//Alice",
            "--validator",
            // Loopback and a free port: tests run side by side.
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ];
        if let Some(shards) = shards {
            args.extend(["--shards", shards]);
        }
        Self::start(&args, &base.join(log_name))
    }

    /// `neuroshard run --chain SPEC --base-path BASE --listen /ip4/127.0.0.1/tcp/0 EXTRA...`
    /// (a networked node on loopback with a free port), logging to `log`.
    pub fn run_on_loopback(
        spec: &Path,
        base: &Path,
        log: &Path,
        extra: &[&str],
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(base)?;
        let mut args = vec![
            "run",
            "--chain",
            spec.to_str().context("utf-8 path")?,
            "--base-path",
            base.to_str().context("utf-8 path")?,
            "--listen",
            "/ip4/127.0.0.1/tcp/0",
        ];
        args.extend_from_slice(extra);
        Self::start(&args, log)
    }

    /// [`Self::run_on_loopback`] for the node called `name` of a network under `dir`:
    /// its base path is `dir/name`, its log `dir/name.log`.
    pub fn run_named(spec: &Path, dir: &Path, name: &str, extra: &[&str]) -> anyhow::Result<Self> {
        let log = dir.join(format!("{name}.log"));
        Self::run_on_loopback(spec, &dir.join(name), &log, extra)
    }

    /// Starts //Alice, the validator, as node `a` of a network under `dir`, serving
    /// `shards`; returns it with its p2p address (the others' `--bootnodes`).
    pub fn alice_serving(spec: &Path, dir: &Path, shards: &str) -> anyhow::Result<(Self, String)> {
        let node = Self::run_named(
            spec,
            dir,
            "a",
            &["--key", "//Alice", "--validator", "--shards", shards],
        )?;
        let boot = node.wait_p2p_addr()?;
        Ok((node, boot))
    }

    /// Waits until the node has loaded the model, serves its shards to the network and
    /// takes generations (panics with the node's log after `timeout`).
    pub fn wait_serving(&self, timeout: std::time::Duration) {
        crate::wait_for("the model to load", timeout, || {
            // A networked node takes generations once its shards are announced and its
            // escrow is on chain (other nodes' providers serve no client who cannot pay).
            let log = self.log_text();
            Ok((log.contains("serving shards to the network")
                && log.contains("HTTP API generations enabled"))
            .then_some(()))
        })
        .unwrap_or_else(|e| panic!("{e}\n{}", self.log_text()));
    }

    /// The node's first libp2p listen address with its /p2p/ peer id (from the log).
    pub fn p2p_addr(&self) -> Option<String> {
        self.log_text().lines().find_map(|l| {
            let rest = l.split("p2p listening address=").nth(1)?;
            Some(rest.split_whitespace().next()?.to_string())
        })
    }

    /// Waits for [`Self::p2p_addr`] (to give the node as a bootnode).
    pub fn wait_p2p_addr(&self) -> anyhow::Result<String> {
        crate::wait_for("the node's p2p address", Duration::from_secs(30), || {
            Ok(self.p2p_addr())
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Port of the HTTP API.
    pub fn api_port(&self) -> u16 {
        self.api_port
    }

    pub fn rpc(&self) -> RpcClient {
        RpcClient::new(self.port)
    }

    pub fn ws_url(&self) -> String {
        format!("ws://127.0.0.1:{}", self.port)
    }

    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Everything the node logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL now (no chance to clean up), and reap.
    pub fn kill9(mut self) {
        self.kill_and_reap();
    }

    /// Stops the node (SIGSTOP) until [`resume`](Self::resume): a process frozen in
    /// place, its sockets open and silent.
    pub fn pause(&self) -> anyhow::Result<()> {
        self.signal("-STOP")
    }

    /// The most memory the node has held resident so far (`VmHWM` of
    /// `/proc/PID/status`), in bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))?;
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .context("no VmHWM in /proc/PID/status")?;
        Ok(kib * 1024)
    }

    /// Resumes a [`pause`](Self::pause)d node (SIGCONT).
    pub fn resume(&self) -> anyhow::Result<()> {
        self.signal("-CONT")
    }

    fn signal(&self, signal: &str) -> anyhow::Result<()> {
        let pid = self.child.id();
        let status = Command::new("kill")
            .args([signal, &pid.to_string()])
            .status()
            .with_context(|| format!("running kill {signal}"))?;
        anyhow::ensure!(status.success(), "kill {signal} {pid} failed: {status}");
        Ok(())
    }

    /// SIGSTOP now and SIGCONT after `pause` (from a background `sh`, so the caller can
    /// go on): meanwhile the process is silent (no blocks, votes or replies), as if cut
    /// off from the network.
    pub fn pause_for(&self, pause: Duration) -> anyhow::Result<()> {
        self.pause()?;
        let pid = self.child.id();
        Command::new("sh")
            .args([
                "-c",
                &format!("sleep {:.3}; kill -CONT {pid}", pause.as_secs_f64()),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .context("scheduling kill -CONT")?;
        Ok(())
    }

    fn kill_and_reap(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for NodeProcess {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

const RPC_LINE: &str = "JSON-RPC server listening on 127.0.0.1:";
const API_LINE: &str = "HTTP API listening on 127.0.0.1:";

/// The port in a "... listening on 127.0.0.1:PORT" log line starting with `prefix`.
fn parse_port(line: &str, prefix: &str) -> Option<u16> {
    let rest = line.split(prefix).nth(1)?;
    rest.split(|c: char| !c.is_ascii_digit())
        .next()?
        .parse()
        .ok()
}

/// The logs of `nodes`, one after the other, for a failure message.
pub fn joint_log(nodes: &[&NodeProcess]) -> String {
    nodes
        .iter()
        .map(|n| n.log_text())
        .collect::<Vec<_>>()
        .join("\n----\n")
}

#[cfg(test)]
mod tests {
    #[test]
    fn port_from_log_line() {
        let line = "2026-01-01T00:00:00Z  INFO neuroshard_node::service: JSON-RPC server listening on 127.0.0.1:41234 (HTTP and WebSocket)";
        assert_eq!(super::parse_port(line, super::RPC_LINE), Some(41234));
        let line = "2026-01-01T00:00:00Z  INFO neuroshard_node::api: HTTP API listening on 127.0.0.1:8081 (OpenAI-compatible inference, explorer, metrics)";
        assert_eq!(super::parse_port(line, super::API_LINE), Some(8081));
        assert_eq!(super::parse_port("other", super::RPC_LINE), None);
    }
}
