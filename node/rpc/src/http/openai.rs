//! OpenAI-compatible endpoints. Requests are parsed by hand from the body so that every
//! mistake (bad JSON, a wrong type, a missing field, a value out of range) gets an
//! OpenAI-style JSON error (`{"error": {"message", "type", "param", "code"}}`) that says
//! exactly what is wrong. Generation runs on a blocking thread; with `stream: true` its
//! text is forwarded as server-sent events as it is produced.

use super::ApiState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{Method, StatusCode, Uri};
use axum::response::sse::{Event as SseEvent, Sse};
use axum::response::{IntoResponse, Response};
use axum::Extension;
use axum::Json;
use futures::StreamExt;
use neuroshard_serving::admission::{Demand, Refusal};
use neuroshard_serving::generator::{
    ChatMessage, GenerationOutput, GenerationRequest, Payer, PayerCannotPay, TextGenerator,
    MAX_TOKENS_LIMIT,
};
use serde_json::{json, Value};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;

const DEFAULT_MAX_TOKENS: u32 = 128;

/// An OpenAI-style error response.
pub struct ApiError {
    status: StatusCode,
    message: String,
    kind: &'static str,
    param: Option<&'static str>,
    /// Seconds for a `Retry-After` header (refusals by admission control).
    retry_after: Option<u64>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>, param: Option<&'static str>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            kind: "invalid_request_error",
            param,
            retry_after: None,
        }
    }

    fn unavailable(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: message.into(),
            kind: "service_unavailable",
            param: None,
            retry_after: None,
        }
    }

    /// 401: no API key, or not one of this node's.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::UNAUTHORIZED,
            message: message.into(),
            kind: "invalid_api_key",
            param: None,
            retry_after: None,
        }
    }

    /// 402: the key's account cannot pay for the generation.
    fn payment_required(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::PAYMENT_REQUIRED,
            message: message.into(),
            kind: "insufficient_quota",
            param: None,
            retry_after: None,
        }
    }

    /// 503 with `Retry-After` when all the node's generation slots or its KV budget are
    /// taken; 429 with `Retry-After` (from its token bucket for the rate) when the API
    /// key runs its share of the slots or used its tokens per minute.
    fn refused(why: Refusal) -> Self {
        let (status, kind) = if why.is_client_limit() {
            (StatusCode::TOO_MANY_REQUESTS, "rate_limit_exceeded")
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, "server_busy")
        };
        Self {
            status,
            message: why.to_string(),
            kind,
            param: None,
            retry_after: Some(why.retry_after()),
        }
    }

    fn internal(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: message.into(),
            kind: "server_error",
            param: None,
            retry_after: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({"error": {"message": self.message, "type": self.kind, "param": self.param, "code": null}});
        let mut response = (self.status, Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, seconds.into());
        }
        response
    }
}

/// 405 for a known path with the wrong method, as JSON.
pub async fn method_not_allowed(method: Method, uri: Uri) -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        message: format!("{method} is not allowed on {}; see docs/API.md", uri.path()),
        kind: "invalid_request_error",
        param: None,
        retry_after: None,
    }
}

/// 404 for unknown paths, as JSON.
pub async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        message: "unknown endpoint; see docs/API.md".into(),
        kind: "invalid_request_error",
        param: None,
        retry_after: None,
    }
}

async fn generator(state: &ApiState) -> Result<Arc<dyn TextGenerator>, ApiError> {
    state
        .generator
        .read()
        .await
        .ready()
        .map_err(ApiError::unavailable)
}

/// `GET /v1/models`.
pub async fn models(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let gen = generator(&state).await?;
    Ok(Json(json!({
        "object": "list",
        "data": [{"id": gen.model_id(), "object": "model", "created": 0, "owned_by": "neuroshard"}]
    })))
}

/// Fields shared by both endpoints.
struct Common {
    max_tokens: u32,
    temperature: f32,
    seed: u64,
    stop: Vec<String>,
    stream: bool,
    include_usage: bool,
}

/// A request body, or why it could not be read (e.g. larger than axum's 2 MiB limit).
type Body = Result<Bytes, BytesRejection>;

