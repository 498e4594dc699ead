//! Network namespaces for tests that need real NAT (run as root): a [`Lab`] creates
//! namespaces named `nst<pid>-<name>` (unique per test process), links them with veth
//! pairs, and deletes every one it created when dropped, also when the test panics;
//! namespaces left by a test process that was killed outright (its pid gone) are
//! deleted by the next [`Lab::new`]. [`in_netns`] runs a closure on a thread that entered
//! a namespace, so a test can reach what nodes inside it serve on their loopback.
//!
//! Addresses are the caller's; the NAT test uses only 198.18.0.0/15 (benchmarking
//! space, RFC 2544), so nothing outside the namespaces is ever a target.

use anyhow::{bail, Context};
use std::io::Write;
use std::process::{Command, Stdio};

const PREFIX: &str = "nst";

/// Runs `ip ARGS`, failing with its stderr.
pub fn ip(args: &[&str]) -> anyhow::Result<()> {
    run("ip", args, None)
}

fn run(program: &str, args: &[&str], stdin: Option<&str>) -> anyhow::Result<()> {
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {program} (is it installed?)"))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{program} {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// Namespaces of one test, deleted on drop.
pub struct Lab {
    prefix: String,
    created: Vec<String>,
}

impl Lab {
    /// A lab for this process; first deletes namespaces of test processes that are gone.
    pub fn new() -> anyhow::Result<Self> {
        remove_stale()?;
        Ok(Self {
            prefix: format!("{PREFIX}{}-", std::process::id()),
            created: Vec::new(),
        })
    }

    /// The full name of namespace `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// Creates namespace `name` with its loopback up; returns its full name.
    pub fn add(&mut self, name: &str) -> anyhow::Result<String> {
        let full = self.name(name);
        ip(&["netns", "add", &full]).context("creating a network namespace (root needed)")?;
        self.created.push(full.clone());
        ip(&["-n", &full, "link", "set", "lo", "up"])?;
        Ok(full)
    }

    /// A veth pair: `a_if` in namespace `a`, `b_if` in `b` (full names), both up.
    pub fn link(&self, a: &str, a_if: &str, b: &str, b_if: &str) -> anyhow::Result<()> {
        ip(&[
            "-n", a, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", b,
        ])?;
        ip(&["-n", a, "link", "set", a_if, "up"])?;
        ip(&["-n", b, "link", "set", b_if, "up"])
    }

    /// Gives `iface` in namespace `ns` the address `cidr`.
    pub fn address(&self, ns: &str, iface: &str, cidr: &str) -> anyhow::Result<()> {
        ip(&["-n", ns, "addr", "add", cidr, "dev", iface])
    }

    /// Runs `program ARGS` inside namespace `ns`, with `stdin` fed to it.
    pub fn exec(
        &self,
        ns: &str,
        program: &str,
        args: &[&str],
        stdin: Option<&str>,
    ) -> anyhow::Result<()> {
        let mut all = vec!["netns", "exec", ns, program];
        all.extend_from_slice(args);
        run("ip", &all, stdin)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for ns in self.created.iter().rev() {
            if let Err(e) = ip(&["netns", "del", ns]) {
                eprintln!("cannot delete network namespace {ns}: {e}");
            }
        }
    }
}

/// Deletes `nst<pid>-*` namespaces whose test process no longer runs.
fn remove_stale() -> anyhow::Result<()> {
    let Ok(entries) = std::fs::read_dir("/run/netns") else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            ip(&["netns", "del", &name])?;
        }
    }
    Ok(())
}

/// Runs `f` on a thread inside network namespace `ns` (sockets it opens live there).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> anyhow::Result<T> {
    use std::os::fd::AsRawFd;
    let file = std::fs::File::open(format!("/run/netns/{ns}"))
        .with_context(|| format!("opening namespace {ns}"))?;
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                // SAFETY: setns on this thread only, with a namespace fd we own; the
                // thread ends with the scope, so no other code runs in the namespace.
                let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
                if rc != 0 {
                    bail!("setns into {ns}: {}", std::io::Error::last_os_error());
                }
                Ok(f())
            })
            .join()
            .map_err(|_| anyhow::anyhow!("thread in namespace {ns} panicked"))?
    })
}
