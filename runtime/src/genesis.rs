//! Genesis: the parameters of every pallet and the initial accounts, validators and
//! workers, turned into the block-0 state and header.

use crate::error::{DispatchError, GenesisError};
use crate::system::{self, SystemParams};
use crate::Runtime;
use neuroshard_balances as balances;
use neuroshard_ponw as ponw;
use neuroshard_primitives::{
    AccountId, Balance, Digest, Hash, Header, LayerRange, PreDigest, Signature,
};
use neuroshard_staking as staking;
use neuroshard_support::StateDb;
use neuroshard_training_pallet as training;
use parity_scale_codec::{Decode, Encode};
use serde::{Deserialize, Serialize};

/// Every pallet's parameters.
#[derive(
    Clone, Debug, PartialEq, Eq, Encode, Decode, Serialize, Deserialize, scale_info::TypeInfo,
)]
pub struct RuntimeParams {
    pub system: SystemParams,
    pub balances: balances::Params,
    pub staking: staking::Params,
    pub ponw: ponw::Params,
    pub training: training::Params,
}

/// What block 0 contains.
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, scale_info::TypeInfo)]
pub struct GenesisConfig {
    pub params: RuntimeParams,
    /// Endowed accounts (free balance).
    pub balances: Vec<(AccountId, Balance)>,
    /// Validators and their bonds (taken from their endowment).
    pub validators: Vec<(AccountId, Balance)>,
    /// Workers registered from the start, with the shards they serve.
    pub workers: Vec<(AccountId, Vec<LayerRange>)>,
}

impl Runtime {
    /// Builds the genesis state and the (unsealed) genesis header.
    pub fn build_genesis(config: &GenesisConfig) -> Result<(StateDb, Header), GenesisError> {
        let p = &config.params;
        if p.system.epoch_length == 0 || p.system.slot_duration_ms == 0 {
            return Err(GenesisError::BadSystemParams);
        }
        if config.validators.is_empty() {
            return Err(GenesisError::NoValidators);
        }
        let mut state = StateDb::new();
        state.commit(|overlay| -> Result<(), GenesisError> {
            system::PARAMS.put(overlay, &p.system);
            system::NUMBER.put(overlay, &0);
            system::SLOT.put(overlay, &0);
            balances::build_genesis(overlay, &p.balances, &config.balances)
                .map_err(DispatchError::from)?;
            staking::build_genesis(overlay, &p.staking, &config.validators)
                .map_err(DispatchError::from)?;
            ponw::build_genesis(overlay, &p.ponw, &config.workers).map_err(DispatchError::from)?;
            training::build_genesis(overlay, &p.training).map_err(DispatchError::from)?;
            Ok(())
        })?;
        let header = Header {
            parent_hash: Hash::zero(),
            number: 0,
            state_root: state.root(),
            extrinsics_root: Hash::zero(),
            digest: Digest {
                pre: PreDigest {
                    slot: 0,
                    author: AccountId::from([0; 32]),
                    vrf: neuroshard_primitives::slot_lottery::genesis_signature(),
                },
                seal: Signature::from_raw([0; 64]),
            },
        };
        Ok((state, header))
    }
}
