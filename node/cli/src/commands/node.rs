//! `neuroshard dev` and `neuroshard run`: turn the command line into a
//! [`NodeConfig`] and run the node until Ctrl-C / SIGTERM.

use crate::cli::{DevArgs, RunArgs, StatePruning};
use crate::network::P2pConfig;
use crate::service::{self, NodeConfig};
use anyhow::Context;
use neuroshard_primitives::{crypto, LayerRange};
use neuroshard_serving::options::{archive_budget, ServingOptions};
use std::path::PathBuf;

pub async fn dev(args: DevArgs) -> anyhow::Result<()> {
    // Keep the temporary directory alive for the node's lifetime.
    let tmp = if args.tmp {
        Some(
            tempfile::Builder::new()
                .prefix("neuroshard-dev-")
                .tempdir()?,
        )
    } else {
        None
    };
    let base_path = match (&tmp, args.base_path) {
        (Some(dir), _) => dir.path().to_path_buf(),
        (None, Some(path)) => path,
        (None, None) => default_base_path()?,
    };
    let config = NodeConfig {
        chain: "dev".into(),
        base_path,
        key: Some(crypto::keypair_from_uri("//Alice")?),
        validator: true,
        rpc_port: args.rpc_port,
        api_port: args.api_port,
        api_listen: args.api.api_listen,
        api_keys: args.api.api_keys.clone(),
        shards: neuroshard_chain_spec::load("dev")?.model.shards,
        // One authority serving every shard itself: no peers to talk to.
        p2p: None,
        train: None,
        serving: ServingOptions {
            max_generations: args.api.max_generations as usize,
            max_generations_per_client: args.api.max_generations_per_key as usize,
            tokens_per_minute_per_client: args.api.max_tokens_per_minute_per_key,
            kv_budget_bytes: args.api.max_kv_mib.map(|m| m << 20),
            max_batch: args.shard_limits.max_batch as usize,
            max_sessions: args.shard_limits.max_sessions as usize,
            prefix_cache_bytes: (args.shard_limits.prefix_cache_mib as usize) << 20,
            ..Default::default()
        },
        state_pruning: StatePruning::resolve(args.state_pruning, "dev"),
        #[cfg(feature = "fault-injection")]
        false_mismatch: None,
        #[cfg(feature = "fault-injection")]
        fault_omit_receipts: None,
    };
    service::run(config).await
}

pub async fn run(args: RunArgs) -> anyhow::Result<()> {
    let listen = args
        .listen
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("--listen {a:?} is not a multiaddr"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let bootnodes = args
        .bootnodes
        .iter()
        .map(|a| {
            a.parse()
                .with_context(|| format!("--bootnodes {a:?} is not a multiaddr"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let shards = match args.shards.as_deref() {
        Some(text) => LayerRange::parse_list(text).with_context(|| format!("--shards {text:?}"))?,
        None => Vec::new(),
    };
    let train = match args.train.as_deref() {
        None => None,
        Some(text) => {
            let layers = LayerRange::parse(text).with_context(|| format!("--train {text:?}"))?;
            anyhow::ensure!(
                shards.contains(&layers),
                "--train {layers} must be one of the served --shards"
            );
            let canonical = crate::service::load_chain(&args.chain)?.model.shards;
            anyhow::ensure!(
                canonical.contains(&layers),
                "--train {layers} must be one of the chain's canonical ranges ({}): training \
                 rounds exist only for those",
                canonical
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            #[cfg(feature = "fault-injection")]
            for f in [
                args.faults.fault_poison_gradient,
                args.faults.fault_poison_adapter,
            ] {
                anyhow::ensure!(
                    f.is_none_or(f32::is_finite),
                    "poison factors must be finite"
                );
            }
            Some(neuroshard_trainer::TrainOptions {
                layers,
                rounds: args.train_rounds,
                #[cfg(feature = "fault-injection")]
                poison: args.faults.fault_poison_gradient,
                #[cfg(feature = "fault-injection")]
                poison_adapter: args.faults.fault_poison_adapter,
            })
        }
    };
    let key = args
        .key
        .as_deref()
        .map(crypto::keypair_from_uri)
        .transpose()
        .context("--key")?;
    let state_pruning = StatePruning::resolve(args.state_pruning, &args.chain);
    let config = NodeConfig {
        chain: args.chain,
        base_path: args.base_path,
        key,
        validator: args.validator,
        rpc_port: args.rpc_port,
        api_port: args.api_port,
        api_listen: args.api.api_listen,
        api_keys: args.api.api_keys.clone(),
        shards,
        p2p: Some(P2pConfig {
            listen,
            bootnodes,
            forward_batch: args.forward_batch as usize,
            #[cfg(feature = "fault-injection")]
            fault_partition_file: args.faults.fault_partition_file.clone(),
            #[cfg(feature = "fault-injection")]
            fault_equivocate: args.faults.fault_equivocate,
            #[cfg(feature = "fault-injection")]
            fault_no_hole_punching: args.faults.fault_no_hole_punching,
        }),
        train,
        serving: ServingOptions {
            archive: archive_budget(args.archive_mib),
            max_generations: args.api.max_generations as usize,
            max_generations_per_client: args.api.max_generations_per_key as usize,
            tokens_per_minute_per_client: args.api.max_tokens_per_minute_per_key,
            kv_budget_bytes: args.api.max_kv_mib.map(|m| m << 20),
            max_batch: args.shard_limits.max_batch as usize,
            max_sessions: args.shard_limits.max_sessions as usize,
            prefix_cache_bytes: (args.shard_limits.prefix_cache_mib as usize) << 20,
            #[cfg(feature = "fault-injection")]
            skip_work: args.faults.fault_skip_work,
            #[cfg(feature = "fault-injection")]
            refuse_forwards: args.faults.fault_refuse_requests,
            #[cfg(feature = "fault-injection")]
            claim_account: args
                .faults
                .fault_claim_account
                .as_deref()
                .map(crypto::parse_account)
                .transpose()
                .context("--fault-claim-account")?,
            #[cfg(feature = "fault-injection")]
            never_pay: args.faults.fault_never_pay,
            #[cfg(feature = "fault-injection")]
            never_submit: args.faults.fault_never_submit,
            #[cfg(feature = "fault-injection")]
            relay_probes: args
                .faults
                .fault_relay_probes
                .as_deref()
                .map(crypto::parse_account)
                .transpose()
                .context("--fault-relay-probes")?,
            #[cfg(feature = "fault-injection")]
            answer_foreign_probes: args.faults.fault_answer_foreign_probes,
            #[cfg(feature = "fault-injection")]
            reply_delay_ms: args.faults.fault_reply_delay_ms,
            #[cfg(feature = "fault-injection")]
            probe_jobs_per_sec: args.faults.fault_probe_jobs_per_sec,
        },
        state_pruning,
        #[cfg(feature = "fault-injection")]
        false_mismatch: args.faults.fault_false_mismatch,
        #[cfg(feature = "fault-injection")]
        fault_omit_receipts: args.faults.fault_omit_receipts,
    };
    service::run(config).await
}

fn default_base_path() -> anyhow::Result<PathBuf> {
    let home = std::env::var_os("HOME").context("HOME is not set; pass --base-path or --tmp")?;
    Ok(PathBuf::from(home).join(".neuroshard"))
}
