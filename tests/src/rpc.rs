//! A deliberately small, blocking JSON-RPC-over-HTTP client on `std::net`, so tests can
//! also send bytes no well-behaved client would (malformed JSON, wrong types).

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

/// A JSON-RPC error response.
#[derive(Clone, Debug, PartialEq)]
pub struct RpcError {
    pub code: i64,
    pub message: String,
    pub data: Option<Value>,
}

impl std::fmt::Display for RpcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "JSON-RPC error {}: {}", self.code, self.message)?;
        if let Some(data) = &self.data {
            write!(f, " ({data})")?;
        }
        Ok(())
    }
}

/// Talks to one node's RPC port.
#[derive(Clone, Debug)]
pub struct RpcClient {
    port: u16,
}

impl RpcClient {
    pub fn new(port: u16) -> Self {
        Self { port }
    }

    /// POSTs raw `body` and returns the HTTP status and response body.
    pub fn post_raw(&self, body: &str) -> anyhow::Result<(u16, String)> {
        let response = crate::http::request(self.port, "POST", "/", Some(body))?;
        Ok((response.status, response.body))
    }

    /// Calls `method`; `Ok(Err(..))` is a JSON-RPC error response.
    pub fn try_call(&self, method: &str, params: Value) -> anyhow::Result<Result<Value, RpcError>> {
        let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
        let (_, text) = self.post_raw(&body.to_string())?;
        parse_response(&text)
    }

    /// Calls `method` and fails on a JSON-RPC error.
    pub fn call(&self, method: &str, params: Value) -> anyhow::Result<Value> {
        self.try_call(method, params)?
            .map_err(|e| anyhow!("{method}: {e}"))
    }

    /// The best block number.
    pub fn best_number(&self) -> anyhow::Result<u64> {
        let header = self.call("chain_getHeader", json!([]))?;
        hex_number(&header["number"])
    }

    /// The events (`neuroshard_events`) of blocks `*next..=best`, oldest first; advances
    /// `*next` past them, so polling in a loop sees every event once.
    pub fn new_events(&self, next: &mut u64) -> anyhow::Result<Vec<Value>> {
        let best = self.best_number()?;
        let mut out = Vec::new();
        while *next <= best {
            let events = self.call("neuroshard_events", json!([*next]))?;
            out.extend(events.as_array().cloned().unwrap_or_default());
            *next += 1;
        }
        Ok(out)
    }

    /// The finalized head: its hash (0x hex) and number.
    pub fn finalized_head(&self) -> anyhow::Result<(String, u64)> {
        let hash = self.call("chain_getFinalizedHead", json!([]))?;
        let header = self.call("chain_getHeader", json!([hash]))?;
        let hash = hash
            .as_str()
            .ok_or_else(|| anyhow!("chain_getFinalizedHead gave {hash}"))?
            .to_string();
        Ok((hash, hex_number(&header["number"])?))
    }

    /// `neuroshard_account(address)` as (free, reserved, bonded, nonce).
    pub fn account(&self, address: &str) -> anyhow::Result<(u128, u128, u128, u64)> {
        let v = self.call("neuroshard_account", json!([address]))?;
        let units = |k: &str| -> anyhow::Result<u128> {
            v[k].as_str()
                .and_then(|s| s.parse().ok())
                .ok_or_else(|| anyhow!("bad {k} in {v}"))
        };
        let nonce = v["nonce"]
            .as_u64()
            .ok_or_else(|| anyhow!("bad nonce in {v}"))?;
        Ok((units("free")?, units("reserved")?, units("bonded")?, nonce))
    }
}

/// Parses a JSON-RPC response body.
pub fn parse_response(text: &str) -> anyhow::Result<Result<Value, RpcError>> {
    let v: Value =
        serde_json::from_str(text).with_context(|| format!("response is not JSON: {text:?}"))?;
    if let Some(e) = v.get("error") {
        return Ok(Err(RpcError {
            code: e["code"].as_i64().unwrap_or(0),
            message: e["message"].as_str().unwrap_or_default().to_string(),
            data: e.get("data").cloned(),
        }));
    }
    match v.get("result") {
        Some(result) => Ok(Ok(result.clone())),
        None => bail!("response has neither result nor error: {text}"),
    }
}

/// Reads a hex-string block number ("0x1a").
pub fn hex_number(v: &Value) -> anyhow::Result<u64> {
    let s = v
        .as_str()
        .ok_or_else(|| anyhow!("number is not a string: {v}"))?;
    u64::from_str_radix(s.trim_start_matches("0x"), 16).with_context(|| format!("bad number {s:?}"))
}