fn parse_body(body: Body) -> Result<serde_json::Map<String, Value>, ApiError> {
    let body = body.map_err(|rejection| ApiError {
        status: rejection.status(),
        message: format!("cannot read the request body: {}", rejection.body_text()),
        kind: "invalid_request_error",
        param: None,
        retry_after: None,
    })?;
    match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::invalid(
            "request body must be a JSON object",
            None,
        )),
        Err(e) => Err(ApiError::invalid(
            format!("request body is not valid JSON: {e}"),
            None,
        )),
    }
}

fn parse_common(body: &serde_json::Map<String, Value>) -> Result<Common, ApiError> {
    let max_tokens = match body
        .get("max_completion_tokens")
        .or_else(|| body.get("max_tokens"))
    {
        None | Some(Value::Null) => DEFAULT_MAX_TOKENS,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 && n <= u64::from(MAX_TOKENS_LIMIT) => n as u32,
            _ => {
                return Err(ApiError::invalid(
                    format!("max_tokens must be an integer from 1 to {MAX_TOKENS_LIMIT}, got {v}"),
                    Some("max_tokens"),
                ))
            }
        },
    };
    let temperature = match body.get("temperature") {
        None | Some(Value::Null) => 1.0,
        Some(v) => match v.as_f64() {
            Some(t) if (0.0..=2.0).contains(&t) => t as f32,
            _ => {
                return Err(ApiError::invalid(
                    format!("temperature must be a number from 0 to 2, got {v}"),
                    Some("temperature"),
                ))
            }
        },
    };
    let seed = match body.get("seed") {
        None | Some(Value::Null) => rand::random(),
        Some(v) => v
            .as_u64()
            .or_else(|| v.as_i64().map(|i| i as u64))
            .ok_or_else(|| {
                ApiError::invalid(format!("seed must be an integer, got {v}"), Some("seed"))
            })?,
    };
    let stop = match body.get("stop") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.len() <= 4 => items
            .iter()
            .map(|i| i.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                ApiError::invalid("stop must be a string or up to 4 strings", Some("stop"))
            })?,
        Some(_) => {
            return Err(ApiError::invalid(
                "stop must be a string or up to 4 strings",
                Some("stop"),
            ))
        }
    };
    let stream = match body.get("stream") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(v) => {
            return Err(ApiError::invalid(
                format!("stream must be a boolean, got {v}"),
                Some("stream"),
            ))
        }
    };
    match body.get("n") {
        None | Some(Value::Null) => {}
        Some(v) if v.as_u64() == Some(1) => {}
        Some(v) => {
            return Err(ApiError::invalid(
                format!("n must be 1 (one choice per request), got {v}"),
                Some("n"),
            ))
        }
    }
    let include_usage = body
        .get("stream_options")
        .and_then(|o| o.get("include_usage"))
        .and_then(Value::as_bool)
        .unwrap_or(false);
    Ok(Common {
        max_tokens,
        temperature,
        seed,
        stop,
        stream,
        include_usage,
    })
}

fn check_model(
    body: &serde_json::Map<String, Value>,
    gen: &dyn TextGenerator,
) -> Result<String, ApiError> {
    let id = gen.model_id();
    match body.get("model") {
        None | Some(Value::Null) => Ok(id),
        Some(Value::String(m)) if *m == id => Ok(id),
        Some(v) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!(
                "model {v} is not served here; this node serves {id:?} (see /v1/models)"
            ),
            kind: "invalid_request_error",
            param: Some("model"),
            retry_after: None,
        }),
    }
}

/// `POST /v1/completions`.
pub async fn completions(
    State(state): State<ApiState>,
    payer: Option<Extension<Payer>>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = parse_body(body)?;
    let gen = generator(&state).await?;
    let model = check_model(&body, gen.as_ref())?;
    let prompt = match body.get("prompt") {
        Some(Value::String(p)) => p.clone(),
        Some(Value::Array(items)) if items.len() == 1 && items[0].is_string() => {
            items[0].as_str().unwrap_or_default().to_string()
        }
        _ => {
            return Err(ApiError::invalid(
                "prompt must be a string (or an array holding one string)",
                Some("prompt"),
            ))
        }
    };
    let common = parse_common(&body)?;
    let payer = payer.map(|Extension(p)| p);
    run(state, gen, model, prompt, common, payer, Kind::Completion).await
}

