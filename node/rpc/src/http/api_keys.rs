//! API keys for the HTTP API. Every generation through the API is billed to an
//! account: by default the node's own key (its escrow pays), so the API listens on
//! 127.0.0.1 only. An operator who exposes it (`--api-listen`) must give `--api-keys
//! FILE`: each line maps a key to the secret URI of the account that pays for that
//! key's generations (`KEY URI`, `#` comments). Then every `/v1/` request needs
//! `Authorization: Bearer KEY` (401 without one), and its receipts are counter-signed
//! by the key's account, from whose escrow they are paid.

use super::openai::ApiError;
use super::ApiState;
use anyhow::{bail, Context};
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use neuroshard_primitives::{blake2_256, crypto, Hash};
use neuroshard_serving::generator::Payer;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

/// Shortest key accepted (a guessable key would let anyone spend the account's escrow).
pub const MIN_KEY_LEN: usize = 24;

/// The keys and who pays for each (keys are held only as hashes).
#[derive(Debug, Default)]
pub struct ApiKeys {
    payers: HashMap<Hash, Payer>,
}

impl ApiKeys {
    /// Reads `KEY URI` lines from `path`; a malformed line, a short or repeated key or
    /// a bad secret URI is an error naming the line.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading API keys from {}", path.display()))?;
        let mut payers = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = || format!("{} line {}", path.display(), n + 1);
            let Some((key, uri)) = line.split_once(char::is_whitespace) else {
                bail!("{}: expected `KEY SECRET_URI`", at());
            };
            if key.len() < MIN_KEY_LEN {
                bail!("{}: keys must have at least {MIN_KEY_LEN} characters", at());
            }
            let pair = crypto::keypair_from_uri(uri.trim())
                .map_err(|e| anyhow::anyhow!("{}: bad secret URI: {e}", at()))?;
            if payers
                .insert(blake2_256(key.as_bytes()), Payer(Arc::new(pair)))
                .is_some()
            {
                bail!("{}: the key appears twice", at());
            }
        }
        if payers.is_empty() {
            bail!("{} holds no API keys", path.display());
        }
        Ok(Self { payers })
    }

    /// Who pays for `key`'s generations, if it is a key.
    pub fn payer(&self, key: &str) -> Option<&Payer> {
        self.payers.get(&blake2_256(key.as_bytes()))
    }
}

/// Middleware of the `/v1/` routes: with keys configured, a request must carry one
/// (`Authorization: Bearer KEY`); its payer goes into the request's extensions.
pub async fn require_key(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let Some(keys) = &state.api_keys else {
        return next.run(req).await;
    };
    let key = req
        .headers()
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match key.and_then(|k| keys.payer(k)) {
        Some(payer) => {
            let payer = payer.clone();
            req.extensions_mut().insert(payer);
            next.run(req).await
        }
        None => ApiError::unauthorized(if key.is_some() {
            "invalid API key"
        } else {
            "this node requires an API key: send `Authorization: Bearer KEY`"
        })
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> anyhow::Result<ApiKeys> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys");
        std::fs::write(&path, text).unwrap();
        ApiKeys::load(&path)
    }

    #[test]
    fn keys_map_to_their_payers_and_bad_files_are_refused() {
        let keys = load("# team keys\nsk-aaaaaaaaaaaaaaaaaaaaaaaa //Bob\n\nsk-bbbbbbbbbbbbbbbbbbbbbbbb  //Charlie\n").unwrap();
        let bob = crypto::keypair_from_uri("//Bob").unwrap();
        assert_eq!(
            keys.payer("sk-aaaaaaaaaaaaaaaaaaaaaaaa").unwrap().account(),
            sp_core::Pair::public(&bob).into()
        );
        assert!(keys.payer("sk-aaaaaaaaaaaaaaaaaaaaaaab").is_none());
        for (bad, why) in [
            ("sk-short //Bob\n", "at least"),
            ("sk-aaaaaaaaaaaaaaaaaaaaaaaa\n", "expected"),
            (
                "sk-aaaaaaaaaaaaaaaaaaaaaaaa not a uri at all\n",
                "bad secret URI",
            ),
            (
                "sk-aaaaaaaaaaaaaaaaaaaaaaaa //Bob\nsk-aaaaaaaaaaaaaaaaaaaaaaaa //Eve\n",
                "twice",
            ),
            ("# nothing\n", "no API keys"),
        ] {
            let err = format!("{:#}", load(bad).unwrap_err());
            assert!(err.contains(why), "{bad:?}: {err}");
        }
    }
}
