//! Light-client checks: verify an account's balance from a `state_getReadProof`
//! answer against a header, trusting neither the node nor its JSON. The header is
//! rebuilt from its Substrate-layout fields (slot, author, VRF and seal decoded from
//! its digest logs) and must hash to the block hash asked for and carry a valid
//! author seal; the proof must lead from the account's leaf to the header's state root.
//! (Following finality proofs instead of trusting the finalized hash comes with the
//! finality gadget.)

use crate::types::{HeaderJson, ReadProofJson};
use anyhow::{anyhow, bail, ensure, Context};
use neuroshard_primitives::{AccountId, Hash, Header};
use neuroshard_runtime::balances::AccountData;
use neuroshard_runtime::storage_keys;
use neuroshard_support::{verify_read_proof, ReadProof};
use parity_scale_codec::Decode;

fn hex_bytes(what: &str, text: &str) -> anyhow::Result<Vec<u8>> {
    hex::decode(text.trim_start_matches("0x")).with_context(|| format!("{what} is not hex"))
}

/// Rebuilds a header from its JSON (Substrate's layout, consensus fields in the digest)
/// and checks it is the block `expected` and sealed by its author.
pub fn header_from_json(json: &HeaderJson, expected: &Hash) -> anyhow::Result<Header> {
    let header = json.to_header()?;
    ensure!(
        header.hash() == *expected,
        "the header's fields do not hash to the block asked for"
    );
    ensure!(
        header.seal_is_valid(),
        "the header's seal is not its author's signature"
    );
    Ok(header)
}

/// Verifies `who`'s account record in `proof` against `header`'s state root.
pub fn verify_account(
    header: &Header,
    who: &AccountId,
    proof: &ReadProofJson,
) -> anyhow::Result<AccountData> {
    let key = storage_keys::account(who);
    let entry = proof
        .proof
        .iter()
        .find(|p| hex_bytes("key", &p.key).ok().as_deref() == Some(key.as_slice()))
        .ok_or_else(|| anyhow!("the proof does not cover the account's key"))?;
    let (Some(value), Some(path)) = (&entry.value, &entry.proof) else {
        bail!("the account does not exist at this block (absence is not provable yet)");
    };
    let value = hex_bytes("value", value)?;
    let path = ReadProof::decode(&mut hex_bytes("proof", path)?.as_slice())
        .map_err(|e| anyhow!("the proof does not decode: {e}"))?;
    ensure!(
        verify_read_proof(&header.state_root, &key, &value, &path),
        "the proof does not lead to the header's state root: the node's answer is wrong"
    );
    AccountData::from_stored(&value)
        .map_err(|e| anyhow!("the proven value is not an account record: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::KeyProofJson;
    use neuroshard_primitives::{Keypair, Signature};
    use neuroshard_support::StateDb;
    use parity_scale_codec::Encode;
    use sp_core::Pair as _;

    fn fixture() -> (Header, AccountId, ReadProofJson) {
        let alice = Keypair::from_string("//Alice", None).unwrap();
        let who: AccountId = alice.public().into();
        let record = AccountData {
            nonce: 3,
            free: 1_500,
            reserved: 0,
            bonded: 7,
        };
        let state = StateDb::from_pairs([
            (storage_keys::account(&who), record.to_stored()),
            (b"other".to_vec(), b"x".to_vec()),
            (b"more".to_vec(), b"y".to_vec()),
        ]);
        let mut header = Header {
            parent_hash: Hash::zero(),
            number: 9,
            state_root: state.root(),
            extrinsics_root: Hash::zero(),
            digest: neuroshard_primitives::Digest {
                pre: neuroshard_primitives::PreDigest {
                    slot: 42,
                    author: who.clone(),
                    vrf: neuroshard_primitives::slot_lottery::sign(&alice, &Hash::zero(), 42),
                },
                seal: Signature::from_raw([0; 64]),
            },
        };
        header.seal_with(&alice);
        let key = storage_keys::account(&who);
        let proof = ReadProofJson {
            at: format!("0x{}", hex::encode(header.hash())),
            state_root: format!("0x{}", hex::encode(header.state_root)),
            proof: vec![KeyProofJson {
                key: format!("0x{}", hex::encode(&key)),
                value: Some(format!("0x{}", hex::encode(record.to_stored()))),
                proof: Some(format!(
                    "0x{}",
                    hex::encode(state.read_proof(&key).unwrap().encode())
                )),
            }],
        };
        (header, who, proof)
    }

    #[test]
    fn a_true_balance_verifies() {
        let (header, who, proof) = fixture();
        let json = HeaderJson::from(&header);
        let rebuilt = header_from_json(&json, &header.hash()).unwrap();
        let account = verify_account(&rebuilt, &who, &proof).unwrap();
        assert_eq!((account.free, account.bonded, account.nonce), (1_500, 7, 3));
    }

    #[test]
    fn tampering_is_caught() {
        let (header, who, proof) = fixture();
        // A richer balance than the state holds.
        let mut richer = proof.clone();
        let fake = AccountData {
            nonce: 3,
            free: 1_000_000,
            reserved: 0,
            bonded: 7,
        };
        richer.proof[0].value = Some(format!("0x{}", hex::encode(fake.to_stored())));
        assert!(verify_account(&header, &who, &richer).is_err());
        // A proof path from another tree.
        let mut other_path = proof.clone();
        let bogus = ReadProof {
            leaf_index: 0,
            leaf_count: 3,
            siblings: vec![Some(Hash::repeat_byte(1)), Some(Hash::repeat_byte(2))],
        };
        other_path.proof[0].proof = Some(format!("0x{}", hex::encode(bogus.encode())));
        assert!(verify_account(&header, &who, &other_path).is_err());
        // A header whose state root was swapped no longer hashes to the block.
        let mut json = HeaderJson::from(&header);
        json.state_root = format!("0x{}", hex::encode(Hash::repeat_byte(9)));
        assert!(header_from_json(&json, &header.hash()).is_err());
        // A digest log that is not a NeuroShard item, or a missing seal, is refused.
        let mut json = HeaderJson::from(&header);
        json.digest.logs[0] = "0x0004deadbeef".into();
        assert!(header_from_json(&json, &header.hash()).is_err());
        let mut json = HeaderJson::from(&header);
        json.digest.logs.pop();
        assert!(header_from_json(&json, &header.hash()).is_err());
        // Garbage never panics.
        let mut garbage = proof;
        garbage.proof[0].proof = Some("0x01".into());
        assert!(verify_account(&header, &who, &garbage).is_err());
    }
}
