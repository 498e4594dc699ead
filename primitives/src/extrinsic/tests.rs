use super::*;
use crate::call::BalancesCall;
use crate::crypto::keypair_from_uri;
use proptest::prelude::*;

fn transfer(amount: Balance) -> Call {
    Call::Balances(BalancesCall::transfer_allow_death {
        dest: keypair_from_uri("//Bob").unwrap().public().into(),
        value: amount,
    })
}

/// The bytes after an encoded extrinsic's length prefix.
fn body(bytes: &[u8]) -> &[u8] {
    let mut input = bytes;
    Compact::<u32>::decode(&mut input).unwrap();
    input
}

fn genesis() -> Hash {
    blake2_256(b"dev")
}

#[test]
fn signature_binds_chain_nonce_call_era_and_tip() {
    let alice = keypair_from_uri("//Alice").unwrap();
    let g = genesis();
    let xt = SignedExtrinsic::sign(&alice, &g, 0, transfer(5));
    assert!(xt.signature_is_valid(&g, &g));
    assert!(!xt.signature_is_valid(&blake2_256(b"other chain"), &g));
    let mut changed = xt.clone();
    changed.nonce = 1;
    assert!(!changed.signature_is_valid(&g, &g));
    let mut changed = xt.clone();
    changed.call = transfer(6);
    assert!(!changed.signature_is_valid(&g, &g));
    let mut changed = xt.clone();
    changed.tip = 1;
    assert!(!changed.signature_is_valid(&g, &g));
    let mut changed = xt;
    changed.era = Era::mortal(64, 0);
    assert!(!changed.signature_is_valid(&g, &g));
}

#[test]
fn a_mortal_extrinsic_signs_its_birth_block() {
    let alice = keypair_from_uri("//Alice").unwrap();
    let (g, birth) = (genesis(), blake2_256(b"block 40"));
    let context = SigningContext {
        genesis: g,
        birth,
        era: Era::mortal(64, 40),
        tip: 7,
    };
    let xt = SignedExtrinsic::sign_in(&alice, &context, 3, transfer(5));
    assert!(xt.signature_is_valid(&g, &birth));
    assert!(!xt.signature_is_valid(&g, &g), "another birth block");
    assert_eq!((xt.era.birth(60), xt.era.death(60)), (40, 104));
}

#[test]
fn ed25519_signers_are_accepted_and_ecdsa_is_not() {
    use sp_core::ed25519;
    let pair = ed25519::Pair::from_string("//Alice", None).unwrap();
    let g = genesis();
    let call = transfer(5);
    let payload = SignedExtrinsic::signing_payload(&call, Era::Immortal, 0, 0, &g, &g);
    let mut xt = SignedExtrinsic {
        signer: AccountId::from(pair.public().0),
        signature: MultiSignature::Ed25519(pair.sign(&payload).0),
        era: Era::Immortal,
        nonce: 0,
        tip: 0,
        call,
    };
    assert!(xt.signature_is_valid(&g, &g));
    let bytes = xt.encode();
    assert_eq!(SignedExtrinsic::decode(&mut &bytes[..]).unwrap(), xt);
    xt.signature = MultiSignature::Ecdsa([1; 65]);
    assert!(!xt.signature_is_valid(&g, &g));
}

#[test]
fn the_layout_is_substrates_signed_v4() {
    let alice = keypair_from_uri("//Alice").unwrap();
    let xt = SignedExtrinsic::sign(&alice, &genesis(), 5, transfer(3));
    let bytes = xt.encode();
    let rest = body(&bytes);
    assert_eq!(
        Compact::<u32>::decode(&mut &bytes[..]).unwrap().0 as usize,
        rest.len(),
        "compact length prefix"
    );
    assert_eq!(rest[0], 0x84, "signed, version 4");
    assert_eq!(rest[1], 0, "MultiAddress::Id");
    assert_eq!(&rest[2..34], AsRef::<[u8; 32]>::as_ref(&xt.signer));
    assert_eq!(rest[34], 1, "MultiSignature::Sr25519");
    assert_eq!(
        &rest[99..102],
        &[0, 5 << 2, 0],
        "immortal era, nonce 5, tip 0"
    );
    assert_eq!(&rest[102..], &transfer(3).encode()[..]);
    assert_eq!(xt.hash(), blake2_256(&bytes), "the hash covers the prefix");
}

#[test]
fn long_payloads_are_signed_by_their_hash() {
    let alice = keypair_from_uri("//Alice").unwrap();
    let g = genesis();
    let call = Call::Ponw(crate::call::PonwCall::Heartbeat {
        minute: 1,
        chunk: vec![7; 300],
        proof: Vec::new(),
    });
    let payload = SignedExtrinsic::signing_payload(&call, Era::Immortal, 0, 0, &g, &g);
    assert_eq!(
        payload.len(),
        32,
        "over 256 bytes: signed by its blake2-256"
    );
    let xt = SignedExtrinsic::sign(&alice, &g, 0, call);
    assert!(xt.signature_is_valid(&g, &g));
}

#[test]
fn malformed_envelopes_are_refused() {
    let alice = keypair_from_uri("//Alice").unwrap();
    let bytes = SignedExtrinsic::sign(&alice, &genesis(), 0, transfer(1)).encode();
    let rest = body(&bytes).to_vec();
    let prefixed = |len: usize, body: &[u8]| {
        let mut out = Compact(len as u32).encode();
        out.extend_from_slice(body);
        out
    };
    // Unsigned (version byte 0x04), another address kind, a short or long prefix.
    let mut unsigned = rest.clone();
    unsigned[0] = 0x04;
    let mut indexed = rest.clone();
    indexed[1] = 1;
    let (unsigned, indexed) = (
        prefixed(rest.len(), &unsigned),
        prefixed(rest.len(), &indexed),
    );
    let short = prefixed(rest.len() - 4, &rest);
    let mut long = prefixed(rest.len() + 4, &rest);
    long.push(0);
    for (what, bad) in [
        ("unsigned", unsigned),
        ("index address", indexed),
        ("short prefix", short),
        ("long prefix", long),
    ] {
        assert!(
            SignedExtrinsic::decode(&mut &bad[..]).is_err(),
            "{what} decoded"
        );
    }
}

proptest! {
    #[test]
    fn extrinsic_codec_round_trips(
        nonce in any::<u64>(),
        amount in any::<u128>(),
        tip in any::<u128>(),
        period in 0u64..70_000,
        current in any::<u64>(),
        seed in any::<[u8; 32]>(),
    ) {
        let pair = Keypair::from_seed(&seed);
        let context = SigningContext {
            genesis: Hash::zero(),
            birth: Hash::repeat_byte(1),
            era: Era::mortal(period, current),
            tip,
        };
        let xt = SignedExtrinsic::sign_in(&pair, &context, nonce, transfer(amount));
        let bytes = xt.encode();
        prop_assert_eq!(SignedExtrinsic::decode(&mut &bytes[..]).unwrap(), xt);
    }

    #[test]
    fn garbage_never_panics_the_decoder(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        let _ = SignedExtrinsic::decode(&mut &bytes[..]);
        let _ = crate::block::Block::decode(&mut &bytes[..]);
    }
}
