//! The node's user-facing interfaces and the wallet side of them:
//!
//! - the JSON-RPC server (jsonrpsee): HTTP and WebSocket on one port, 127.0.0.1 only;
//!   each namespace lives in its own module and is merged into one [`RpcModule`] here;
//! - [`http`]: the OpenAI-compatible HTTP API, Prometheus metrics and the explorer;
//! - [`remote`]: a typed JSON-RPC client for the wallet commands, and [`light`]: checking
//!   a node's answers against headers like a light client.

pub mod author;
pub mod chain;
pub mod error;
pub mod events;
pub mod generate;
pub mod http;
pub mod light;
pub mod neuroshard;
pub mod payment;
pub mod remote;
pub mod runtime_calls;
pub mod shards;
pub mod state;
pub mod system;
pub mod training;
pub mod types;
pub mod watch;

use jsonrpsee::server::{Server, ServerConfig, ServerHandle};
use jsonrpsee::RpcModule;
use neuroshard_client::Client;
use neuroshard_serving::ShardNetwork;
use neuroshard_trainer::board::TrainingBoard;
use std::net::SocketAddr;
use std::sync::Arc;

use author::AuthorApiServer;
use chain::ChainApiServer;
use generate::GenerateApiServer;
use neuroshard::NeuroshardApiServer;
use payment::PaymentApiServer;
use shards::ShardsApiServer;
use state::StateApiServer;
use system::SystemApiServer;
use training::TrainingApiServer;

/// Largest request or response body: a maximal extrinsic (a big receipt batch) or a
/// full block, hex-encoded, fits.
const MAX_BODY_BYTES: u32 = 64 << 20;

/// Every RPC method of the node; `generation` serves `neuroshard_generate`, `training`
/// the node's side of `neuroshard_training`.
pub fn module(
    client: Arc<Client>,
    net: Option<ShardNetwork>,
    generation: generate::Generate,
    training: Arc<TrainingBoard>,
) -> anyhow::Result<RpcModule<()>> {
    let mut module = RpcModule::new(());
    module.merge(
        system::System {
            client: client.clone(),
            net: net.clone(),
        }
        .into_rpc(),
    )?;
    module.merge(
        chain::Chain {
            client: client.clone(),
        }
        .into_rpc(),
    )?;
    module.merge(
        state::State {
            client: client.clone(),
        }
        .into_rpc(),
    )?;
    module.merge(
        author::Author {
            client: client.clone(),
        }
        .into_rpc(),
    )?;
    module.merge(
        payment::Payment {
            client: client.clone(),
        }
        .into_rpc(),
    )?;
    module.merge(
        shards::Shards {
            client: client.clone(),
            net,
        }
        .into_rpc(),
    )?;
    module.merge(
        training::Training {
            client: client.clone(),
            board: training,
        }
        .into_rpc(),
    )?;
    module.merge(neuroshard::Neuroshard { client }.into_rpc())?;
    module.merge(generation.into_rpc())?;
    let mut names: Vec<&str> = module.method_names().collect();
    names.sort_unstable();
    let names: Vec<String> = names.into_iter().map(str::to_string).collect();
    module.register_method(
        "rpc_methods",
        move |_, _, _| serde_json::json!({ "methods": names }),
    )?;
    Ok(module)
}

/// Starts the server on `127.0.0.1:port` (0 picks a free port); returns the bound
/// address and the handle that stops it.
pub async fn start(
    client: Arc<Client>,
    net: Option<ShardNetwork>,
    generation: generate::Generate,
    training: Arc<TrainingBoard>,
    port: u16,
) -> anyhow::Result<(SocketAddr, ServerHandle)> {
    let config = ServerConfig::builder()
        .max_request_body_size(MAX_BODY_BYTES)
        .max_response_body_size(MAX_BODY_BYTES)
        .build();
    let server = Server::builder()
        .set_config(config)
        .build(SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen for RPC on 127.0.0.1:{port}: {e}"))?;
    let addr = server.local_addr()?;
    let handle = server.start(module(client, net, generation, training)?);
    Ok((addr, handle))
}
