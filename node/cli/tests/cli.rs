//! The `neuroshard` binary's command line, exercised as a user would. (Having an
//! integration test here also makes `cargo test --workspace` build the binary that the
//! multi-process tests in `neuroshard-tests` spawn.)

use std::process::Command;

fn neuroshard(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_neuroshard"))
        .args(args)
        .output()
        .expect("run neuroshard");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_commands() {
    let (ok, out, _) = neuroshard(&["--help"]);
    assert!(ok);
    for command in ["dev", "run", "key", "tx", "balance"] {
        assert!(out.contains(command), "{out}");
    }
}

#[test]
fn key_inspect_alice() {
    let (ok, out, _) = neuroshard(&["key", "inspect", "//Alice"]);
    assert!(ok);
    assert!(out.contains("SS58 Address:      5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"));
}

#[test]
fn usage_errors_are_reported() {
    let (ok, _, err) = neuroshard(&["run", "--base-path", "/nonexistent", "--validator"]);
    assert!(!ok);
    assert!(err.contains("--key"), "{err}");
    let (ok, _, err) = neuroshard(&["dev", "--tmp", "--base-path", "/tmp/x"]);
    assert!(!ok);
    assert!(err.contains("cannot be used with"), "{err}");
    for flag in ["--max-batch", "--max-sessions", "--max-generations-per-key"] {
        let (ok, _, err) = neuroshard(&["dev", "--tmp", flag, "0"]);
        assert!(!ok, "{flag} 0 was taken");
        assert!(err.contains("not in 1.."), "{flag}: {err}");
    }
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let base = dir.path().join("base");
    let (ok, _, err) = neuroshard(&[
        "run",
        "--chain",
        missing.to_str().unwrap(),
        "--base-path",
        base.to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(err.contains("missing.json"), "{err}");
}

#[test]
fn wallet_commands_fail_cleanly_without_a_node() {
    let (ok, _, err) = neuroshard(&[
        "balance",
        "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
        "--rpc",
        "http://127.0.0.1:1",
    ]);
    assert!(!ok);
    assert!(err.contains("neuroshard_account"), "{err}");
    let (ok, _, err) = neuroshard(&[
        "tx", "transfer", "--from", "//Alice", "--to", "5Grw", "--amount", "1.5",
    ]);
    assert!(!ok);
    assert!(err.contains("5Grw"), "{err}");
    let (ok, _, err) = neuroshard(&[
        "tx",
        "transfer",
        "--from",
        "//Alice",
        "--to",
        "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty",
        "--amount",
        "1.0000000000001",
    ]);
    assert!(!ok);
    assert!(err.contains("decimal places"), "{err}");
}
