//! Keys, hashes and signatures: sr25519 through `sp-core` (so secret URIs, mnemonics and
//! SS58 addresses behave exactly like `subkey`), blake2-256 hashing, and batch signature
//! verification through `schnorrkel` for the receipt-heavy paths.

use rayon::prelude::*;
use sp_core::crypto::Ss58Codec;
use sp_core::Pair as _;
use std::collections::HashMap;
use thiserror::Error;

pub use sp_core::crypto::AccountId32 as AccountId;
pub use sp_core::sr25519::{Pair as Keypair, Public, Signature};
pub use sp_core::H256 as Hash;

/// The schnorrkel signing context `sp-core` uses for sr25519; batch verification must use
/// the same one to accept signatures made with [`Keypair::sign`].
pub const SIGNING_CONTEXT: &[u8] = b"substrate";

/// blake2b with a 32-byte digest, the hash of headers, extrinsics, receipts and state.
pub fn blake2_256(data: &[u8]) -> Hash {
    use blake2::digest::{consts::U32, Digest};
    let digest = blake2::Blake2b::<U32>::digest(data);
    Hash::from_slice(&digest)
}

/// Errors turning user text into keys or accounts.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum KeyError {
    #[error("invalid secret URI or mnemonic {0:?}: {1}")]
    BadSecret(String, String),
    #[error("{0:?} is neither an SS58 address nor a 0x-prefixed 32-byte hex public key")]
    BadAccount(String),
}

/// Derives a keypair from a subkey-style secret URI: `//Alice`, a mnemonic with optional
/// `//hard/soft` junctions and `///password`, or a 0x-prefixed 32-byte seed.
pub fn keypair_from_uri(uri: &str) -> Result<Keypair, KeyError> {
    Keypair::from_string(uri, None).map_err(|e| KeyError::BadSecret(redact(uri), format!("{e:?}")))
}

/// Keeps mnemonics out of error messages: only dev URIs like `//Alice` are echoed.
fn redact(uri: &str) -> String {
    if uri.starts_with("//") {
        uri.to_string()
    } else {
        "<secret>".to_string()
    }
}

/// Reads an account from an SS58 address or a 0x-prefixed hex public key.
pub fn parse_account(text: &str) -> Result<AccountId, KeyError> {
    let text = text.trim();
    if let Ok(account) = AccountId::from_ss58check(text) {
        return Ok(account);
    }
    if let Some(hex_part) = text.strip_prefix("0x") {
        if let Ok(bytes) = hex::decode(hex_part) {
            if let Ok(raw) = <[u8; 32]>::try_from(bytes.as_slice()) {
                return Ok(AccountId::from(raw));
            }
        }
    }
    Err(KeyError::BadAccount(text.to_string()))
}

/// The SS58 address format of this chain's accounts (Substrate's generic 42: "5...").
pub const SS58_PREFIX: u16 = 42;

/// The SS58 (prefix [`SS58_PREFIX`]) text of an account.
pub fn ss58(account: &AccountId) -> String {
    account.to_ss58check()
}

/// Signs `message` with `key` (sr25519, the context of [`SIGNING_CONTEXT`]).
pub fn sign(key: &Keypair, message: &[u8]) -> Signature {
    key.sign(message)
}

/// The account of `key`.
pub fn account_of(key: &Keypair) -> AccountId {
    key.public().into()
}

/// Verifies one sr25519 signature by `signer` over `message`.
pub fn verify(signature: &Signature, message: &[u8], signer: &AccountId) -> bool {
    let public = Public::from_raw(*<AccountId as AsRef<[u8; 32]>>::as_ref(signer));
    Keypair::verify(signature, message, &public)
}

/// One entry of a batch verification: signature, message, signer.
pub struct SignedMessage<'a> {
    pub signature: &'a Signature,
    pub message: Vec<u8>,
    pub signer: &'a AccountId,
}

