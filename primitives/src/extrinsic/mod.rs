//! Signed extrinsics in Substrate's format (signed, version 4), so that wallets built on
//! `@polkadot/api` or subxt sign them with no NeuroShard code:
//!
//! ```text
//! compact(length) ++ 0x84 ++ MultiAddress::Id(signer) ++ MultiSignature ++ extra ++ call
//! extra      = era ++ compact(nonce) ++ compact(tip)
//! signed     = call ++ extra ++ spec_version ++ transaction_version ++ genesis ++ birth
//! ```
//!
//! The signature covers `signed`, or its blake2-256 when it is over 256 bytes, as
//! Substrate's signed extensions `CheckNonZeroSender`, `CheckSpecVersion`,
//! `CheckTxVersion`, `CheckGenesis`, `CheckMortality` ([`Era`]; `birth` is the hash of
//! the block the era starts at, the genesis hash for immortal ones), `CheckNonce`,
//! `CheckWeight` and `ChargeTransactionPayment` (the tip) define it. An extrinsic signed
//! for one chain, one runtime version or one era is worthless on another. Signatures are
//! sr25519 or ed25519 (the account is the public key either way); unsigned extrinsics,
//! other address kinds and ECDSA signatures are refused when decoding.

mod era;

pub use era::Era;

use crate::call::Call;
use crate::crypto::{blake2_256, verify, AccountId, Hash, Keypair, Signature};
use crate::units::{Balance, Nonce};
use parity_scale_codec::{Compact, Decode, Encode, Error, Input, Output};
use sp_core::Pair as _;

/// The runtime's `spec_version`: bumped whenever the runtime's behaviour changes. Every
/// extrinsic signs it, so one signed for another version is refused.
pub const SPEC_VERSION: u32 = 2;
/// The runtime's `transaction_version`: bumped whenever the encoding of extrinsics or
/// calls changes.
pub const TRANSACTION_VERSION: u32 = 2;

/// The version byte of a signed extrinsic of format version 4.
const SIGNED_V4: u8 = 0x80 | 4;

/// Substrate's `MultiAddress`; only `Id` (an account) is accepted.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MultiAddress {
    #[codec(index = 0)]
    Id(AccountId),
    #[codec(index = 1)]
    Index(#[codec(compact)] u32),
    #[codec(index = 2)]
    Raw(Vec<u8>),
    #[codec(index = 3)]
    Address32([u8; 32]),
    #[codec(index = 4)]
    Address20([u8; 20]),
}

/// Substrate's `MultiSignature`; ECDSA signatures decode but never verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode)]
pub enum MultiSignature {
    #[codec(index = 0)]
    Ed25519([u8; 64]),
    #[codec(index = 1)]
    Sr25519([u8; 64]),
    #[codec(index = 2)]
    Ecdsa([u8; 65]),
}

impl MultiSignature {
    /// Whether this is `signer`'s signature over `message`.
    pub fn verify(&self, message: &[u8], signer: &AccountId) -> bool {
        match self {
            MultiSignature::Sr25519(raw) => verify(&Signature::from_raw(*raw), message, signer),
            MultiSignature::Ed25519(raw) => {
                let public = sp_core::ed25519::Public::from_raw(
                    *<AccountId as AsRef<[u8; 32]>>::as_ref(signer),
                );
                sp_core::ed25519::Pair::verify(
                    &sp_core::ed25519::Signature::from_raw(*raw),
                    message,
                    &public,
                )
            }
            MultiSignature::Ecdsa(_) => false,
        }
    }
}

// Tools recognise the address and signature types by their Substrate paths (and
// `@polkadot/api` encodes addresses as plain accounts unless the extrinsic's `Address`
// is `sp_runtime::multiaddress::MultiAddress`), so both are described by hand.
impl scale_info::TypeInfo for MultiAddress {
    type Identity = Self;

