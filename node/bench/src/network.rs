//! `neuroshard bench network`: the real model's decode speed when its three shards run in
//! three separate processes talking libp2p over loopback, against the same model in one
//! process, measured in one run; and speculative (n-gram) against plain decoding across
//! those processes. Each shard process is this binary's hidden `bench shard-server`
//! subcommand: a bare network service answering shard calls (no chain). Outputs must
//! match the single-process output token for token, or the benchmark fails.

use crate::inference::{resolve_gguf, timed, BenchModel};
use anyhow::{bail, Context};
use neuroshard_inference::decode::{DecodeOptions, Decoded};
use neuroshard_inference::drafter::{Drafter, NgramDrafter};
use neuroshard_inference::pipeline::Hop;
use neuroshard_inference::shard::Shard;
use neuroshard_inference::transport::ShardTransport;
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_inference::PipelineClient;
use neuroshard_network::{
    NetworkConfig, NetworkEvent, NetworkKeypair, PeerId, Protocol, Transport,
};
use neuroshard_primitives::{crypto, AccountId, Hash, LayerRange};
use neuroshard_serving::remote::RemoteShard;
use neuroshard_serving::server::{NoTraining, ShardServer, ShardService};
use sp_core::Pair as _;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

/// The line a shard server prints once it listens.
const READY: &str = "SHARD-SERVER-LISTENING ";
const BENCH_KEY: &str = "//NetworkBench";

/// Options of the network benchmark.
pub struct NetworkBenchOptions {
    pub model: Option<PathBuf>,
    pub max_tokens: usize,
    pub prompt: String,
}

/// A shard server child process, killed on drop.
struct ShardProcess {
    child: Child,
    peer: PeerId,
    addr: String,
}

impl Drop for ShardProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_shard_server(model: &Path, layers: LayerRange) -> anyhow::Result<ShardProcess> {
    let mut child = Command::new(std::env::current_exe()?)
        .args([
            "bench",
            "shard-server",
            "--layers",
            &layers.to_string(),
            "--model",
        ])
        .arg(model)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("spawning a shard server")?;
    let stdout = child.stdout.take().context("shard server stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        if let Some(addr) = line.strip_prefix(READY) {
            let peer = addr
                .rsplit('/')
                .next()
                .and_then(|p| p.parse().ok())
                .context("shard server printed no peer id")?;
            return Ok(ShardProcess {
                child,
                peer,
                addr: addr.to_string(),
            });
        }
    }
    bail!("shard server for {layers} exited before listening")
}

/// `bench shard-server`: serves `layers` of the GGUF at `model` to any peer until killed.
pub async fn shard_server(model: PathBuf, layers: LayerRange) -> anyhow::Result<()> {
    let hash = Hash::zero();
    let shard = tokio::task::spawn_blocking(move || -> anyhow::Result<Shard> {
        let weights = ModelWeights::load(&ModelSource::Gguf(model), None, Precision::Native)?;
        Ok(Shard::new(
            weights.slice(layers.start as usize..layers.end as usize)?,
            hash,
        )?)
    })
    .await??;
    let server = Arc::new(ShardServer::new(
        vec![Arc::new(shard)],
        crypto::keypair_from_uri(BENCH_KEY)?,
        Arc::new(NoTraining),
    ));
    let service = ShardService::new(&Default::default());
    service.serve(server);
    let (network, mut events) = neuroshard_network::start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootnodes: vec![],
        genesis: hash,
        behaviour: Default::default(),
        transport: Transport::Tcp,
    })
    .await?;
    let addr = network.listen_addrs().await?[0].clone();
    println!("{READY}{addr}/p2p/{}", network.local_peer_id());
    while let Some(event) = events.recv().await {
        if let NetworkEvent::Request {
            protocol: Protocol::Activations,
            peer,
            data,
            reply,
        } = event
        {
            if let Some(answer) = service.answer(peer, data).await {
                network.respond(reply, answer);
            }
        }
    }
    Ok(())
}

