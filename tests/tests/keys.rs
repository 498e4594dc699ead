//! `neuroshard key inspect|generate` print what `subkey` prints for the same secrets.

use neuroshard_tests::neuroshard_bin;
use std::process::Command;

const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

fn key(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(neuroshard_bin())
        .arg("key")
        .args(args)
        .output()
        .expect("run neuroshard key");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn key_inspect_matches_subkey() {
    let (ok, out, err) = key(&["inspect", "//Alice"]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("SS58 Address:      {ALICE}")),
        "{out}"
    );
    assert!(
        out.contains(&format!("Public key (SS58): {ALICE}")),
        "{out}"
    );
    assert!(out.contains(
        "Public key (hex):  0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
    ));
    assert!(out.contains(
        "Account ID:        0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
    ));
    assert!(out.contains(
        "Secret seed:       0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"
    ));

    let phrase = "bottom drive obey lake curtain smoke basket hold race lonely fit walk//Alice";
    let (ok, out, err) = key(&["inspect", phrase]);
    assert!(ok, "{err}");
    assert!(
        out.contains(&format!("SS58 Address:      {ALICE}")),
        "{out}"
    );
}

#[test]
fn key_generate_then_inspect_round_trips() {
    let (ok, out, err) = key(&["generate"]);
    assert!(ok, "{err}");
    let phrase = out
        .lines()
        .find_map(|l| l.strip_prefix("Secret phrase:"))
        .expect("a secret phrase line")
        .trim()
        .to_string();
    assert_eq!(phrase.split_whitespace().count(), 12);
    let (ok, again, _) = key(&["inspect", &phrase]);
    assert!(ok);
    assert_eq!(again, out);
}

#[test]
fn bad_secret_is_a_clear_error() {
    let (ok, out, err) = key(&["inspect", "definitely not a mnemonic"]);
    assert!(!ok);
    assert!(out.is_empty());
    assert!(err.contains("invalid secret URI or mnemonic"), "{err}");
}
