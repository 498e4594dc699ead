//! The command line (clap). Names are a contract (DESIGN.md section 5): `dev`, `run`,
//! `key generate|inspect`, `tx transfer`, `balance`, `generate`, `bench`; each has its
//! own module in [`crate::commands`]. `bench` exists in builds with `--features bench`;
//! the hidden `--fault-*` flags of `run` only in builds with `--features fault-injection`
//! (tests and benches), so a production binary rejects them.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Default JSON-RPC endpoint for the wallet commands.
pub const DEFAULT_RPC_URL: &str = "http://127.0.0.1:9944";

#[derive(Debug, Parser)]
#[command(
    name = "neuroshard",
    version,
    about = "NeuroShard node: sharded LLM inference paid by Proof of Neural Work"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a single-node development chain: //Alice authors every slot, blocks finalise
    /// instantly, JSON-RPC on 127.0.0.1.
    Dev(DevArgs),
    /// Run a node of a chain from a chain spec ("dev", "local" or a JSON file).
    Run(Box<RunArgs>),
    /// Key tools (subkey-compatible).
    #[command(subcommand)]
    Key(KeyCommand),
    /// Build, sign and submit transactions over JSON-RPC.
    #[command(subcommand)]
    Tx(TxCommand),
    /// Show an account's balances over JSON-RPC.
    Balance(BalanceArgs),
    /// Verify an account's balance like a light client: a read proof checked against
    /// the finalized header's state root (the node is not trusted).
    VerifyBalance(BalanceArgs),
    /// Generate text locally through an in-process pipeline of shards, or on a node
    /// with --rpc.
    Generate(GenerateArgs),
    /// Print what a chain spec's `ponw.model` states about a GGUF model file: its hash,
    /// layer count and each layer's chunk root (what workers show possession of).
    ModelChunks(ModelChunksArgs),
    /// Benchmarks; each prints its figures beside a baseline measured in the same run.
    #[cfg(feature = "bench")]
    #[command(subcommand)]
    Bench(neuroshard_bench::BenchCommand),
    /// Benchmarks (not in this build).
    #[cfg(not(feature = "bench"))]
    #[command(hide = true)]
    Bench {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

#[derive(Debug, Args)]
pub struct ModelChunksArgs {
    /// The model file (GGUF; the first part of a split model).
    #[arg(long)]
    pub model: PathBuf,
    /// Chunk size in bytes (the built-in chain specs use 1024).
    #[arg(long, default_value_t = neuroshard_primitives::model_chunks::DEFAULT_CHUNK_SIZE)]
    pub chunk_size: u32,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// The prompt (sent as a user message through the chat template unless --raw).
    #[arg(long)]
    pub prompt: String,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Speculative drafter: ngram (prompt lookup), model (Q4_1 drafting for an f32
    /// target) or none.
    #[arg(long, default_value = "ngram")]
    pub draft: String,
    /// Sampling temperature; 0 is greedy.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// A GGUF file or a safetensors Llama directory (default: the chain's model,
    /// fetched into the cache).
    #[arg(long, value_name = "PATH")]
    pub model: Option<PathBuf>,
    /// Layer ranges of the in-process pipeline (default: one shard with every layer).
    #[arg(long, value_name = "RANGES")]
    pub shards: Option<String>,
    /// Use the prompt as is, without the chat template.
    #[arg(long)]
    pub raw: bool,
    /// Generate on the node at this JSON-RPC URL (`neuroshard_generate`: the node's
    /// shards run the model and bill the work with receipts) instead of locally.
    #[arg(long, value_name = "URL", conflicts_with_all = ["model", "shards"])]
    pub rpc: Option<String>,
}

#[derive(Debug, Args)]
pub struct DevArgs {
    /// Keep the chain in a temporary directory deleted on exit.
    #[arg(long, conflicts_with = "base_path")]
    pub tmp: bool,
    /// Where the chain database lives (default: $HOME/.neuroshard).
    #[arg(long, value_name = "DIR")]
    pub base_path: Option<PathBuf>,
    /// JSON-RPC port on 127.0.0.1 (HTTP and WebSocket); 0 picks a free one.
    #[arg(long, default_value_t = 9944)]
    pub rpc_port: u16,
    /// Port of the HTTP API (OpenAI-compatible inference, /metrics, explorer at /) on
    /// 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Which blocks' states to keep for historical queries: "archive" (every block,
    /// the default on dev) or N, the last N blocks (and always those from the finalized
    /// block on). A query at a discarded block's state is refused.
    #[arg(long, value_name = "archive|N")]
    pub state_pruning: Option<StatePruning>,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub shard_limits: ShardLimitArgs,
}

/// `--state-pruning`: keep every block's state, or the last N blocks'.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatePruning {
    Archive,
    Keep(u64),
}

impl std::str::FromStr for StatePruning {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "archive" | "archive-canonical" => Ok(Self::Archive),
            n => match n.parse::<u64>() {
                Ok(n) if n >= 1 => Ok(Self::Keep(n)),
                _ => Err(format!(
                    "expected \"archive\" or a number of blocks >= 1, got {n:?}"
                )),
            },
        }
    }
}

