//! Assembling and running a node, the one place where its components are wired: load the
//! chain spec, open the store and the client (which verifies the stored state against
//! the head), start the network, JSON-RPC and the HTTP API, block production when this
//! node is a validator, and — when it serves shards — the model, the shard server, Proof
//! of Training, the validator's spot checker and liveness prober and the miner; shut all
//! of it down cleanly on Ctrl-C or SIGTERM. (A kill -9 is also safe: see
//! `neuroshard_client::store`.)

use crate::network::{self, P2p, P2pConfig};
use anyhow::Context;
use neuroshard_chain_spec::{ChainSpec, ModelDescriptor};
use neuroshard_client::{authoring, ChainInfo, Client, ClientConfig, Store};
use neuroshard_inference::tokenizer::Tokenizer;
use neuroshard_primitives::{crypto, AccountId, Keypair, LayerRange};
use neuroshard_rpc::http::{self, ApiState, Metrics};
use neuroshard_serving::generator::{GeneratorSlot, SharedGenerator};
use neuroshard_serving::local::{fetch_model, LocalWorker};
use neuroshard_serving::miner;
use neuroshard_serving::options::ServingOptions;
use neuroshard_serving::payments::PaymentLedger;
use neuroshard_serving::possession::ModelPossession;
use neuroshard_serving::probe_guard::ForeignProbes;
use neuroshard_serving::server::{ShardServer, ShardService};
use neuroshard_serving::ShardNetwork;
use neuroshard_trainer::board::TrainingBoard;
use neuroshard_trainer::{TrainOptions, TrainingContext};
use neuroshard_verifier::{prober, SpotChecker};
use sp_core::Pair as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// How long a networked node waits for its escrow to be on chain before it takes
/// generations anyway.
const ESCROW_WAIT: std::time::Duration = std::time::Duration::from_secs(60);
use tokio::sync::watch;
use tracing::{info, warn};

/// Everything a node needs to start.
pub struct NodeConfig {
    /// "dev", "local" or a chain spec path.
    pub chain: String,
    pub base_path: PathBuf,
    pub key: Option<Keypair>,
    pub validator: bool,
    pub rpc_port: u16,
    pub api_port: u16,
    /// Address of the HTTP API (loopback unless `api_keys` is given).
    pub api_listen: std::net::IpAddr,
    /// The API keys file (`--api-keys`).
    pub api_keys: Option<PathBuf>,
    /// Layer ranges of the chain's model this node serves (empty: none).
    pub shards: Vec<LayerRange>,
    /// libp2p settings; `None` runs without networking (the single-node `dev` chain).
    pub p2p: Option<P2pConfig>,
    /// The served shard this node trains an adapter for (Proof of Training).
    pub train: Option<TrainOptions>,
    /// How this node sets up the shards it serves (archive budget; faults in test builds).
    pub serving: ServingOptions,
    /// States kept for historical queries (`--state-pruning`; `None`: archive).
    pub state_pruning: Option<neuroshard_primitives::BlockNumber>,
    /// As a validator, answer every assigned spot check with a false `Mismatch`.
    #[cfg(feature = "fault-injection")]
    pub false_mismatch: Option<neuroshard_verifier::FalseMismatch>,
    /// As an author, leave receipt batches out of this node's blocks.
    #[cfg(feature = "fault-injection")]
    pub fault_omit_receipts: Option<neuroshard_client::OmitReceipts>,
}

/// The database file of chain `id` under `base_path`.
pub fn db_path(base_path: &Path, chain_id: &str) -> PathBuf {
    base_path.join("chains").join(chain_id).join("db.redb")
}

/// Loads a chain spec ("dev", "local" or a JSON path).
pub fn load_chain(name_or_path: &str) -> anyhow::Result<ChainSpec> {
    neuroshard_chain_spec::load(name_or_path)
        .with_context(|| format!("loading chain spec {name_or_path:?}"))
}

/// Opens the chain database and the client on it.
fn open_client(spec: &ChainSpec, node: &NodeConfig) -> anyhow::Result<Arc<Client>> {
    let base_path = &node.base_path;
    let chain = ChainInfo {
        name: spec.name.clone(),
        id: spec.id.clone(),
        genesis: spec.genesis.clone(),
    };
    let path = db_path(base_path, &chain.id);
    info!(chain = %chain.name, db = %path.display(), "opening chain database");
    let store = Store::open(&path).with_context(|| format!("opening {}", path.display()))?;
    // A single authority finalizes its own blocks; with several, validators vote.
    let validators = {
        let (state, _) = neuroshard_runtime::Runtime::build_genesis(&chain.genesis)?;
        neuroshard_runtime::Runtime::validators(&state)?.len()
    };
    let config = ClientConfig {
        instant_finality: validators <= 1,
        state_pruning: node.state_pruning,
        #[cfg(feature = "fault-injection")]
        fault_omit_receipts: node.fault_omit_receipts,
        ..ClientConfig::default()
    };
    Ok(Arc::new(Client::open(store, &chain, config)?))
}

