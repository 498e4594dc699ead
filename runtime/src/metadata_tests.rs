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
            "Balances" => &["transfer_allow_death", "transfer_keep_alive"],
            "Ponw" => &[
                "RegisterWorker",
                "SubmitReceipts",
                "Heartbeat",
                "BondMore",
                "ClaimCapacity",
                "OpenCapacity",
                "CapacityVerdict",
            ],
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

/// Failed extrinsics as Substrate tools read them: `System.ExtrinsicFailed` starts with
/// the type subxt looks up by its path (`sp_runtime::DispatchError`) and a
/// `DispatchInfo`, and a module error's first byte names the pallet's error variant in
/// the metadata (what polkadot.js's `registry.findMetaError` reads), for a nested error
/// the pallet whose error it is.
#[test]
fn dispatch_errors_name_their_pallet_error_in_the_metadata() {
    let chain = Chain::new();
    let meta = decoded(&chain.state);
    let path_of = |id: u32| meta.types.resolve(id).unwrap().path.segments.join("::");
    let system = meta.pallets.iter().find(|p| p.name == "System").unwrap();
    let TypeDef::Variant(events) = &meta
        .types
        .resolve(system.event.as_ref().unwrap().ty.id)
        .unwrap()
        .type_def
    else {
        panic!("System events are not an enum")
    };
    let failed = events
        .variants
        .iter()
        .find(|v| v.name == "ExtrinsicFailed")
        .unwrap();
    let first_two: Vec<String> = failed.fields[..2]
        .iter()
        .map(|f| path_of(f.ty.id))
        .collect();
    assert_eq!(
        first_two,
        [
            "sp_runtime::DispatchError",
            "frame_support::dispatch::DispatchInfo"
        ]
    );
    let error_name = |e: &neuroshard_primitives::DispatchError| {
        let neuroshard_primitives::DispatchError::Module(m) = e else {
            panic!("not a module error: {e:?}")
        };
        let pallet = meta.pallets.iter().find(|p| p.index == m.index).unwrap();
        let names = variant_names(&meta, pallet.error.as_ref().unwrap().ty.id);
        format!("{}.{}", pallet.name, names[usize::from(m.error[0])])
    };
    let cases = [
        (
            DispatchError::Staking(neuroshard_staking::Error::NothingToWithdraw),
            "Staking.NothingToWithdraw",
        ),
        (
            DispatchError::Ponw(neuroshard_ponw::Error::NotTheChecker),
            "Ponw.NotTheChecker",
        ),
        (
            DispatchError::Staking(neuroshard_staking::Error::Balances(
                neuroshard_balances::Error::SelfTransfer,
            )),
            "Balances.SelfTransfer",
        ),
        (
            DispatchError::Training(neuroshard_training_pallet::Error::AlreadyReported),
            "Training.AlreadyReported",
        ),
    ];
    for (error, expected) in cases {
        assert_eq!(error_name(&error.to_substrate()), expected);
    }
    // The errors carry no fields in the metadata: only the index is sent.
    for pallet in meta.pallets.iter().filter(|p| p.error.is_some()) {
        let ty = meta
            .types
            .resolve(pallet.error.as_ref().unwrap().ty.id)
            .unwrap();
        let TypeDef::Variant(v) = &ty.type_def else {
            panic!("{}", pallet.name)
        };
        assert!(
            v.variants.iter().all(|v| v.fields.is_empty()),
            "{}",
            pallet.name
        );
    }
}

