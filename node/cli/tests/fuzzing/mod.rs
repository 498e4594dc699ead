//! The fuzzing engine of `tests/fuzz.rs`: byte and JSON mutators under a time budget, a
//! dev-chain harness (client, RPC module, HTTP router) and the valid samples each target
//! starts from (`samples`).

pub mod samples;

use neuroshard_client::Store;
use neuroshard_client::{ChainInfo, Client, ClientConfig};
use neuroshard_rpc as rpc;
use neuroshard_rpc::http::{self as api, ApiState, Metrics};
use neuroshard_serving::generator::{GeneratorSlot, SharedGenerator};
use parity_scale_codec::{Decode, Encode};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{json, Value};
use std::fmt::Debug;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Seconds per target and the seed, from the environment (the seed is drawn from the
/// clock once per process when not given, so every target of a run uses the same one).
fn budget() -> (Duration, u64) {
    static SEED: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let secs = std::env::var("NEUROSHARD_FUZZ_SECS")
        .ok()
        .and_then(|s| s.parse::<f64>().ok())
        .unwrap_or(2.0);
    let seed = *SEED.get_or_init(|| {
        std::env::var("NEUROSHARD_FUZZ_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(0)
            })
    });
    (Duration::from_secs_f64(secs), seed)
}

/// Runs `target` on the samples and their mutations until the budget is spent; a panic
/// is re-raised with the seed and the offending input.
pub fn fuzz_bytes(name: &str, samples: &[Vec<u8>], mut target: impl FnMut(&[u8])) {
    assert!(!samples.is_empty(), "{name}: no samples");
    let (budget, seed) = budget();
    let mut rng = StdRng::seed_from_u64(seed);
    let started = Instant::now();
    let mut runs = 0u64;
    // The unmutated samples first: they must be handled too.
    let mut inputs: Vec<Vec<u8>> = samples.to_vec();
    while started.elapsed() < budget || !inputs.is_empty() {
        let input = inputs.pop().unwrap_or_else(|| mutate(&mut rng, samples));
        if catch_unwind(AssertUnwindSafe(|| target(&input))).is_err() {
            panic!(
                "{name}: panicked on input 0x{} (NEUROSHARD_FUZZ_SEED={seed}, run {runs})",
                hex::encode(&input)
            );
        }
        runs += 1;
    }
    eprintln!(
        "fuzz {name}: {runs} inputs in {:.1} s (seed {seed})",
        started.elapsed().as_secs_f64()
    );
}

/// Like [`fuzz_bytes`] for JSON text: mutations are structural (a random node replaced
/// by a random value) or textual (the bytes mutated, kept when still UTF-8).
pub fn fuzz_json(name: &str, samples: &[String], mut target: impl FnMut(&str)) {
    let parsed: Vec<Value> = samples
        .iter()
        .map(|s| serde_json::from_str(s).expect("samples are JSON"))
        .collect();
    let bytes: Vec<Vec<u8>> = samples.iter().map(|s| s.clone().into_bytes()).collect();
    let mut structural = StdRng::seed_from_u64(budget().1 ^ 0x5eed);
    fuzz_bytes(name, &bytes, |raw| {
        // Half the runs: a structural mutation of a sample instead of the raw bytes.
        let text = if structural.gen_bool(0.5) {
            let mut v = parsed[structural.gen_range(0..parsed.len())].clone();
            for _ in 0..structural.gen_range(1..4) {
                replace_random_node(&mut structural, &mut v);
            }
            v.to_string()
        } else {
            match std::str::from_utf8(raw) {
                Ok(s) => s.to_string(),
                Err(_) => return,
            }
        };
        target(&text);
    });
}

/// One mutation of a random sample (or plain random bytes).
pub fn mutate(rng: &mut StdRng, samples: &[Vec<u8>]) -> Vec<u8> {
    let mut data = samples[rng.gen_range(0..samples.len())].clone();
    if rng.gen_ratio(1, 16) {
        let len = rng.gen_range(0..256);
        return (0..len).map(|_| rng.gen()).collect();
    }
    for _ in 0..rng.gen_range(1..5) {
        let len = data.len();
        match rng.gen_range(0..7) {
            0 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] ^= 1 << rng.gen_range(0..8);
            }
            1 if len > 0 => {
                let i = rng.gen_range(0..len);
                data[i] = *[0u8, 0xff, 0x7f, 0x80, 0xfc, 0x03]
                    .get(rng.gen_range(0..6))
                    .unwrap_or(&0);
            }
            2 if len > 0 => data.truncate(rng.gen_range(0..len)),
            3 => {
                let i = rng.gen_range(0..=len);
                let extra: Vec<u8> = (0..rng.gen_range(1..16)).map(|_| rng.gen()).collect();
                data.splice(i..i, extra);
            }
            4 if len > 1 => {
                // Duplicate a slice in place (repeated fields, runaway lengths).
                let a = rng.gen_range(0..len);
                let b = rng.gen_range(a..len.min(a + 64) + 1).min(len);
                let piece = data[a..b].to_vec();
                data.splice(a..a, piece);
            }
            5 => {
                // Splice: our prefix, another sample's suffix.
                let other = &samples[rng.gen_range(0..samples.len())];
                let cut = rng.gen_range(0..=len);
                let from = rng.gen_range(0..=other.len());
                data.truncate(cut);
                data.extend_from_slice(&other[from..]);
            }
            _ if len >= 4 => {
                // A little-endian word set to a boundary value (lengths, positions).
                let i = rng.gen_range(0..=len - 4);
                let word: u32 = *[0, 1, u32::MAX, i32::MAX as u32, 1 << 24]
                    .get(rng.gen_range(0..5))
                    .unwrap_or(&0);
                data[i..i + 4].copy_from_slice(&word.to_le_bytes());
            }
            _ => {}
        }
    }
    data
}