/// Runs the node until a shutdown signal.
pub async fn run(config: NodeConfig) -> anyhow::Result<()> {
    let spec = load_chain(&config.chain)?;
    let client = open_client(&spec, &config)?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let shard_service = ShardService::new(&config.serving);
    let p2p = match config.p2p.clone() {
        None => None,
        Some(p2p_config) => Some(
            network::start(
                p2p_config,
                &config.base_path,
                client.clone(),
                config.key.clone(),
                config.validator,
                shard_service.clone(),
                stop_rx.clone(),
            )
            .await?,
        ),
    };
    let net = p2p.as_ref().map(|p: &P2p| p.shards.clone());

    let generator: SharedGenerator =
        Arc::new(tokio::sync::RwLock::new(if config.shards.is_empty() {
            GeneratorSlot::NotServing
        } else {
            GeneratorSlot::Loading
        }));
    let api_keys = config
        .api_keys
        .as_deref()
        .map(neuroshard_rpc::http::ApiKeys::load)
        .transpose()?
        .map(Arc::new);
    if !config.api_listen.is_loopback() && api_keys.is_none() {
        anyhow::bail!(
            "--api-listen {} exposes the HTTP API beyond this machine, and every generation \
             through it is paid from escrow: give --api-keys FILE too",
            config.api_listen
        );
    }
    let admission = config.serving.admission();
    let api_state = ApiState {
        client: client.clone(),
        generator: generator.clone(),
        metrics: Arc::new(Metrics::default()),
        admission: admission.clone(),
        net: net.clone(),
        api_keys,
    };
    let generation = neuroshard_rpc::generate::Generate {
        generator: generator.clone(),
        metrics: api_state.metrics.clone(),
        admission,
    };
    // Adapter snapshots are kept beside the chain database, so versions survive a
    // restart.
    let adapters = db_path(&config.base_path, &spec.id).with_file_name("adapters");
    let board = Arc::new(TrainingBoard::persistent(adapters)?);
    let (addr, rpc_handle) = neuroshard_rpc::start(
        client.clone(),
        net.clone(),
        generation,
        board.clone(),
        config.rpc_port,
    )
    .await?;
    info!("JSON-RPC server listening on {addr} (HTTP and WebSocket)");
    http::serve(
        api_state,
        config.api_listen,
        config.api_port,
        stop_rx.clone(),
    )
    .await?;

    let serve_task = match (&config.key, config.shards.is_empty()) {
        (_, true) => None,
        (Some(key), false) => Some(tokio::spawn(serve(
            Serving {
                chain: client.clone(),
                key: key.clone(),
                model: spec.model.clone(),
                shards: config.shards.clone(),
                train: config.train.clone(),
                serving: config.serving.clone(),
                net,
                service: shard_service,
                generator,
                board,
                #[cfg(feature = "fault-injection")]
                false_mismatch: config.false_mismatch,
            },
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

/// What a serving node runs on.
struct Serving {
    chain: Arc<Client>,
    key: Keypair,
    model: ModelDescriptor,
    shards: Vec<LayerRange>,
    /// The shard this node trains an adapter for (Proof of Training), if any.
    train: Option<TrainOptions>,
    serving: ServingOptions,
    net: Option<ShardNetwork>,
    service: ShardService,
    generator: SharedGenerator,
    board: Arc<TrainingBoard>,
    #[cfg(feature = "fault-injection")]
    false_mismatch: Option<neuroshard_verifier::FalseMismatch>,
}

/// Brings this node's shards up and keeps it mining: fetches and verifies the model,
/// hashes its chunk tree (the proof of possession), loads the shards, hands the API its
/// generator, registers as a worker (and keeps it registered, and the material of its
/// receipts on chain pinned) and locks escrow when needed, serves the shards to
/// peers, then runs Proof of Training (serving the chain's adapter versions; training
/// one with `train`), the spot checker, the liveness prober and the heartbeat miner
/// until shutdown. Failures are logged: the chain keeps running without serving.
async fn serve(s: Serving, shutdown: watch::Receiver<bool>) {
    let loading = {
        let (chain, key, model) = (s.chain.clone(), s.key.clone(), s.model.clone());
        let (shards, serving) = (s.shards.clone(), s.serving.clone());
        let directory = s.net.as_ref().map(|n| n.directory.clone());
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            load_model(&chain, key, &model, &shards, &serving, directory, runtime)
        })
    };
    let loaded = match loading.await {
        Ok(Ok(loaded)) => Ok(loaded),
        Ok(Err(e)) => Err(format!("{e:#}")),
        Err(e) => Err(format!("model loading panicked: {e}")),
    };
    let (possession, local) = match loaded {
        Ok(loaded) => loaded,
        Err(why) => {
            tracing::error!(error = %why, "cannot serve the model; the node runs without serving");
            *s.generator.write().await = GeneratorSlot::Failed(why);
            return;
        }
    };
    if let Err(e) = local.ensure_registered(&s.shards) {
        warn!(error = %format!("{e:#}"), "not registered as a worker: no rewards for this node's work");
    }
    tokio::spawn(
        local
            .clone()
            .keep_registered(s.shards.clone(), shutdown.clone()),
    );
    tokio::spawn(neuroshard_serving::material::keep_material(
        s.chain.clone(),
        local.shards(),
        local.account(),
        shutdown.clone(),
    ));
    let escrow = local.ensure_escrow();
    if let Err(e) = &escrow {
        warn!(error = %format!("{e:#}"), "no escrow: API generations cannot be billed");
    }
    if let Some(net) = &s.net {
        let ledger = Arc::new(PaymentLedger::new(
            local.account(),
            s.model.blake2_256,
            s.chain.clone(),
        ));
        tokio::spawn(neuroshard_serving::payments::claim_unsubmitted(
            s.chain.clone(),
            s.key.clone(),
            ledger.clone(),
            shutdown.clone(),
        ));
        let mut server = ShardServer::new(local.shards(), s.key.clone(), s.board.clone())
            .with_payments(ledger)
            .with_probe_pace(s.serving.probe_pace());
        if s.serving.refuses_foreign_probes() {
            let guard = ForeignProbes::new(s.chain.clone(), local.account());
            server = server.with_probe_guard(Arc::new(guard));
        }
        let server = Arc::new(server);
        s.service.serve(server.clone());
        s.service.attach_network(net);
        let binding = net.directory.binding(&s.key);
        let (binding, shards) = s.serving.announced(binding, s.shards.clone());
        tokio::spawn(net.directory.clone().announce_loop(
            binding,
            shards,
            move || server.stats(),
            shutdown.clone(),
        ));
        info!("serving shards to the network");
    }
    let networked = s.net.is_some();
    let training = TrainingContext {
        chain: s.chain.clone(),
        key: s.key.clone(),
        model: s.model.blake2_256,
        base: local.base_weights().clone(),
        board: s.board,
        net: s.net,
    };
    tokio::spawn(neuroshard_trainer::follow_adapters(
        training.clone(),
        local.shards(),
        shutdown.clone(),
    ));
    let tokenizer = || Tokenizer::from_gguf_file(possession.path());
    match tokenizer() {
        // Verifies the training rounds the chain draws this node's account for.
        Ok(t) => drop(tokio::spawn(neuroshard_trainer::verify_rounds(
            training.clone(),
            t,
            shutdown.clone(),
        ))),
        Err(e) => warn!(error = %e, "cannot verify training: no tokenizer"),
    }
    if let Some(train) = s.train {
        match tokenizer() {
            Ok(tokenizer) => {
                tokio::spawn(neuroshard_trainer::run_holder(
                    training.clone(),
                    tokenizer,
                    train,
                    shutdown.clone(),
                ));
            }
            Err(e) => warn!(error = %e, "cannot train: no tokenizer"),
        }
    }
    #[allow(unused_mut)]
    let mut checker = SpotChecker::new(training, local.shards());
    #[cfg(feature = "fault-injection")]
    {
        checker.false_mismatch = s.false_mismatch;
    }
    let checker = Arc::new(checker);
    tokio::spawn(prober::run(checker.clone(), shutdown.clone()));
    tokio::spawn(checker.run(shutdown.clone()));
    // Other nodes' providers serve no client whose escrow cannot pay (a node without
    // networking has only its own shards).
    if networked && escrow.is_ok() && !local.wait_escrow(ESCROW_WAIT).await {
        warn!("this node's escrow is not on chain yet: other nodes' providers will refuse its generations until it is");
    }
    *s.generator.write().await = GeneratorSlot::Ready(local);
    info!("model loaded: HTTP API generations enabled, miner, spot checker and liveness prober started");
    miner::run(s.chain, s.key, possession, shutdown).await;
}

/// Fetches and verifies the model, opens its chunk tree and loads this node's shards
/// (blocking).
fn load_model(
    chain: &Arc<Client>,
    key: Keypair,
    model: &ModelDescriptor,
    shards: &[LayerRange],
    serving: &ServingOptions,
    directory: Option<Arc<neuroshard_serving::ShardDirectory>>,
    runtime: tokio::runtime::Handle,
) -> anyhow::Result<(Arc<ModelPossession>, Arc<LocalWorker>)> {
    let params = chain.params()?.ponw.model;
    anyhow::ensure!(
        params.hash == model.blake2_256,
        "the chain spec's model descriptor does not match the chain's model hash"
    );
    let path = fetch_model(model, &neuroshard_inference::fetch::default_cache_dir())?;
    info!(path = %path.display(), "model verified; hashing the served layers' chunk trees");
    let possession = ModelPossession::open(&path, params.chunk_size, &params.layer_chunks, shards)?;
    info!(shards = ?shards.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "loading shards");
    let local = LocalWorker::load(
        &path,
        model.blake2_256,
        shards,
        serving,
        key,
        chain.clone(),
        directory,
        runtime,
    )?;
    Ok((Arc::new(possession), Arc::new(local)))
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