/// Verifies many sr25519 signatures with schnorrkel's batch verification, spread over
/// the rayon pool. Returns the index of the first invalid entry, if any.
pub fn verify_batch(items: &[SignedMessage<'_>]) -> Result<(), usize> {
    match invalid_entries(items).first() {
        None => Ok(()),
        Some(&bad) => Err(bad),
    }
}

/// The indices (ascending) of the entries whose signature does not verify: chunks are
/// batch-verified on the rayon pool, and only a chunk that fails is checked entry by
/// entry.
pub fn invalid_entries(items: &[SignedMessage<'_>]) -> Vec<usize> {
    const CHUNK: usize = 128;
    let mut bad: Vec<usize> = items
        .par_chunks(CHUNK)
        .enumerate()
        .filter(|(_, chunk)| !verify_chunk(chunk))
        .flat_map_iter(|(chunk_index, chunk)| {
            let start = chunk_index * CHUNK;
            chunk
                .iter()
                .enumerate()
                .filter(|(_, item)| !verify(item.signature, &item.message, item.signer))
                .map(move |(i, _)| start + i)
        })
        .collect();
    bad.sort_unstable();
    bad
}

fn verify_chunk(chunk: &[SignedMessage<'_>]) -> bool {
    let mut transcripts = Vec::with_capacity(chunk.len());
    let mut signatures = Vec::with_capacity(chunk.len());
    let mut publics = Vec::with_capacity(chunk.len());
    // Receipts of a batch come from few workers and clients: decompress each key once.
    let mut decompressed: HashMap<&[u8; 32], schnorrkel::PublicKey> = HashMap::new();
    let context = schnorrkel::signing_context(SIGNING_CONTEXT);
    for item in chunk {
        let Ok(sig) = schnorrkel::Signature::from_bytes(&item.signature.0) else {
            return false;
        };
        let raw: &[u8; 32] = item.signer.as_ref();
        let public = match decompressed.get(raw) {
            Some(public) => *public,
            None => {
                let Ok(public) = schnorrkel::PublicKey::from_bytes(raw) else {
                    return false;
                };
                decompressed.insert(raw, public);
                public
            }
        };
        transcripts.push(context.bytes(&item.message));
        signatures.push(sig);
        publics.push(public);
    }
    schnorrkel::verify_batch(transcripts, &signatures, &publics, true).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_matches_subkey() {
        let alice = keypair_from_uri("//Alice").unwrap();
        assert_eq!(
            ss58(&AccountId::from(alice.public())),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let from_phrase = keypair_from_uri(
            "bottom drive obey lake curtain smoke basket hold race lonely fit walk//Alice",
        )
        .unwrap();
        assert_eq!(alice.public(), from_phrase.public());
    }

    #[test]
    fn bad_inputs_are_errors() {
        assert!(keypair_from_uri("not a mnemonic at all").is_err());
        assert!(parse_account("5Grw").is_err());
        assert!(parse_account("0x1234").is_err());
        let alice = keypair_from_uri("//Alice").unwrap();
        let hex_form = format!("0x{}", hex::encode(alice.public().0));
        assert_eq!(
            parse_account(&hex_form).unwrap(),
            AccountId::from(alice.public())
        );
    }

    #[test]
    fn batch_verification_finds_the_bad_signature() {
        let keys: Vec<_> = (0..300)
            .map(|i| keypair_from_uri(&format!("//worker{i}")).unwrap())
            .collect();
        let accounts: Vec<AccountId> = keys.iter().map(|k| k.public().into()).collect();
        let mut sigs: Vec<Signature> = keys
            .iter()
            .enumerate()
            .map(|(i, k)| k.sign(format!("msg {i}").as_bytes()))
            .collect();
        let entries = |sigs: &[Signature]| -> (Result<(), usize>, Vec<usize>) {
            let items: Vec<_> = sigs
                .iter()
                .enumerate()
                .map(|(i, s)| SignedMessage {
                    signature: s,
                    message: format!("msg {i}").into_bytes(),
                    signer: &accounts[i],
                })
                .collect();
            (verify_batch(&items), invalid_entries(&items))
        };
        assert_eq!(entries(&sigs), (Ok(()), vec![]));
        sigs[211] = keys[211].sign(b"something else");
        assert_eq!(entries(&sigs), (Err(211), vec![211]));
        // Several bad entries, in two chunks and one of them twice in a chunk.
        sigs[3] = keys[4].sign(b"msg 3");
        sigs[5] = keys[5].sign(b"msg 6");
        assert_eq!(entries(&sigs), (Err(3), vec![3, 5, 211]));
    }
}
