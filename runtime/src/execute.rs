//! Block building for the author and block execution for importers. Building and
//! executing share one path ([`Runtime::initialize`] then [`Runtime::apply_checked`]
//! per extrinsic), so a block an honest author built always executes to the same state
//! root elsewhere.

use crate::error::{BlockError, DispatchError, TransactionError};
use crate::{system, Runtime};
use neuroshard_balances as balances;
use neuroshard_ponw as ponw;
use neuroshard_primitives::block::extrinsics_root;
use neuroshard_primitives::{
    slot_lottery, AccountId, Balance, Block, Digest, Event, Hash, Header, PreDigest, Signature,
    SignedExtrinsic, VrfSignature,
};
use neuroshard_staking as staking;
use neuroshard_support::{BlockContext, Overlay, ReadState, StateChanges, StateDb};
use parity_scale_codec::Encode;

/// A block built by the author, unsealed.
#[derive(Clone, Debug)]
pub struct BuiltBlock {
    pub block: Block,
    pub changes: StateChanges,
    pub events: Vec<Event>,
    /// Candidates that failed and were left out.
    pub rejected: Vec<(Hash, TransactionError)>,
}

/// The effects of an imported block.
#[derive(Clone, Debug)]
pub struct ExecutedBlock {
    pub changes: StateChanges,
    pub events: Vec<Event>,
}

impl Runtime {
    /// The parameters of every pallet as the state holds them.
    pub fn params(state: &impl ReadState) -> Result<crate::RuntimeParams, DispatchError> {
        Ok(crate::RuntimeParams {
            system: system::params(state)?,
            balances: balances::params(state)?,
            staking: staking::params(state)?,
            ponw: ponw::params(state)?,
            training: neuroshard_training_pallet::params(state)?,
        })
    }

    /// The validator set.
    pub fn validators(state: &impl ReadState) -> Result<Vec<AccountId>, DispatchError> {
        Ok(staking::validators(state)?)
    }

    /// The validator set, each with its staking bond (its weight in the slot lottery and
    /// in spot-check draws).
    pub fn validator_bonds(
        state: &impl ReadState,
    ) -> Result<Vec<(AccountId, Balance)>, DispatchError> {
        Self::validators(state)?
            .into_iter()
            .map(|who| {
                let bond = balances::account(state, &who)?.bonded;
                Ok((who, bond))
            })
            .collect()
    }

    /// The chain randomness the next block's VRF must sign (see
    /// [`neuroshard_primitives::slot_lottery`]).
    pub fn randomness(state: &impl ReadState) -> Result<Hash, DispatchError> {
        Ok(system::randomness(state)?)
    }

    /// The validator allowed to author in `slot` on top of `state`: drawn from the chain
    /// randomness with chances proportional to bond (the slot lottery).
    pub fn expected_author(
        state: &impl ReadState,
        slot: u64,
    ) -> Result<Option<AccountId>, DispatchError> {
        let set = Self::validator_bonds(state)?;
        let bonds: Vec<Balance> = set.iter().map(|(_, bond)| *bond).collect();
        let randomness = system::randomness(state)?;
        Ok(slot_lottery::draw(&randomness, slot, &bonds).map(|i| set[i].0.clone()))
    }

    /// The VRF output of `author`'s slot-lottery signature for `slot` on `state`'s
    /// randomness, or [`BlockError::BadVrf`].
    fn verify_vrf(
        state: &StateDb,
        author: &AccountId,
        slot: u64,
        vrf: &VrfSignature,
    ) -> Result<Hash, BlockError> {
        let randomness = system::randomness(state)?;
        slot_lottery::verify(author, &randomness, slot, vrf).ok_or(BlockError::BadVrf)
    }

    /// Start-of-block work: record number, slot and parent, mix the block's VRF output
    /// into the randomness; open the minute's liveness challenge; pay out a finished
    /// epoch.
    pub(crate) fn initialize(
        &self,
        overlay: &mut Overlay<'_>,
        ctx: &mut BlockContext,
        vrf_output: &Hash,
    ) -> Result<(), DispatchError> {
        system::on_initialize(overlay, ctx, vrf_output)?;
        ctx.randomness = system::randomness(&*overlay)?;
        let validators = Self::validator_bonds(&*overlay)?;
        let slot_duration_ms = system::params(&*overlay)?.slot_duration_ms;
        ponw::on_initialize(overlay, ctx, &validators, slot_duration_ms)?;
        Ok(())
    }