/// States kept when `--state-pruning` is not given on a chain spec file: as deep as
/// historical queries reached before state was versioned (Substrate's default is 256).
pub const DEFAULT_STATE_PRUNING: u64 = 4096;

impl StatePruning {
    /// The client's setting (`None`: archive) for `chain`: archive by default on the
    /// built-in `dev` and `local` chains, the last [`DEFAULT_STATE_PRUNING`] blocks'
    /// states on others.
    pub fn resolve(flag: Option<Self>, chain: &str) -> Option<u64> {
        match flag {
            Some(Self::Archive) => None,
            Some(Self::Keep(n)) => Some(n),
            None if matches!(chain, "dev" | "local") => None,
            None => Some(DEFAULT_STATE_PRUNING),
        }
    }
}

/// Who may use the node's HTTP API, and how much generation work it takes on.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// Address the HTTP API listens on. Generations through it are paid from escrow,
    /// so an address other than loopback needs --api-keys.
    #[arg(long, value_name = "IP", default_value = "127.0.0.1")]
    pub api_listen: std::net::IpAddr,
    /// File of API keys, one `KEY SECRET_URI` per line: each `/v1/` request must send
    /// `Authorization: Bearer KEY`, and its generation is billed to (paid from the
    /// escrow of) that key's account.
    #[arg(long, value_name = "FILE")]
    pub api_keys: Option<PathBuf>,
    /// Most generations this node runs at once for its HTTP API and `neuroshard_generate`
    /// RPC together; a request beyond it is refused at once as busy (HTTP 503 with
    /// Retry-After, JSON-RPC error 1021). Each generation is billed to this node's key.
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_serving::admission::DEFAULT_MAX_GENERATIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub max_generations: u32,
    /// Most of those one API key (its paying account, see --api-keys) runs at once; a
    /// request beyond it gets HTTP 429 with Retry-After.
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_serving::admission::DEFAULT_MAX_GENERATIONS_PER_CLIENT as u32,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub max_generations_per_key: u32,
    /// Tokens (prompt plus max_tokens, what a generation is charged when admitted; what
    /// it did not generate comes back when it ends) one API key may use per minute; a
    /// request beyond it gets HTTP 429 with Retry-After saying when its tokens are
    /// there again. 0: no limit.
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_serving::limits::DEFAULT_TOKENS_PER_MINUTE_PER_CLIENT
    )]
    pub max_tokens_per_minute_per_key: u32,
    /// Memory the KV caches of running generations may take in this node's shards, in
    /// MiB (each reserves its prompt plus max_tokens positions when admitted); a
    /// generation that does not fit gets HTTP 503 with Retry-After instead of running
    /// the machine out of memory. Default: a quarter of the machine's memory.
    #[arg(long, value_name = "MIB", value_parser = clap::value_parser!(u64).range(1..=1 << 30))]
    pub max_kv_mib: Option<u64>,
}