/// [`timed`] that also ends the session on the shards.
fn timed_session(
    client: &mut PipelineClient,
    prompt: &[u32],
    opts: &DecodeOptions,
    drafter: Option<&mut dyn Drafter>,
) -> anyhow::Result<(Decoded, f64)> {
    let result = timed(client, prompt, opts, drafter);
    client.close();
    result
}

/// Runs the benchmark (blocking: call it from a blocking thread) and prints a report.
pub fn run(opts: &NetworkBenchOptions, runtime: tokio::runtime::Handle) -> anyhow::Result<()> {
    let (_, _, path) = resolve_gguf(opts.model.as_ref(), None, true)?;
    let path = &path;
    let hash = Hash::zero();
    eprintln!("bench: single process");
    let model = BenchModel::load(path, &opts.prompt, opts.max_tokens)?;
    let (plain, single_tps) = model.single_process(hash)?;
    let BenchModel {
        prompt,
        weights,
        dopts,
        ..
    } = model;
    let num_layers = weights.config.num_layers as u16;
    drop(weights);

    let third = num_layers / 3;
    let ranges = [
        LayerRange {
            start: 0,
            end: third,
        },
        LayerRange {
            start: third,
            end: 2 * third,
        },
        LayerRange {
            start: 2 * third,
            end: num_layers,
        },
    ];
    eprintln!("bench: starting 3 shard-server processes");
    let servers = ranges
        .iter()
        .map(|r| spawn_shard_server(path, *r))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let (network, _events) = runtime.block_on(neuroshard_network::start(NetworkConfig {
        keypair: NetworkKeypair::generate_ed25519(),
        listen: vec!["/ip4/127.0.0.1/tcp/0".parse()?],
        bootnodes: servers
            .iter()
            .map(|s| s.addr.parse())
            .collect::<Result<_, _>>()?,
        genesis: hash,
        behaviour: Default::default(),
        transport: Transport::Tcp,
    }))?;
    let worker: AccountId = crypto::keypair_from_uri(BENCH_KEY)?.public().into();
    let outboxes = neuroshard_serving::outbox::Outboxes::default();
    let route = |session: u8| -> anyhow::Result<PipelineClient> {
        let hops = servers
            .iter()
            .zip(ranges)
            .map(|(s, r)| {
                let t: Arc<dyn ShardTransport> = Arc::new(RemoteShard::new(
                    network.clone(),
                    runtime.clone(),
                    &outboxes,
                    s.peer,
                    worker.clone(),
                    hash,
                    r,
                ));
                Hop::new(vec![t])
            })
            .collect();
        Ok(PipelineClient::new(hash, [session; 16], hops)?)
    };
    // Warm-up: connections, the servers' first forward.
    timed_session(
        &mut route(2)?,
        &prompt,
        &DecodeOptions {
            max_tokens: 8,
            ..dopts.clone()
        },
        None,
    )?;
    eprintln!("bench: 3-process pipeline, plain");
    let (piped, piped_tps) = timed_session(&mut route(3)?, &prompt, &dopts, None)?;
    eprintln!("bench: 3-process pipeline, speculative (n-gram)");
    let mut drafter = NgramDrafter::default();
    let (spec, spec_tps) = timed_session(&mut route(4)?, &prompt, &dopts, Some(&mut drafter))?;
    if piped.tokens != plain.tokens || spec.tokens != plain.tokens {
        bail!("the 3-process pipeline's output differs from single-process output");
    }
    drop(servers);

    println!(
        "NeuroShard network benchmark ({} tokens, greedy, same output everywhere)",
        plain.tokens.len()
    );
    println!("  single process                 {single_tps:8.1} tok/s");
    println!(
        "  3 processes over libp2p        {piped_tps:8.1} tok/s   ratio to single process {:.3}",
        piped_tps / single_tps
    );
    println!(
        "  3 processes, speculative ngram {spec_tps:8.1} tok/s   ratio to plain 3-process {:.3}  (acceptance {:.0}%, {:.2} tokens/round)",
        spec_tps / piped_tps,
        spec.stats.acceptance_rate() * 100.0,
        spec.stats.tokens_per_round()
    );
    Ok(())
}