    fn type_info() -> scale_info::Type {
        use scale_info::build::{Fields, Variants};
        use scale_info::{meta_type, TypeParameter};
        scale_info::Type::builder()
            .path(scale_info::Path::new(
                "MultiAddress",
                "sp_runtime::multiaddress",
            ))
            .type_params(vec![
                TypeParameter::new("AccountId", Some(meta_type::<AccountId>())),
                TypeParameter::new("AccountIndex", Some(meta_type::<u32>())),
            ])
            .variant(
                Variants::new()
                    .variant("Id", |v| {
                        v.index(0).fields(
                            Fields::unnamed().field(|f| f.ty::<AccountId>().type_name("AccountId")),
                        )
                    })
                    .variant("Index", |v| {
                        v.index(1).fields(
                            Fields::unnamed()
                                .field(|f| f.compact::<u32>().type_name("AccountIndex")),
                        )
                    })
                    .variant("Raw", |v| {
                        v.index(2)
                            .fields(Fields::unnamed().field(|f| f.ty::<Vec<u8>>()))
                    })
                    .variant("Address32", |v| {
                        v.index(3)
                            .fields(Fields::unnamed().field(|f| f.ty::<[u8; 32]>()))
                    })
                    .variant("Address20", |v| {
                        v.index(4)
                            .fields(Fields::unnamed().field(|f| f.ty::<[u8; 20]>()))
                    }),
            )
    }
}

impl scale_info::TypeInfo for MultiSignature {
    type Identity = Self;

    fn type_info() -> scale_info::Type {
        use scale_info::build::{Fields, Variants};
        let variants = Variants::new()
            .variant("Ed25519", |v| {
                v.index(0)
                    .fields(Fields::unnamed().field(|f| f.ty::<[u8; 64]>()))
            })
            .variant("Sr25519", |v| {
                v.index(1)
                    .fields(Fields::unnamed().field(|f| f.ty::<[u8; 64]>()))
            })
            .variant("Ecdsa", |v| {
                v.index(2)
                    .fields(Fields::unnamed().field(|f| f.ty::<[u8; 65]>()))
            });
        scale_info::Type::builder()
            .path(scale_info::Path::new("MultiSignature", "sp_runtime"))
            .variant(variants)
    }
}

/// A call signed by its sender (see the module docs for the format).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedExtrinsic {
    pub signer: AccountId,
    pub signature: MultiSignature,
    pub era: Era,
    pub nonce: Nonce,
    /// Paid to the block author on top of the fee; higher tips go first.
    pub tip: Balance,
    pub call: Call,
}

/// What an extrinsic signs besides its call: its era, nonce and tip, and the chain it
/// is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SigningContext {
    pub genesis: Hash,
    /// The hash of the era's birth block (the genesis hash for immortal eras).
    pub birth: Hash,
    pub era: Era,
    pub tip: Balance,
}

impl SigningContext {
    /// An immortal extrinsic with no tip for the chain whose genesis hash is `genesis`.
    pub fn immortal(genesis: Hash) -> Self {
        Self {
            genesis,
            birth: genesis,
            era: Era::Immortal,
            tip: 0,
        }
    }
}

impl SignedExtrinsic {
    /// The bytes the signer signs (see the module docs).
    pub fn signing_payload(
        call: &Call,
        era: Era,
        nonce: Nonce,
        tip: Balance,
        genesis: &Hash,
        birth: &Hash,
    ) -> Vec<u8> {
        let payload = (
            call,
            era,
            Compact(nonce),
            Compact(tip),
            SPEC_VERSION,
            TRANSACTION_VERSION,
            genesis,
            birth,
        )
            .encode();
        if payload.len() > 256 {
            blake2_256(&payload).0.to_vec()
        } else {
            payload
        }
    }

    /// Builds and signs (sr25519) an immortal extrinsic with no tip for the chain with
    /// genesis hash `genesis`.
    pub fn sign(pair: &Keypair, genesis: &Hash, nonce: Nonce, call: Call) -> Self {
        Self::sign_in(pair, &SigningContext::immortal(*genesis), nonce, call)
    }

