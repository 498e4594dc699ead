//! Headless Chromium driven over the W3C WebDriver protocol: [`Browser::start`] runs
//! `chromedriver --port=0` (its port is read from its output), opens a session whose
//! Chromium runs headless with a fresh profile in a temporary directory, and the test
//! navigates, runs JavaScript in the page and takes screenshots. The protocol is a few
//! JSON requests over HTTP, sent with this crate's own HTTP client. Dropping the
//! [`Browser`] ends the session (Chromium quits), kills chromedriver, and kills any
//! Chromium process left over (found by its temporary directory on its command line:
//! a Chromium whose driver dies is re-parented, not killed).

use crate::http::request;
use crate::tools::chromium;
use anyhow::{anyhow, bail, Context};
use base64::Engine as _;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Flags for a quiet, sandbox-free headless Chromium on a CI machine.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1280,1000",
];

/// A chromedriver process with one open browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    /// Chromium's profile, config and cache directories live here.
    root: tempfile::TempDir,
}

/// `chromedriver` beside the Chromium binary's name, or `$NEUROSHARD_CHROMEDRIVER`.
fn chromedriver() -> PathBuf {
    std::env::var_os("NEUROSHARD_CHROMEDRIVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("chromedriver"))
}

impl Browser {
    /// Starts chromedriver (logging to `log`) and a headless Chromium session.
    pub fn start(log: &Path) -> anyhow::Result<Self> {
        let chromium = chromium()?;
        let out = std::fs::File::create(log)?;
        let root = tempfile::Builder::new()
            .prefix("neuroshard-chromium-")
            .tempdir()?;
        let driver = Command::new(chromedriver())
            .arg("--port=0")
            .env("XDG_CONFIG_HOME", root.path().join("config"))
            .env("XDG_CACHE_HOME", root.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .context("spawning chromedriver (apt-get install chromium-driver)")?;
        let mut browser = Self {
            driver,
            port: 0,
            session: String::new(),
            root,
        };
        browser.port = crate::wait_for("chromedriver to listen", Duration::from_secs(30), || {
            if let Some(status) = browser.driver.try_wait()? {
                bail!("chromedriver exited with {status}");
            }
            let text = std::fs::read_to_string(log).unwrap_or_default();
            Ok(text
                .split("started successfully on port ")
                .nth(1)
                .and_then(|rest| {
                    rest.split(|c: char| !c.is_ascii_digit())
                        .next()?
                        .parse()
                        .ok()
                }))
        })?;
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|f| f.to_string()).collect();
        args.push(format!(
            "--user-data-dir={}",
            browser.root.path().join("profile").display()
        ));
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"args": args, "binary": which(&chromium)},
        }}});
        let created = browser.call("POST", "/session", &capabilities)?;
        browser.session = created["sessionId"]
            .as_str()
            .ok_or_else(|| anyhow!("no sessionId in {created}"))?
            .to_string();
        Ok(browser)
    }

    /// One WebDriver command; returns its `value`, or its error as an error.
    fn call(&self, method: &str, path: &str, body: &Value) -> anyhow::Result<Value> {
        let body = body.to_string();
        let response = request(self.port, method, path, Some(&body))
            .with_context(|| format!("WebDriver {method} {path}"))?;
        let mut reply: Value = serde_json::from_str(&response.body)
            .with_context(|| format!("WebDriver {method} {path}: {}", response.body))?;
        if response.status != 200 {
            bail!(
                "WebDriver {method} {path}: {} {}",
                response.status,
                reply["value"]
            );
        }
        Ok(reply["value"].take())
    }

    fn session_path(&self, rest: &str) -> String {
        format!("/session/{}/{rest}", self.session)
    }

    /// Loads `url` (returns once the page has loaded).
    pub fn navigate(&self, url: &str) -> anyhow::Result<()> {
        self.call("POST", &self.session_path("url"), &json!({ "url": url }))?;
        Ok(())
    }

    /// Runs `script` (a function body; `return` gives the result) in the page.
    pub fn execute(&self, script: &str) -> anyhow::Result<Value> {
        self.call(
            "POST",
            &self.session_path("execute/sync"),
            &json!({"script": script, "args": []}),
        )
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> anyhow::Result<Vec<u8>> {
        let value = self.call("GET", &self.session_path("screenshot"), &json!({}))?;
        let encoded = value
            .as_str()
            .ok_or_else(|| anyhow!("screenshot is not a string"))?;
        Ok(base64::engine::general_purpose::STANDARD.decode(encoded)?)
    }
}

/// The absolute path of a program found on the PATH (chromedriver wants one).
fn which(program: &Path) -> String {
    if program.is_absolute() {
        return program.display().to_string();
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join(program))
                .find(|candidate| candidate.is_file())
        })
        .unwrap_or_else(|| program.to_path_buf())
        .display()
        .to_string()
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.call("DELETE", &format!("/session/{}", self.session), &json!({}));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        kill_processes_mentioning(self.root.path());
    }
}

/// SIGKILLs every process whose command line mentions `dir` (Linux `/proc`).
fn kill_processes_mentioning(dir: &Path) {
    let needle = dir.display().to_string();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if String::from_utf8_lossy(&cmdline).contains(&needle) {
            let _ = Command::new("kill").args(["-9", pid]).status();
        }
    }
}
