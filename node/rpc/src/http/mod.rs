//! The HTTP API on 127.0.0.1:8080 by default (axum): the OpenAI-compatible inference endpoints
//! (`/v1/models`, `/v1/completions`, `/v1/chat/completions`, with server-sent events
//! when `stream: true`), Prometheus metrics at `/metrics`, and the explorer page at `/`
//! with the JSON it polls (`/api/overview`).
//!
//! Text generation is behind the serving side's `TextGenerator` trait, so the API does
//! not care whether the model runs in this process or along a pipeline of peers.
//! Generations are billed to the node's key, or with `--api-keys` to each key's
//! account ([`ApiKeys`]).

mod api_keys;
mod explorer;
mod metrics;
mod openai;

pub use api_keys::ApiKeys;
pub use metrics::Metrics;

use axum::routing::{get, post};
use axum::Router;
use neuroshard_client::Client;
use neuroshard_serving::generator::SharedGenerator;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tracing::info;

/// Shared state of the API handlers.
#[derive(Clone)]
pub struct ApiState {
    pub client: Arc<Client>,
    pub generator: SharedGenerator,
    pub metrics: Arc<Metrics>,
    /// Shared with the `neuroshard_generate` RPC: how many generations run at once.
    pub admission: neuroshard_serving::admission::GenerationAdmission,
    /// The node's networking, for the explorer's peer list (None without networking).
    pub net: Option<neuroshard_serving::ShardNetwork>,
    /// With keys, every `/v1/` request needs one and is billed to its account.
    pub api_keys: Option<Arc<ApiKeys>>,
}

/// The router with every endpoint.
pub fn router(state: ApiState) -> Router {
    let inference = Router::new()
        .route("/v1/models", get(openai::models))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/chat/completions", post(openai::chat_completions))
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            api_keys::require_key,
        ));
    Router::new()
        .route("/", get(explorer::page))
        .route("/api/overview", get(explorer::overview))
        .route("/metrics", get(metrics::render))
        .merge(inference)
        .fallback(openai::not_found)
        .method_not_allowed_fallback(openai::method_not_allowed)
        .with_state(state)
}

/// Serves the API on `ip`:`port` until `shutdown`; returns the bound address.
pub async fn serve(
    state: ApiState,
    ip: std::net::IpAddr,
    port: u16,
    mut shutdown: watch::Receiver<bool>,
) -> anyhow::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind((ip, port)).await?;
    let addr = listener.local_addr()?;
    info!("HTTP API listening on {addr} (OpenAI-compatible inference, explorer, metrics)");
    metrics::spawn_chain_watcher(
        state.client.clone(),
        state.metrics.clone(),
        shutdown.clone(),
    );
    let app = router(state);
    tokio::spawn(async move {
        let graceful = async move {
            let _ = shutdown.changed().await;
        };
        if let Err(e) = axum::serve(listener, app)
            .with_graceful_shutdown(graceful)
            .await
        {
            tracing::error!(error = %e, "HTTP API stopped");
        }
    });
    Ok(addr)
}