    /// Builds and signs (sr25519) an extrinsic in `context`.
    pub fn sign_in(pair: &Keypair, context: &SigningContext, nonce: Nonce, call: Call) -> Self {
        let payload = Self::signing_payload(
            &call,
            context.era,
            nonce,
            context.tip,
            &context.genesis,
            &context.birth,
        );
        Self {
            signer: pair.public().into(),
            signature: MultiSignature::Sr25519(pair.sign(&payload).0),
            era: context.era,
            nonce,
            tip: context.tip,
            call,
        }
    }

    /// True when the signature is the signer's over this extrinsic on the chain with
    /// genesis hash `genesis`, `birth` being the hash of its era's birth block (the
    /// genesis hash for immortal extrinsics).
    pub fn signature_is_valid(&self, genesis: &Hash, birth: &Hash) -> bool {
        let payload =
            Self::signing_payload(&self.call, self.era, self.nonce, self.tip, genesis, birth);
        self.signature.verify(&payload, &self.signer)
    }

    /// The extrinsic's hash (of its full encoding, length prefix included, as Substrate
    /// hashes it), used by the pool and RPC.
    pub fn hash(&self) -> Hash {
        blake2_256(&self.encode())
    }

    fn body(&self) -> Vec<u8> {
        let mut body = vec![SIGNED_V4];
        MultiAddress::Id(self.signer.clone()).encode_to(&mut body);
        self.signature.encode_to(&mut body);
        self.era.encode_to(&mut body);
        Compact(self.nonce).encode_to(&mut body);
        Compact(self.tip).encode_to(&mut body);
        self.call.encode_to(&mut body);
        body
    }
}

impl Encode for SignedExtrinsic {
    fn encode_to<T: Output + ?Sized>(&self, out: &mut T) {
        let body = self.body();
        Compact(body.len() as u32).encode_to(out);
        out.write(&body);
    }
}

impl Decode for SignedExtrinsic {
    fn decode<I: Input>(input: &mut I) -> Result<Self, Error> {
        let len = Compact::<u32>::decode(input)?.0 as usize;
        let mut body = Bounded {
            inner: input,
            left: len,
        };
        if body.read_byte()? != SIGNED_V4 {
            return Err("only signed extrinsics of format version 4 are accepted".into());
        }
        let MultiAddress::Id(signer) = MultiAddress::decode(&mut body)? else {
            return Err("only MultiAddress::Id signers are accepted".into());
        };
        let xt = SignedExtrinsic {
            signer,
            signature: MultiSignature::decode(&mut body)?,
            era: Era::decode(&mut body)?,
            nonce: Compact::<Nonce>::decode(&mut body)?.0,
            tip: Compact::<Balance>::decode(&mut body)?.0,
            call: Call::decode(&mut body)?,
        };
        if body.left != 0 {
            return Err("an extrinsic's length prefix exceeds its content".into());
        }
        Ok(xt)
    }
}

/// `inner` limited to the `left` bytes an extrinsic's length prefix announced.
struct Bounded<'a, I: Input> {
    inner: &'a mut I,
    left: usize,
}

impl<I: Input> Input for Bounded<'_, I> {
    fn remaining_len(&mut self) -> Result<Option<usize>, Error> {
        Ok(Some(match self.inner.remaining_len()? {
            Some(n) => n.min(self.left),
            None => self.left,
        }))
    }

    fn read(&mut self, into: &mut [u8]) -> Result<(), Error> {
        if into.len() > self.left {
            return Err("an extrinsic's content exceeds its length prefix".into());
        }
        self.inner.read(into)?;
        self.left -= into.len();
        Ok(())
    }
}

/// Described as Substrate's `UncheckedExtrinsic` (an opaque byte vector with the types of
/// its address, call, signature and extra as parameters), so tools find those types.
impl scale_info::TypeInfo for SignedExtrinsic {
    type Identity = Self;