/// `Metadata_metadata_at_version(15)`: V15 decodes with `frame-metadata`, has V14's
/// pallets with the same storage, the runtime APIs `state_call` answers (with their
/// types) and outer enums whose error enum names a module error's pallet and error.
#[test]
fn v15_has_the_pallets_the_runtime_apis_and_the_outer_enums() {
    let chain = Chain::new();
    assert_eq!(METADATA_VERSIONS, [14, 15]);
    assert!(metadata_at_version(&chain.state, 16).unwrap().is_none());
    let bytes = metadata_at_version(&chain.state, 15).unwrap().unwrap();
    let prefixed = RuntimeMetadataPrefixed::decode(&mut bytes.as_slice()).unwrap();
    let RuntimeMetadata::V15(v15) = prefixed.1 else {
        panic!("not V15")
    };
    let v14 = decoded(&chain.state);
    // (name, storage items, index) of each pallet.
    macro_rules! summary {
        ($meta:expr) => {
            $meta
                .pallets
                .iter()
                .map(|p| {
                    let items = p.storage.as_ref().map(|s| s.entries.len());
                    (p.name.clone(), items, p.index)
                })
                .collect::<Vec<_>>()
        };
    }
    let (of14, of15) = (summary!(v14), summary!(v15));
    assert_eq!(of14, of15);
    let apis: Vec<String> = v15
        .apis
        .iter()
        .flat_map(|a| {
            a.methods
                .iter()
                .map(move |m| format!("{}_{}", a.name, m.name))
        })
        .collect();
    // Each is a method state_call answers (the names of crate::metadata::RUNTIME_APIS).
    for name in [
        "Core_version",
        "Metadata_metadata",
        "Metadata_metadata_at_version",
        "Metadata_metadata_versions",
        "AccountNonceApi_account_nonce",
        "TransactionPaymentApi_query_info",
    ] {
        assert!(apis.iter().any(|a| a == name), "{name} in {apis:?}");
    }
    for (api, _) in RUNTIME_APIS {
        assert!(v15.apis.iter().any(|a| a.name == api), "{api}");
    }
    let ty = |id: u32| v15.types.resolve(id).unwrap();
    assert_eq!(
        ty(v15.extrinsic.address_ty.id).path.segments.join("::"),
        "sp_runtime::multiaddress::MultiAddress"
    );
    // The outer error enum: variant at the pallet's index holding its errors.
    let TypeDef::Variant(errors) = &ty(v15.outer_enums.error_enum_ty.id).type_def else {
        panic!("error enum")
    };
    let balances = errors.variants.iter().find(|v| v.index == 0).unwrap();
    assert_eq!(balances.name, "Balances");
    let TypeDef::Variant(inner) = &ty(balances.fields[0].ty.id).type_def else {
        panic!("balances errors")
    };
    assert_eq!(inner.variants[0].name, "InsufficientBalance");
    let TypeDef::Variant(events) = &ty(v15.outer_enums.event_enum_ty.id).type_def else {
        panic!("event enum")
    };
    assert!(events.variants.iter().any(|v| v.name == "System"));
}

/// The Balances calls wallets send are Substrate's, by name and index: a wallet or
/// subxt building `Balances.transfer_keep_alive` from the metadata encodes the call the
/// runtime decodes.
#[test]
fn balances_calls_have_substrates_names_and_indices() {
    let chain = Chain::new();
    let meta = decoded(&chain.state);
    let balances = meta.pallets.iter().find(|p| p.name == "Balances").unwrap();
    let ty = meta
        .types
        .resolve(balances.calls.as_ref().unwrap().ty.id)
        .unwrap();
    let TypeDef::Variant(calls) = &ty.type_def else {
        panic!("calls")
    };
    let named: Vec<(String, u8)> = calls
        .variants
        .iter()
        .map(|v| (v.name.clone(), v.index))
        .collect();
    assert_eq!(
        named,
        [
            ("transfer_allow_death".to_string(), 0),
            ("transfer_keep_alive".to_string(), 3)
        ]
    );
    let keep_alive = Call::Balances(neuroshard_primitives::BalancesCall::transfer_keep_alive {
        dest: neuroshard_primitives::AccountId::from([1; 32]),
        value: 5,
    });
    assert_eq!(keep_alive.encode()[..2], [balances.index, 3]);
}