    /// Builds the next block on `parent` from `candidates` (in order), leaving out the
    /// ones that fail and the ones that no longer fit. `vrf` is the author's slot-lottery
    /// signature ([`slot_lottery::sign`] on [`Runtime::randomness`] and `slot`). The
    /// header is left unsealed.
    pub fn build_block(
        &self,
        state: &StateDb,
        parent: &Header,
        slot: u64,
        author: AccountId,
        vrf: VrfSignature,
        candidates: Vec<SignedExtrinsic>,
    ) -> Result<BuiltBlock, BlockError> {
        let p = system::params(state)?;
        let number = parent.number + 1;
        let vrf_output = Self::verify_vrf(state, &author, slot, &vrf)?;
        let mut ctx = system::context(&p, number, parent.hash(), slot, author.clone());
        let mut overlay = Overlay::new(state);
        self.initialize(&mut overlay, &mut ctx, &vrf_output)
            .map_err(BlockError::Initialize)?;
        let initialized = overlay.events().len();
        let mut applied = Vec::new();
        let mut included = Vec::new();
        let mut rejected = Vec::new();
        let mut body_bytes = 0usize;
        for xt in candidates {
            let size = xt.encoded_size();
            if body_bytes + size > p.max_block_bytes as usize {
                continue;
            }
            let result = self
                .check_envelope(&overlay, &ctx, &xt, size)
                .and_then(|()| self.apply_checked(&mut overlay, &ctx, &xt));
            match result {
                Ok(()) => {
                    body_bytes += size;
                    applied.push(overlay.events().len());
                    included.push(xt);
                }
                Err(e) => rejected.push((xt.hash(), e)),
            }
        }
        store_events(&mut overlay, initialized, &applied);
        let (changes, events) = overlay.into_parts();
        let header = Header {
            parent_hash: parent.hash(),
            number,
            state_root: state.root_after(&changes),
            extrinsics_root: extrinsics_root(&included),
            digest: Digest {
                pre: PreDigest { slot, author, vrf },
                seal: Signature::from_raw([0; 64]),
            },
        };
        Ok(BuiltBlock {
            block: Block {
                header,
                extrinsics: included,
            },
            changes,
            events,
            rejected,
        })
    }

    /// Verifies and executes an imported block on its parent's state: parent link,
    /// number, slot, author and seal, extrinsics root, every extrinsic, state root.
    pub fn execute_block(
        &self,
        state: &StateDb,
        parent: &Header,
        block: &Block,
    ) -> Result<ExecutedBlock, BlockError> {
        let header = &block.header;
        if header.parent_hash != parent.hash() {
            return Err(BlockError::WrongParent {
                expected: parent.hash(),
                got: header.parent_hash,
            });
        }
        if header.number != parent.number + 1 {
            return Err(BlockError::WrongNumber {
                parent: parent.number,
                got: header.number,
            });
        }
        if header.slot() <= parent.slot() {
            return Err(BlockError::SlotNotIncreasing {
                parent: parent.slot(),
                got: header.slot(),
            });
        }
        let expected =
            Self::expected_author(state, header.slot()).map_err(BlockError::Initialize)?;
        if expected.as_ref() != Some(header.author()) {
            return Err(BlockError::WrongAuthor);
        }
        if !header.seal_is_valid() {
            return Err(BlockError::BadSeal);
        }
        let pre = &header.digest.pre;
        let vrf_output = Self::verify_vrf(state, &pre.author, pre.slot, &pre.vrf)?;
        if extrinsics_root(&block.extrinsics) != header.extrinsics_root {
            return Err(BlockError::ExtrinsicsRoot);
        }
        let p = system::params(state)?;
        let size: usize = block.extrinsics.iter().map(|x| x.encoded_size()).sum();
        if size > p.max_block_bytes as usize {
            return Err(BlockError::TooLarge {
                size,
                limit: p.max_block_bytes,
            });
        }
        let mut ctx = system::context(
            &p,
            header.number,
            header.parent_hash,
            pre.slot,
            pre.author.clone(),
        );
        let mut overlay = Overlay::new(state);
        self.initialize(&mut overlay, &mut ctx, &vrf_output)
            .map_err(BlockError::Initialize)?;
        let initialized = overlay.events().len();
        let mut applied = Vec::with_capacity(block.extrinsics.len());
        for (index, xt) in block.extrinsics.iter().enumerate() {
            self.check_envelope(&overlay, &ctx, xt, xt.encoded_size())
                .and_then(|()| self.apply_checked(&mut overlay, &ctx, xt))
                .map_err(|error| BlockError::Extrinsic { index, error })?;
            applied.push(overlay.events().len());
        }
        store_events(&mut overlay, initialized, &applied);
        let (changes, events) = overlay.into_parts();
        let computed = state.root_after(&changes);
        if computed != header.state_root {
            return Err(BlockError::StateRoot {
                header: header.state_root,
                computed,
            });
        }
        Ok(ExecutedBlock { changes, events })
    }
}

/// Writes the block's events into `System.Events` (removed when there are none), with
/// their phases: `initialized` events came before the first extrinsic, `applied[i]` is
/// the count after extrinsic `i`.
fn store_events(overlay: &mut Overlay<'_>, initialized: usize, applied: &[usize]) {
    let records = crate::events::records(overlay.events(), initialized, applied);
    if records.is_empty() {
        system::EVENTS.kill(overlay);
    } else {
        system::EVENTS.put(overlay, &records);
    }
}
