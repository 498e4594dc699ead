//! Assembling and running a node: load the chain spec, open the store and the client
//! (which verifies the stored state against the head), start JSON-RPC and the HTTP API,
//! start block production when this node is a validator, and shut all of it down
//! cleanly on Ctrl-C or SIGTERM. (A kill -9 is also safe: see [`crate::store`].)

use crate::client::{ChainInfo, Client, ClientConfig};
use crate::store::Store;
use crate::{api, authoring, rpc, worker};
use anyhow::Context;
use neuroshard_chain_spec::ChainSpec;
use neuroshard_primitives::LayerRange;
use neuroshard_primitives::{crypto, AccountId, Keypair};
use sp_core::Pair as _;
use std::path::PathBuf;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

/// Everything a node needs to start.
pub struct NodeConfig {
    /// "dev", "local" or a chain spec path.
    pub chain: String,
    pub base_path: PathBuf,
    pub key: Option<Keypair>,
    pub validator: bool,
    pub rpc_port: u16,
    pub api_port: u16,
    /// Layer ranges of the chain's model this node serves (empty: none).
    pub shards: Vec<LayerRange>,
    /// libp2p settings; `None` runs without networking (the single-node `dev` chain).
    pub p2p: Option<crate::p2p::P2pConfig>,
    /// Fault injection: share of output positions (millionths) the shards fake.
    pub fault_skip_work: Option<u32>,
    /// The served shard this node trains an adapter for (Proof of Training).
    pub train: Option<crate::training::TrainOptions>,
}

/// The database file of chain `id` under `base_path`.
pub fn db_path(base_path: &std::path::Path, chain_id: &str) -> PathBuf {
    base_path.join("chains").join(chain_id).join("db.redb")
}

/// Loads a chain spec ("dev", "local" or a JSON path).
pub fn load_chain(name_or_path: &str) -> anyhow::Result<ChainSpec> {
    neuroshard_chain_spec::load(name_or_path)
        .with_context(|| format!("loading chain spec {name_or_path:?}"))
}

/// Runs the node until a shutdown signal.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let spec = load_chain(&config.chain)?;
    let chain = ChainInfo {
        name: spec.name.clone(),
        id: spec.id.clone(),
        genesis: spec.genesis.clone(),
    };
    let path = db_path(&config.base_path, &chain.id);
    info!(chain = %chain.name, db = %path.display(), "opening chain database");
    let store = Store::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // A single authority finalizes its own blocks; with several, validators vote.
    let validators = {
        let (state, _) = neuroshard_runtime::Runtime::build_genesis(&chain.genesis)?;
        neuroshard_runtime::Runtime::validators(&state)?.len()
    };
    let client = Client::open(
        store,
        &chain,
        ClientConfig {
            instant_finality: validators <= 1,
            ..ClientConfig::default()
        },
    )?;
    let client = Arc::new(client);

    let (stop_tx, stop_rx) = watch::channel(false);
    let p2p = match config.p2p.clone() {
        None => None,
        Some(p2p_config) => Some(
            crate::p2p::start(
                p2p_config,
                &config.base_path,
                client.clone(),
                config.key.clone(),
                config.validator,
                stop_rx.clone(),
            )
            .await?,
        ),
    };

    let api_state = api::ApiState {
        client: client.clone(),
        generator: Arc::new(tokio::sync::RwLock::new(if config.shards.is_empty() {
            api::GeneratorSlot::NotServing
        } else {
            api::GeneratorSlot::Loading
        })),
        metrics: Arc::new(api::Metrics::default()),
        p2p: p2p.clone(),
    };
    let generation = rpc::generate::Generate {
        generator: api_state.generator.clone(),
        metrics: api_state.metrics.clone(),
    };
    let training_board = Arc::new(crate::training::board::TrainingBoard::default());
    let (addr, rpc_handle) = rpc::start(
        client.clone(),
        p2p.clone(),
        generation,
        training_board.clone(),
        config.rpc_port,
    )
    .await?;
    info!("JSON-RPC server listening on {addr} (HTTP and WebSocket)");

    api::serve(api_state.clone(), config.api_port, stop_rx.clone()).await?;
    let serve_task = match (&config.key, config.shards.is_empty()) {
        (_, true) => None,
        (Some(key), false) => Some(tokio::spawn(worker::serve(
            client.clone(),
            key.clone(),
            worker::ServeOptions {
                model: spec.model.clone(),
                shards: config.shards.clone(),
                fault_skip_work: config.fault_skip_work,
                train: config.train.clone(),
            },
            p2p.clone(),
            api_state.generator.clone(),
            training_board,
            stop_rx.clone(),
        ))),
        (None, false) => anyhow::bail!("serving shards needs --key (the worker's account)"),
    };
    let author_task = match (&config.key, config.validator) {
        (Some(key), true) => {
            let account: AccountId = key.public().into();
            info!(author = %crypto::ss58(&account), "block production enabled");
            Some(tokio::spawn(authoring::run(
                client.clone(),
                key.clone(),
                stop_rx,
            )))
        }
        _ => None,
    };

    shutdown_signal().await;
    info!("shutting down");
    let _ = stop_tx.send(true);
    if let Some(task) = author_task {
        let _ = task.await;
    }
    if let Some(task) = serve_task {
        task.abort();
    }
    let _ = rpc_handle.stop();
    rpc_handle.stopped().await;
    Ok(())
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