/// How much work each served shard takes on at once (its own generations' and peers').
#[derive(Debug, Args)]
pub struct ShardLimitArgs {
    /// Most positions one batched step of a shard runs (decode tokens of every session
    /// plus chunks of prefills): larger batches raise throughput and each step's latency.
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_inference::batcher::DEFAULT_MAX_BATCH as u32,
        value_parser = clap::value_parser!(u32).range(1..=4096)
    )]
    pub max_batch: u32,
    /// Most sessions (KV caches) a shard keeps; beyond it the least recently used one is
    /// dropped and its client replays its tokens. Memory per shard is at most
    /// sessions x context x 2 x kv_dim x 4 bytes per layer.
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_inference::shard::DEFAULT_MAX_SESSIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..=65536)
    )]
    pub max_sessions: u32,
    /// Memory per shard for the prompt prefixes of this node's generations (a shared
    /// system prompt, a chat's history), in MiB: a generation whose prompt starts like
    /// an earlier one of the same paying client (API key) reuses the keys and values
    /// computed for it instead of computing them again. 0 turns it off.
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = neuroshard_serving::options::DEFAULT_PREFIX_CACHE_MIB,
        value_parser = clap::value_parser!(u32).range(0..=1 << 20)
    )]
    pub prefix_cache_mib: u32,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// Chain spec: "dev", "local" or a path to a chain spec JSON file.
    #[arg(long, default_value = "local")]
    pub chain: String,
    /// Where the chain database lives.
    #[arg(long, value_name = "DIR")]
    pub base_path: PathBuf,
    /// Secret URI of the node's key (e.g. //Alice or a mnemonic); required with --validator.
    #[arg(long, value_name = "URI")]
    pub key: Option<String>,
    /// Author blocks in the slots the chain assigns to --key.
    #[arg(long, requires = "key")]
    pub validator: bool,
    /// JSON-RPC port on 127.0.0.1 (HTTP and WebSocket); 0 picks a free one.
    #[arg(long, default_value_t = 9944)]
    pub rpc_port: u16,
    /// Port of the HTTP API (OpenAI-compatible inference, /metrics, explorer at /) on
    /// 127.0.0.1; 0 picks a free one.
    #[arg(long, default_value_t = 8080)]
    pub api_port: u16,
    /// Layer ranges of the chain's model to serve, e.g. 0-10,10-20,20-30 (needs --key:
    /// the worker's account). The model is fetched and verified on first use; the HTTP
    /// API routes generations through the network for the layers served elsewhere.
    #[arg(long, value_name = "RANGES")]
    pub shards: Option<String>,
    /// Memory per served shard for the spot-check material of its work, in MiB: a third
    /// for work not yet on chain, two thirds kept for receipts on chain until their
    /// checks are over (too little and this worker's receipts on chain go unanswered
    /// when checked, forfeiting their pay).
    #[arg(
        long,
        value_name = "MIB",
        default_value_t = neuroshard_serving::options::DEFAULT_ARCHIVE_MIB,
        value_parser = clap::value_parser!(u32).range(1..=1 << 20),
        requires = "shards"
    )]
    pub archive_mib: u32,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub shard_limits: ShardLimitArgs,
    /// Proof of Training: train a LoRA adapter for this layer range (one of --shards)
    /// with the other nodes that train it, DiLoCo style, and earn the training reward
    /// for the rounds whose aggregate accepts this node's pseudo-gradient.
    #[arg(long, value_name = "RANGE", requires = "shards")]
    pub train: Option<String>,
    /// Stop training once the shard's round on chain reaches N (default: keep training).
    #[arg(long, value_name = "N", requires = "train")]
    pub train_rounds: Option<u32>,
    /// libp2p listen multiaddrs, comma-separated (port 0 picks a free port; the bound
    /// address is logged as "p2p listening"): TCP and QUIC by default. Behind NAT nothing
    /// more is needed: the node finds out, reserves slots with relays among its peers,
    /// announces its relayed addresses and punches holes where the routers allow.
    #[arg(
        long,
        value_name = "MULTIADDR,...",
        value_delimiter = ',',
        default_value = "/ip4/0.0.0.0/tcp/30333,/ip4/0.0.0.0/udp/30333/quic-v1"
    )]
    pub listen: Vec<String>,
    /// Peers to dial at start, comma-separated multiaddrs (with or without /p2p/<id>).
    /// They only seed the DHT: after that no node is special.
    #[arg(long, value_name = "MULTIADDR,...", value_delimiter = ',')]
    pub bootnodes: Vec<String>,
    /// Which blocks' states to keep for historical queries: "archive" (every block; the
    /// default on the dev and local chains) or N, the last N blocks (and always those
    /// from the finalized block on; default 4096 on other chains).
    #[arg(long, value_name = "archive|N")]
    pub state_pruning: Option<StatePruning>,
    /// Most sessions of this node's generations one forward call to another node's
    /// shard carries (a micro-batch; calls to a shard are pipelined, four in flight). 1
    /// sends each session's requests alone, as many calls in flight as sessions (the
    /// baseline of `bench serve --nodes 3`).
    #[arg(
        long,
        value_name = "N",
        default_value_t = neuroshard_serving::protocol::MAX_FORWARD_SESSIONS as u32,
        value_parser = clap::value_parser!(u32).range(1..=neuroshard_serving::protocol::MAX_FORWARD_SESSIONS as i64)
    )]
    pub forward_batch: u32,
    /// Deliberate faults for tests and benches.
    #[cfg(feature = "fault-injection")]
    #[command(flatten)]
    pub faults: FaultArgs,
}

