//! External programs some tests drive: a Python interpreter with the official `openai`
//! client, and headless Chromium. `scripts/test-deps.sh` installs both (CI runs it);
//! a test that cannot find one fails with a message naming that script instead of
//! passing silently. Each program runs with a deadline and is killed if it overruns.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

/// The virtualenv `scripts/test-deps.sh` installs the `openai` client into.
fn openai_venv_python() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    let python = PathBuf::from(home).join(".cache/neuroshard/venv-openai/bin/python");
    python.exists().then_some(python)
}

/// A Python interpreter that can `import openai`: `$NEUROSHARD_PYTHON`, the venv of
/// `scripts/test-deps.sh`, or `python3`.
pub fn python_with_openai() -> anyhow::Result<PathBuf> {
    let python = std::env::var_os("NEUROSHARD_PYTHON")
        .map(PathBuf::from)
        .or_else(openai_venv_python)
        .unwrap_or_else(|| PathBuf::from("python3"));
    let check = Command::new(&python)
        .args(["-c", "import openai"])
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !check.status.success() {
        bail!(
            "{} cannot import openai ({}); run scripts/test-deps.sh or set NEUROSHARD_PYTHON",
            python.display(),
            String::from_utf8_lossy(&check.stderr).trim()
        );
    }
    Ok(python)
}

/// The Chromium binary: `$NEUROSHARD_CHROMIUM`, or `chromium` / `chromium-browser` on
/// the PATH.
pub fn chromium() -> anyhow::Result<PathBuf> {
    if let Some(path) = std::env::var_os("NEUROSHARD_CHROMIUM") {
        return Ok(PathBuf::from(path));
    }
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new(name)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if found {
            return Ok(PathBuf::from(name));
        }
    }
    bail!("chromium is not installed; run scripts/test-deps.sh (apt-get install chromium) or set NEUROSHARD_CHROMIUM")
}

/// Runs `command` to completion with stdout and stderr captured, killing it when it
/// is still running after `timeout`.
pub fn run_with_timeout(mut command: Command, timeout: Duration) -> anyhow::Result<Output> {
    let what = format!("{command:?}");
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("spawning {what}"))?;
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let stdout = child.stdout.take().map(drain);
    let stderr = child.stderr.take().map(drain);
    let finished = crate::wait_for(&what, timeout, || Ok(child.try_wait()?));
    let status = match finished {
        Ok(status) => status,
        Err(e) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(e);
        }
    };
    let join = |h: Option<std::thread::JoinHandle<Vec<u8>>>| {
        h.map(|h| h.join().unwrap_or_default()).unwrap_or_default()
    };
    Ok(Output {
        status,
        stdout: join(stdout),
        stderr: join(stderr),
    })
}

fn drain(mut pipe: impl std::io::Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        bytes
    })
}

/// Where a test keeps an artifact for people to look at: `$NEUROSHARD_TEST_ARTIFACTS`
/// or `test-artifacts/` in the cargo target directory this test binary runs from.
pub fn artifact_path(name: &str) -> anyhow::Result<PathBuf> {
    let dir = match std::env::var_os("NEUROSHARD_TEST_ARTIFACTS") {
        Some(dir) => PathBuf::from(dir),
        None => {
            // target/<profile>/deps/<test-binary> -> target/test-artifacts
            let exe = std::env::current_exe()?;
            exe.ancestors()
                .nth(3)
                .context("test binary lives in target/<profile>/deps")?
                .join("test-artifacts")
        }
    };
    std::fs::create_dir_all(&dir)?;
    Ok(dir.join(name))
}
