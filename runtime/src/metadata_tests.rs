//! The metadata as a Substrate tool reads it: decoded from its SCALE bytes with
//! `frame-metadata`, every pallet declares its calls (the variants of its call enum),
//! storage, errors and constants, and every key the runtime actually writes (at genesis
//! and through blocks with transfers, bonds, escrows and receipts) is one of the
//! declared items, in the declared key layout. An item added to a pallet without being
//! declared fails here.

use super::*;
use crate::tests::{transfer, Chain};
use frame_metadata::v14::{RuntimeMetadataV14, StorageEntryType, StorageHasher};
use frame_metadata::{RuntimeMetadata, RuntimeMetadataPrefixed};
use neuroshard_primitives::{Call, PonwCall, StakingCall, UNIT};
use parity_scale_codec::Decode;
use scale_info::TypeDef;
use sp_crypto_hashing::{blake2_128, twox_128};

fn decoded(state: &impl ReadState) -> RuntimeMetadataV14 {
    let bytes = metadata(state).unwrap().encode();
    let prefixed = RuntimeMetadataPrefixed::decode(&mut bytes.as_slice()).unwrap();
    assert_eq!(prefixed.0, frame_metadata::META_RESERVED);
    match prefixed.1 {
        RuntimeMetadata::V14(v14) => v14,
        _ => panic!("not V14"),
    }
}

fn variant_names(meta: &RuntimeMetadataV14, ty: u32) -> Vec<String> {
    match &meta.types.resolve(ty).expect("type in registry").type_def {
        TypeDef::Variant(v) => v.variants.iter().map(|v| v.name.clone()).collect(),
        other => panic!("type {ty} is not an enum: {other:?}"),
    }
}

#[test]
fn every_pallet_declares_calls_storage_errors_and_constants() {
    let chain = Chain::new();
    let meta = decoded(&chain.state);
    let names: Vec<&str> = meta.pallets.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["System", "Balances", "Ponw", "Staking", "Training"]);
    for pallet in &meta.pallets {
        let storage = pallet.storage.as_ref().expect("storage");
        assert_eq!(storage.prefix, pallet.name);
        assert!(!storage.entries.is_empty(), "{}", pallet.name);
        assert!(!pallet.constants.is_empty(), "{}", pallet.name);
        if pallet.name == "System" {
            continue;
        }
        let calls = variant_names(&meta, pallet.calls.as_ref().expect("calls").ty.id);
        let errors = variant_names(&meta, pallet.error.as_ref().expect("errors").ty.id);
        assert!(!errors.is_empty(), "{}", pallet.name);
        let expected: &[&str] = match pallet.name.as_str() {
            "Balances" => &["Transfer"],
            "Ponw" => &["RegisterWorker", "SubmitReceipts", "Heartbeat", "BondMore"],
            "Staking" => &["Bond", "Unbond", "WithdrawUnbonded", "ReportEquivocation"],
            _ => &["SubmitGradientReceipt", "SubmitRoundVerification"],
        };
        for call in expected {
            assert!(
                calls.iter().any(|c| c == call),
                "{}: {call} in {calls:?}",
                pallet.name
            );
        }
    }
    // A pallet's index is its calls' variant index in the runtime's call enum.
    let index = |name: &str| meta.pallets.iter().find(|p| p.name == name).unwrap().index;
    let call_index = |call: Call| call.encode()[0];
    assert_eq!(index("Balances"), call_index(transfer("//Bob", 1)));
    assert_eq!(
        index("Ponw"),
        call_index(Call::Ponw(PonwCall::DeregisterWorker))
    );
    assert_eq!(
        index("Staking"),
        call_index(Call::Staking(StakingCall::WithdrawUnbonded))
    );
    // The existential deposit constant carries the chain's value.
    let balances = meta.pallets.iter().find(|p| p.name == "Balances").unwrap();
    let ed = balances
        .constants
        .iter()
        .find(|c| c.name == "ExistentialDeposit")
        .unwrap();
    assert_eq!(u128::decode(&mut ed.value.as_slice()).unwrap(), UNIT / 1000);
}

/// Every key written at genesis and by blocks with the common calls is a declared
/// item: `twox128(pallet) ++ twox128(item)`, then for maps the `Blake2_128Concat` of a
/// key that decodes (its hash matches).
#[test]
fn every_stored_key_is_a_declared_item_in_substrates_layout() {
    let mut chain = Chain::new();
    let bond = Call::Staking(StakingCall::Bond { amount: 5 * UNIT });
    let escrow = Call::Ponw(PonwCall::DepositEscrow { amount: 10 * UNIT });
    let xts = vec![
        chain.sign("//Alice", 0, transfer("//Eve", 7 * UNIT)),
        chain.sign("//Charlie", 0, bond),
        chain.sign("//Bob", 0, escrow),
    ];
    chain.produce(xts);
    for _ in 0..6 {
        chain.produce(Vec::new());
    }
    let meta = decoded(&chain.state);
    let mut declared = Vec::new();
    for pallet in &meta.pallets {
        for entry in &pallet.storage.as_ref().unwrap().entries {
            let mut prefix = twox_128(pallet.name.as_bytes()).to_vec();
            prefix.extend_from_slice(&twox_128(entry.name.as_bytes()));
            let is_map = match &entry.ty {
                StorageEntryType::Plain(_) => false,
                StorageEntryType::Map { hashers, .. } => {
                    assert_eq!(hashers, &[StorageHasher::Blake2_128Concat]);
                    true
                }
            };
            declared.push((prefix, is_map, format!("{}.{}", pallet.name, entry.name)));
        }
    }
    let mut seen = std::collections::BTreeSet::new();
    for (key, _) in chain.state.iter() {
        let (_, is_map, name) = declared
            .iter()
            .find(|(prefix, _, _)| key.starts_with(prefix))
            .unwrap_or_else(|| panic!("undeclared key 0x{}", hex_of(key)));
        if *is_map {
            assert_eq!(&key[32..48], &blake2_128(&key[48..]), "{name}");
        } else {
            assert_eq!(key.len(), 32, "{name}");
        }
        seen.insert(name.clone());
    }
    for item in [
        "System.Account",
        "System.Number",
        "Balances.TotalIssuance",
        "Ponw.Escrows",
    ] {
        assert!(seen.contains(item), "{item} never written: {seen:?}");
    }
}

fn hex_of(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Substrate's `System.Account` layout: a wallet decoding `AccountInfo` sees the bond
/// as frozen free balance.
#[test]
fn accounts_are_stored_as_substrates_account_info() {
    let mut chain = Chain::new();
    let bond = Call::Staking(StakingCall::Bond { amount: 5 * UNIT });
    let xt = chain.sign("//Charlie", 0, bond);
    chain.produce(vec![xt]);
    let who = crate::tests::account("//Charlie");
    let raw = chain
        .state
        .get(&crate::storage_keys::account(&who))
        .unwrap();
    let info = neuroshard_balances::AccountInfo::decode(&mut raw.as_slice()).unwrap();
    let view = neuroshard_balances::account(&chain.state, &who).unwrap();
    assert_eq!(info.nonce, 1);
    assert_eq!(info.data.frozen, 5 * UNIT);
    assert_eq!(view.bonded, 5 * UNIT);
    assert_eq!(info.data.free, view.free + 5 * UNIT);
    assert_eq!((info.providers, info.consumers), (1, 1));
}