/// The hidden `--fault-*` flags of `run` (builds with `--features fault-injection` only).
#[cfg(feature = "fault-injection")]
#[derive(Debug, Args)]
pub struct FaultArgs {
    /// Fault injection for tests: also gossip a second, differently sealed copy of every
    /// block this node authors, so its peers catch and report the equivocation.
    #[arg(long, hide = true, requires = "validator")]
    pub fault_equivocate: bool,
    /// Fault injection for tests and benches: the node's shards fake this many
    /// millionths of their output positions (returning their input instead of running
    /// the layers), like a worker saving compute; spot checks should catch it.
    #[arg(long, hide = true, value_name = "PERMILL", requires = "shards")]
    pub fault_skip_work: Option<u32>,
    /// Fault injection for tests: refuse every forward request from peers (a freeloader
    /// online with the model that serves nobody); its liveness probes should fail.
    #[arg(long, hide = true, requires = "shards")]
    pub fault_refuse_requests: bool,
    /// Fault injection for tests: a file of peer ids (one per line) this node is cut off
    /// from, re-read every 250 ms; missing or empty heals the partition.
    #[arg(long, hide = true, value_name = "PATH")]
    pub fault_partition_file: Option<PathBuf>,
    /// Fault injection for tests: scale this node's pseudo-gradients by FACTOR (a
    /// poisoning holder); the robust aggregate should exclude it.
    #[arg(
        long,
        hide = true,
        value_name = "FACTOR",
        requires = "train",
        allow_negative_numbers = true
    )]
    pub fault_poison_gradient: Option<f32>,
    /// Fault injection for tests: after each outer step scale this node's adapter by
    /// FACTOR and report that version (holders doing the same agree on it: a colluding
    /// majority pushing a poisoned adapter); serving nodes should not adopt it.
    #[arg(
        long,
        hide = true,
        value_name = "FACTOR",
        requires = "train",
        allow_negative_numbers = true
    )]
    pub fault_poison_adapter: Option<f32>,
    /// Fault injection for tests: announce this node's provider records in the name of
    /// ACCOUNT (another worker's SS58 address) with no shards, so that verifiers looking
    /// for that worker's peers ask this node (which has none of its spot-check
    /// material); the account <-> peer binding should make such records unbelievable.
    #[arg(long, hide = true, value_name = "ACCOUNT", requires = "shards")]
    pub fault_claim_account: Option<String>,
    /// Fault injection for tests: never pay for this node's generations, neither
    /// handing receipts back counter-signed to the providers nor submitting them (a
    /// client that takes the work and does not pay): providers must stop serving it
    /// after one increment, and its sessions' material must not push out the material of
    /// receipts that are on chain.
    #[arg(long, hide = true)]
    pub fault_never_pay: bool,
    /// Fault injection for tests: hand receipts back counter-signed to the providers
    /// but never submit them (providers must submit them themselves).
    #[arg(long, hide = true)]
    pub fault_never_submit: bool,
    /// Fault injection for tests: as a validator, answer every spot check assigned to
    /// this node with `Mismatch`, with made-up evidence (`forged`) or with the real
    /// evidence, which refutes the verdict (`refuted`); the chain must not let it frame
    /// an honest worker.
    #[arg(long, hide = true, value_name = "MODE", requires = "validator")]
    pub fault_false_mismatch: Option<neuroshard_verifier::FalseMismatch>,
    /// Fault injection for tests: as an author, leave receipt batches out of this node's
    /// blocks: every one (`all`, the default), hoping to keep receipts from being drawn
    /// for a check; or (`sampled`) those this block's own randomness would sample, while
    /// keeping this node's own batches from gossip (an author colluding with a client).
    /// Receipts are drawn from the randomness after inclusion, so neither helps.
    #[arg(
        long,
        hide = true,
        value_name = "MODE",
        num_args = 0..=1,
        default_missing_value = "all",
        requires = "validator"
    )]
    pub fault_omit_receipts: Option<neuroshard_client::OmitReceipts>,
    /// Fault injection for tests: compute nothing for peers; relay every forward call
    /// (liveness probes included) to a provider of the same layers bound to ACCOUNT (an
    /// SS58 address), as an ordinary client session, and return its answer as this
    /// node's own (a relayer earning uptime on another machine's compute).
    #[arg(long, hide = true, value_name = "ACCOUNT", requires = "shards")]
    pub fault_relay_probes: Option<String>,
    /// Fault injection for tests: compute other accounts' capacity probes too (the
    /// machine behind relaying accounts, which honest providers refuse to be).
    #[arg(long, hide = true, requires = "shards")]
    pub fault_answer_foreign_probes: bool,
    /// Fault injection for tests: delay every reply to a peer's shard call by MS
    /// milliseconds (a provider behind a slow path; pings are not delayed).
    #[arg(long, hide = true, value_name = "MS", default_value_t = 0)]
    pub fault_reply_delay_ms: u64,
    /// Fault injection for tests: start at most N capacity-probe jobs a second across
    /// all of this node's probes (a machine of fixed capacity, whatever else the host
    /// runs).
    #[arg(long, hide = true, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), requires = "shards")]
    pub fault_probe_jobs_per_sec: Option<u32>,
    /// Fault injection for tests: no DCUtR hole punching (connections through relays
    /// stay relayed, as behind a symmetric NAT).
    #[arg(long, hide = true)]
    pub fault_no_hole_punching: bool,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// Generate a new random key (12-word mnemonic) and print it like `subkey generate`.
    Generate {
        /// Number of words in the mnemonic (12, 15, 18, 21 or 24).
        #[arg(long, default_value_t = 12)]
        words: usize,
    },
    /// Print the keys and address of a secret URI, like `subkey inspect`.
    Inspect {
        /// //Alice, a mnemonic (optionally with //hard/soft junctions and ///password),
        /// or a 0x seed.
        uri: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum TxCommand {
    /// Transfer NSHD and wait until the transfer is in a block.
    Transfer(TransferArgs),
    /// Lock free balance as stake (slashable; validators need a minimum bond).
    Bond(StakeArgs),
    /// Start releasing bond; it becomes free after the chain's unbonding period.
    Unbond(StakeArgs),
    /// Reserve more free balance as the sender's worker bond (a registered worker then
    /// answers for more unsettled work; slashable).
    WorkerBondMore(StakeArgs),
}

/// Who signs a transaction, where it goes, and how long to wait for its block.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Secret URI of the sender.
    #[arg(long, value_name = "URI")]
    pub from: String,
    /// Node JSON-RPC URL.
    #[arg(long, default_value = DEFAULT_RPC_URL)]
    pub rpc: String,
    /// Give up waiting for inclusion after this many seconds.
    #[arg(long, default_value_t = 60)]
    pub timeout_secs: u64,
}

#[derive(Debug, Args)]
pub struct StakeArgs {
    #[command(flatten)]
    pub submit: SubmitArgs,
    /// Amount in NSHD, e.g. 100 (12 decimals at most).
    #[arg(long)]
    pub amount: String,
}

#[derive(Debug, Args)]
pub struct TransferArgs {
    #[command(flatten)]
    pub submit: SubmitArgs,
    /// SS58 address of the recipient.
    #[arg(long, value_name = "SS58")]
    pub to: String,
    /// Amount in NSHD, e.g. 1.5 (12 decimals at most).
    #[arg(long)]
    pub amount: String,
}

#[derive(Debug, Args)]
pub struct BalanceArgs {
    /// SS58 address (or 0x public key).
    pub address: String,
    /// Node JSON-RPC URL.
    #[arg(long, default_value = DEFAULT_RPC_URL)]
    pub rpc: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn validator_requires_key() {
        assert!(
            Cli::try_parse_from(["neuroshard", "run", "--base-path", "x", "--validator"]).is_err()
        );
        assert!(Cli::try_parse_from([
            "neuroshard",
            "run",
            "--chain",
            "dev",
            "--base-path",
            "x",
            "--key",
            "//Alice",
            "--validator"
        ])
        .is_ok());
    }
}