/// `POST /v1/chat/completions`.
pub async fn chat_completions(
    State(state): State<ApiState>,
    payer: Option<Extension<Payer>>,
    body: Body,
) -> Result<Response, ApiError> {
    let body = parse_body(body)?;
    let gen = generator(&state).await?;
    let model = check_model(&body, gen.as_ref())?;
    let messages = parse_messages(body.get("messages"))?;
    let prompt = gen
        .render_chat(&messages)
        .map_err(|e| ApiError::invalid(e.to_string(), Some("messages")))?;
    let common = parse_common(&body)?;
    let payer = payer.map(|Extension(p)| p);
    run(state, gen, model, prompt, common, payer, Kind::Chat).await
}

/// The chat messages of a request. `content` is a string or an array of text parts
/// (`[{"type": "text", "text": ...}]`, as the official clients send it); `developer`
/// is the newer name of `system`; an assistant turn may have `null` content.
fn parse_messages(messages: Option<&Value>) -> Result<Vec<ChatMessage>, ApiError> {
    let invalid = |message: String| ApiError::invalid(message, Some("messages"));
    let items = match messages {
        Some(Value::Array(items)) if !items.is_empty() => items,
        _ => return Err(invalid("messages must be a non-empty array".into())),
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| {
            let role = match item.get("role").and_then(Value::as_str) {
                Some("developer") => "system",
                Some(role @ ("system" | "user" | "assistant")) => role,
                Some(other) => {
                    return Err(invalid(format!(
                        "messages[{i}].role {other:?} is not supported; use system, user or assistant"
                    )))
                }
                None => return Err(invalid(format!("messages[{i}].role must be a string"))),
            };
            let content = match item.get("content") {
                Some(Value::String(text)) => text.clone(),
                Some(Value::Null) | None if role == "assistant" => String::new(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|part| match (part.get("type"), part.get("text")) {
                        (Some(Value::String(kind)), Some(Value::String(text))) if kind == "text" => {
                            Ok(text.as_str())
                        }
                        _ => Err(invalid(format!(
                            "messages[{i}].content parts must be {{\"type\": \"text\", \"text\": ...}}; \
                             this model reads text only"
                        ))),
                    })
                    .collect::<Result<String, _>>()?,
                _ => {
                    return Err(invalid(format!(
                        "messages[{i}].content must be a string or an array of text parts"
                    )))
                }
            };
            Ok(ChatMessage {
                role: role.to_string(),
                content,
            })
        })
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Completion,
    Chat,
}