    fn type_info() -> scale_info::Type {
        use scale_info::{meta_type, TypeParameter};
        scale_info::Type::builder()
            .path(scale_info::Path::new(
                "UncheckedExtrinsic",
                "sp_runtime::generic::unchecked_extrinsic",
            ))
            .type_params(vec![
                TypeParameter::new("Address", Some(meta_type::<MultiAddress>())),
                TypeParameter::new("Call", Some(meta_type::<Call>())),
                TypeParameter::new("Signature", Some(meta_type::<MultiSignature>())),
                TypeParameter::new("Extra", Some(meta_type::<SignedExtra>())),
            ])
            .docs(&["A signed extrinsic of format version 4 (see the module docs)."])
            .composite(scale_info::build::Fields::unnamed().field(|f| f.ty::<Vec<u8>>()))
    }
}

/// The extra data of the signed extensions, in their order (for the metadata: described,
/// never built).
#[allow(dead_code)]
#[derive(scale_info::TypeInfo)]
pub struct SignedExtra(
    CheckNonZeroSender,
    CheckSpecVersion,
    CheckTxVersion,
    CheckGenesis,
    CheckMortality,
    CheckNonce,
    CheckWeight,
    ChargeTransactionPayment,
);

/// The signed extensions as the metadata lists them: the type each adds to the
/// extrinsic (`extra`) and to the signed payload only (`additional`).
pub mod extensions {
    use super::*;
    use scale_info::{meta_type, MetaType};

    /// `(identifier, extra type, additional-signed type)` of every signed extension, in
    /// order.
    pub fn all() -> Vec<(&'static str, MetaType, MetaType)> {
        vec![
            (
                "CheckNonZeroSender",
                meta_type::<CheckNonZeroSender>(),
                meta_type::<()>(),
            ),
            (
                "CheckSpecVersion",
                meta_type::<CheckSpecVersion>(),
                meta_type::<u32>(),
            ),
            (
                "CheckTxVersion",
                meta_type::<CheckTxVersion>(),
                meta_type::<u32>(),
            ),
            (
                "CheckGenesis",
                meta_type::<CheckGenesis>(),
                meta_type::<Hash>(),
            ),
            (
                "CheckMortality",
                meta_type::<CheckMortality>(),
                meta_type::<Hash>(),
            ),
            ("CheckNonce", meta_type::<CheckNonce>(), meta_type::<()>()),
            ("CheckWeight", meta_type::<CheckWeight>(), meta_type::<()>()),
            (
                "ChargeTransactionPayment",
                meta_type::<ChargeTransactionPayment>(),
                meta_type::<()>(),
            ),
        ]
    }
}

/// Refuses the all-zero account as a signer (its key is unknown to anyone).
#[derive(scale_info::TypeInfo)]
pub struct CheckNonZeroSender;
/// Signs the runtime's [`SPEC_VERSION`].
#[derive(scale_info::TypeInfo)]
pub struct CheckSpecVersion;
/// Signs the runtime's [`TRANSACTION_VERSION`].
#[derive(scale_info::TypeInfo)]
pub struct CheckTxVersion;
/// Signs the genesis hash.
#[derive(scale_info::TypeInfo)]
pub struct CheckGenesis;
/// Carries the [`Era`] and signs its birth block's hash.
#[derive(scale_info::TypeInfo)]
pub struct CheckMortality(pub Era);
/// Carries the signer's nonce.
#[derive(scale_info::TypeInfo)]
pub struct CheckNonce(#[codec(compact)] pub Nonce);
/// The block's size limit.
#[derive(scale_info::TypeInfo)]
pub struct CheckWeight;
/// Carries the tip paid on top of the fee.
#[derive(scale_info::TypeInfo)]
pub struct ChargeTransactionPayment(#[codec(compact)] pub Balance);

#[cfg(test)]
mod tests;
