//! `neuroshard key generate|inspect`: the same keys and the same output layout as
//! Substrate's `subkey` (sr25519, SS58 prefix 42), so users' existing wallets and dev
//! keys (`//Alice`) work unchanged.

use crate::cli::KeyCommand;
use anyhow::{bail, Context};
use neuroshard_primitives::{crypto, AccountId, Keypair};
use sp_core::crypto::Ss58Codec;
use sp_core::Pair as _;
use std::fmt::Write as _;

pub fn run(cmd: KeyCommand) -> anyhow::Result<()> {
    let text = match cmd {
        KeyCommand::Generate { words } => generate(words)?,
        KeyCommand::Inspect { uri } => inspect(&uri)?,
    };
    print!("{text}");
    Ok(())
}

/// A new random key, printed with its mnemonic.
pub fn generate(words: usize) -> anyhow::Result<String> {
    if ![12, 15, 18, 21, 24].contains(&words) {
        bail!("--words must be 12, 15, 18, 21 or 24, not {words}");
    }
    let mut entropy = vec![0u8; words / 3 * 4];
    rand::RngCore::fill_bytes(&mut rand::rngs::OsRng, &mut entropy);
    let phrase = bip39::Mnemonic::from_entropy(&entropy).context("building a mnemonic")?;
    inspect(&phrase.to_string())
}

/// The subkey-style description of a secret URI.
pub fn inspect(uri: &str) -> anyhow::Result<String> {
    let (pair, seed) = Keypair::from_string_with_seed(uri, None)
        .map_err(|e| anyhow::anyhow!("invalid secret URI or mnemonic: {e:?}"))?;
    let account: AccountId = pair.public().into();
    let public_hex = format!("0x{}", hex::encode(pair.public().0));
    let ss58 = crypto::ss58(&account);
    let mut out = String::new();
    if uri.starts_with("//") || uri.starts_with("0x") {
        let _ = writeln!(out, "Secret Key URI `{uri}` is account:");
    } else {
        let _ = writeln!(out, "Secret phrase:       {uri}");
    }
    let _ = writeln!(out, "  Network ID:        substrate");
    match seed {
        Some(seed) => {
            let _ = writeln!(out, "  Secret seed:       0x{}", hex::encode(seed));
        }
        None => {
            let _ = writeln!(out, "  Secret seed:       n/a (soft derivation)");
        }
    }
    let _ = writeln!(out, "  Public key (hex):  {public_hex}");
    let _ = writeln!(out, "  Account ID:        {public_hex}");
    let _ = writeln!(out, "  Public key (SS58): {}", pair.public().to_ss58check());
    let _ = writeln!(out, "  SS58 Address:      {ss58}");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY";

    #[test]
    fn alice_like_subkey() {
        let out = inspect("//Alice").unwrap();
        assert!(
            out.contains(&format!("SS58 Address:      {ALICE}")),
            "{out}"
        );
        assert!(out.contains(
            "Secret seed:       0xe5be9a5092b81bca64be81d212e7f2f9eba183bb7a90954f7b76361f6edb5c0a"
        ));
        assert!(out.contains(
            "Public key (hex):  0xd43593c715fdd31c61141abd04a99fd6822c8558854ccde39a5684e7a56da27d"
        ));
        let phrase =
            inspect("bottom drive obey lake curtain smoke basket hold race lonely fit walk//Alice")
                .unwrap();
        assert!(phrase.contains(&format!("SS58 Address:      {ALICE}")));
    }

    #[test]
    fn generated_keys_inspect_the_same() {
        for words in [12, 24] {
            let out = generate(words).unwrap();
            let phrase = out
                .lines()
                .next()
                .and_then(|l| l.strip_prefix("Secret phrase:"))
                .unwrap()
                .trim();
            assert_eq!(phrase.split_whitespace().count(), words);
            assert_eq!(inspect(phrase).unwrap(), out);
        }
        assert!(generate(13).is_err());
        assert!(inspect("not a valid phrase").is_err());
    }
}