enum Piece {
    Text(String),
    Done(Result<GenerationOutput, String>),
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn usage_json(out: &GenerationOutput) -> Value {
    json!({
        "prompt_tokens": out.prompt_tokens,
        "completion_tokens": out.completion_tokens,
        "total_tokens": out.prompt_tokens + out.completion_tokens,
    })
}

async fn run(
    state: ApiState,
    gen: Arc<dyn TextGenerator>,
    model: String,
    prompt: String,
    common: Common,
    payer: Option<Payer>,
    kind: Kind,
) -> Result<Response, ApiError> {
    let request = GenerationRequest {
        prompt,
        max_tokens: common.max_tokens,
        temperature: common.temperature,
        seed: common.seed,
        stop: common.stop,
        speculative: true,
        payer,
    };
    if let Some(payer) = &request.payer {
        gen.check_payer(payer, &request.prompt, request.max_tokens)
            .map_err(|e| match e.downcast_ref::<PayerCannotPay>() {
                Some(why) => ApiError::payment_required(why.to_string()),
                None => ApiError::internal(format!("{e:#}")),
            })?;
    }
    let id = format!(
        "{}-{:016x}",
        if kind == Kind::Chat {
            "chatcmpl"
        } else {
            "cmpl"
        },
        rand::random::<u64>()
    );
    let created = now_secs();
    let (tx, rx) = mpsc::unbounded_channel::<Piece>();
    let metrics = state.metrics.clone();
    let streaming = common.stream;
    let client = request.payer.as_ref().map(Payer::account);
    let tokens = gen
        .prompt_tokens(&request.prompt)
        .map_err(|e| ApiError::invalid(format!("{e:#}"), Some("prompt")))?
        .saturating_add(u64::from(request.max_tokens));
    let demand = Demand {
        tokens,
        kv_bytes: tokens.saturating_mul(gen.kv_bytes_per_position()),
    };
    let mut permit = state
        .admission
        .try_admit(client.as_ref(), demand)
        .map_err(|why| {
            state.metrics.record_refused();
            ApiError::refused(why)
        })?;
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let text_tx = tx.clone();
        let result = gen.generate(&request, &mut |piece| {
            !streaming || text_tx.send(Piece::Text(piece.to_string())).is_ok()
        });
        if let Ok(out) = &result {
            permit.settle(u64::from(out.prompt_tokens) + u64::from(out.completion_tokens));
            metrics.record_generation(out.completion_tokens, started.elapsed());
        }
        drop(permit);
        let _ = tx.send(Piece::Done(result.map_err(|e| format!("{e:#}"))));
    });

    if !common.stream {
        let mut rx = rx;
        let out = loop {
            match rx.recv().await {
                Some(Piece::Done(result)) => break result.map_err(ApiError::internal)?,
                Some(Piece::Text(_)) => {}
                None => return Err(ApiError::internal("generation thread ended unexpectedly")),
            }
        };
        let choice = match kind {
            Kind::Chat => {
                json!({"index": 0, "message": {"role": "assistant", "content": out.text}, "logprobs": null, "finish_reason": out.finish_reason.as_str()})
            }
            Kind::Completion => {
                json!({"index": 0, "text": out.text, "logprobs": null, "finish_reason": out.finish_reason.as_str()})
            }
        };
        let object = if kind == Kind::Chat {
            "chat.completion"
        } else {
            "text_completion"
        };
        return Ok(Json(json!({
            "id": id, "object": object, "created": created, "model": model,
            "choices": [choice], "usage": usage_json(&out),
        }))
        .into_response());
    }

    let object = if kind == Kind::Chat {
        "chat.completion.chunk"
    } else {
        "text_completion"
    };
    let chunk = move |choice: Value, usage: Option<Value>| {
        let mut body = json!({"id": id, "object": object, "created": created, "model": model, "choices": choice});
        if let Some(usage) = usage {
            body["usage"] = usage;
        }
        SseEvent::default().data(body.to_string())
    };
    let first = (kind == Kind::Chat).then(|| {
        chunk(
            json!([{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": null}]),
            None,
        )
    });
    let include_usage = common.include_usage;
    let stream = UnboundedReceiverStream::new(rx).flat_map(move |piece| {
        let events: Vec<SseEvent> = match piece {
            Piece::Text(text) => {
                let choice = match kind {
                    Kind::Chat => json!([{"index": 0, "delta": {"content": text}, "finish_reason": null}]),
                    Kind::Completion => json!([{"index": 0, "text": text, "finish_reason": null}]),
                };
                vec![chunk(choice, None)]
            }
            Piece::Done(Ok(out)) => {
                let choice = match kind {
                    Kind::Chat => json!([{"index": 0, "delta": {}, "finish_reason": out.finish_reason.as_str()}]),
                    Kind::Completion => json!([{"index": 0, "text": "", "finish_reason": out.finish_reason.as_str()}]),
                };
                let mut events = vec![chunk(choice, None)];
                if include_usage {
                    events.push(chunk(json!([]), Some(usage_json(&out))));
                }
                events.push(SseEvent::default().data("[DONE]"));
                events
            }
            Piece::Done(Err(message)) => vec![
                SseEvent::default().data(json!({"error": {"message": message, "type": "server_error"}}).to_string()),
                SseEvent::default().data("[DONE]"),
            ],
        };
        futures::stream::iter(events.into_iter().map(Ok::<_, Infallible>))
    });
    let stream = futures::stream::iter(first.into_iter().map(Ok::<_, Infallible>)).chain(stream);
    Ok(Sse::new(stream).into_response())
}

#[cfg(test)]
#[path = "openai_tests.rs"]
mod tests;