fn random_value(rng: &mut StdRng, depth: u32) -> Value {
    match rng.gen_range(0..12) {
        0 => Value::Null,
        1 => json!(rng.gen::<bool>()),
        2 => json!(rng.gen::<i64>()),
        3 => json!(*[0u64, 1, u64::MAX, u32::MAX as u64 + 1]
            .get(rng.gen_range(0..4))
            .unwrap_or(&0)),
        4 => json!(rng.gen::<f64>() * 1e300 - 5e299),
        5 => json!(-1),
        6 => json!(format!(
            "0x{}",
            hex::encode(
                (0..rng.gen_range(0..80))
                    .map(|_| rng.gen::<u8>())
                    .collect::<Vec<_>>()
            )
        )),
        7 => json!("x".repeat(rng.gen_range(0..5000))),
        8 => json!("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
        9 if depth < 6 => Value::Array(
            (0..rng.gen_range(0..4))
                .map(|_| random_value(rng, depth + 1))
                .collect(),
        ),
        10 if depth < 6 => {
            let keys = [
                "prompt",
                "messages",
                "max_tokens",
                "temperature",
                "stream",
                "role",
                "content",
                "stop",
                "seed",
                "n",
            ];
            Value::Object(
                (0..rng.gen_range(0..4))
                    .map(|_| {
                        (
                            keys[rng.gen_range(0..keys.len())].to_string(),
                            random_value(rng, depth + 1),
                        )
                    })
                    .collect(),
            )
        }
        _ => json!(""),
    }
}

/// Replaces one node of `v` (possibly the root) with a random value.
fn replace_random_node(rng: &mut StdRng, v: &mut Value) {
    let descend = rng.gen_bool(0.7);
    match v {
        Value::Array(items) if descend && !items.is_empty() => {
            let i = rng.gen_range(0..items.len());
            replace_random_node(rng, &mut items[i]);
        }
        Value::Object(map) if descend && !map.is_empty() => {
            let i = rng.gen_range(0..map.len());
            if let Some(child) = map.values_mut().nth(i) {
                replace_random_node(rng, child);
            }
        }
        _ => *v = random_value(rng, 0),
    }
}

/// A decoded value must encode to bytes that decode to the same value.
pub fn round_trips<T: Encode + Decode + PartialEq + Debug>(value: &T) {
    let again = T::decode(&mut &value.encode()[..]).expect("re-encoded value decodes");
    assert_eq!(&again, value, "decode(encode(x)) != x");
}

/// A dev chain (1 s slots) in a temporary directory, with the RPC module and HTTP router
/// of a node that serves no model.
pub struct Harness {
    pub client: Arc<Client>,
    generator: SharedGenerator,
    metrics: Arc<Metrics>,
    _dir: tempfile::TempDir,
}

impl Harness {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let text = neuroshard_chain_spec::builtin_json("dev").unwrap();
        let mut spec = neuroshard_chain_spec::parse(text, "dev").unwrap();
        spec.genesis.params.system.slot_duration_ms = 1_000;
        let chain = ChainInfo {
            name: "Fuzz".into(),
            id: "fuzz".into(),
            genesis: spec.genesis,
        };
        let store = Store::open(&dir.path().join("db")).unwrap();
        let client = Client::open(store, &chain, ClientConfig::default()).unwrap();
        Self {
            client: Arc::new(client),
            generator: Arc::new(tokio::sync::RwLock::new(GeneratorSlot::NotServing)),
            metrics: Arc::new(Metrics::default()),
            _dir: dir,
        }
    }

    pub fn rpc_module(&self) -> jsonrpsee::RpcModule<()> {
        let generation = rpc::generate::Generate {
            generator: self.generator.clone(),
            metrics: self.metrics.clone(),
            admission: Default::default(),
        };
        rpc::module(self.client.clone(), None, generation, Default::default()).unwrap()
    }

    pub fn api_router(&self) -> axum::Router {
        api::router(ApiState {
            client: self.client.clone(),
            generator: self.generator.clone(),
            metrics: self.metrics.clone(),
            admission: Default::default(),
            net: None,
            api_keys: None,
        })
    }
}

/// POSTs `body` to `path` on `router`; the response status.
pub async fn post(router: &axum::Router, path: &str, body: &str) -> axum::http::StatusCode {
    use tower::ServiceExt;
    let request = axum::http::Request::builder()
        .method("POST")
        .uri(path)
        .header("content-type", "application/json")
        .body(axum::body::Body::from(body.to_string()))
        .unwrap();
    router.clone().oneshot(request).await.unwrap().status()
}
