//! One block of the simulated economy: what every agent submits (receipt batches,
//! heartbeats, validators' liveness reports and spot-check verdicts, escrow moves,
//! re-registrations, spam), the block the real runtime builds from it, and the work
//! clients order for the next block. The off-chain parts the runtime cannot see are
//! inputs here, each at a measured or stated rate: the throughput a probe proves (the
//! reference for a reference machine, a K-th of the measured split for K accounts of
//! one machine, nothing for a machine that does not exist unless its prober lies),
//! whether a re-run of a cheated receipt fails (the mode's measured detection), and a
//! worker's node serving a client only while the client's escrow covers the work.

use crate::agents::{Agent, Strategy};
use crate::chain::{BlockOutcome, Chain, Key};
use crate::costs::ComputeBill;
use crate::detection::Detection;
use crate::genesis::{shards_of, StandIn};
use crate::work::{is_one_of, receipt, verdict, Note, Order, Stance};
use anyhow::{anyhow, Result};
use neuroshard_primitives::{AccountId, Balance, Call, Hash, PonwCall, Receipt, SignedExtrinsic};
use neuroshard_runtime::ponw::{self, escrow, spot_checks};
use neuroshard_runtime::{system, Runtime};
use rand::rngs::StdRng;
use rand::Rng;
use std::collections::{HashMap, HashSet};

/// The load: what ordinary clients and self-dealers order per block.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Requests per ordinary client per block (each one receipt per range).
    pub requests_per_block: usize,
    /// Positions per request.
    pub tokens: u32,
    /// Requests per block a self-dealing client sends its own worker.
    pub self_deals_per_block: usize,
    /// Escrow an ordinary or self-dealing client deposits (base units).
    pub escrow: Balance,
    /// Escrow a non-paying client deposits per cycle.
    pub nonpayer_escrow: Balance,
    /// Workers' nodes serve a client whose escrow release is requested (the node's
    /// rule before `bench econ` found the release race; now they refuse it).
    pub serve_releasing: bool,
}

/// Where a non-paying client is in its cycle.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cycle {
    Deposit,
    RequestRelease,
    Buying,
}

/// The agents on their chain.
pub struct World {
    pub chain: Chain,
    pub agents: Vec<Agent>,
    pub validators: Vec<Key>,
    pub bills: Vec<ComputeBill>,
    /// Layer-tokens of work each client agent was served, paid or not (faked work
    /// included: it is what the client ordered and the same for every client).
    pub served: Vec<u64>,
    /// Signed calls other parts of the simulation queued for the next block (first in
    /// it): the training rounds' ([`crate::training`]).
    pub injected: Vec<SignedExtrinsic>,
    pub(crate) owner: HashMap<AccountId, usize>,
    stand_in: StandIn,
    detection: Detection,
    load: Load,
    rng: StdRng,
    notes: HashMap<Hash, Note>,
    answered: HashSet<(Hash, AccountId, usize)>,
    outbox: Vec<(usize, Receipt)>,
    minute_done: Option<u64>,
    session: u64,
    cycles: HashMap<usize, Cycle>,
    reference: u64,
}

impl World {
    pub fn new(
        chain: Chain,
        agents: Vec<Agent>,
        validators: Vec<Key>,
        stand_in: StandIn,
        detection: Detection,
        load: Load,
        rng: StdRng,
    ) -> Result<Self> {
        let owner = agents
            .iter()
            .enumerate()
            .flat_map(|(i, a)| a.accounts().into_iter().map(move |acc| (acc, i)))
            .collect();
        let reference = ponw::params(&chain.state)
            .map_err(|e| anyhow!("{e}"))?
            .probe
            .reference_throughput;
        let n = agents.len();
        Ok(Self {
            chain,
            agents,
            validators,
            bills: vec![ComputeBill::default(); n],
            served: vec![0; n],
            injected: Vec::new(),
            owner,
            stand_in,
            detection,
            load,
            rng,
            notes: HashMap::new(),
            answered: HashSet::new(),
            outbox: Vec::new(),
            minute_done: None,
            session: 0,
            cycles: HashMap::new(),
            reference,
        })
    }

    /// The colluding validator.
    fn colluder(&self) -> &AccountId {
        &self.validators[self.validators.len() - 1].account
    }

    /// One block. `active`: agents work, farm and order; otherwise only the checks and
    /// the receipts already signed are carried through (the drain at the end).
    pub fn step(&mut self, active: bool) -> Result<BlockOutcome> {
        let mut xts = std::mem::take(&mut self.injected);
        if active {
            self.escrow_moves(&mut xts)?;
        }
        self.submit_outbox(&mut xts)?;
        if active {
            self.minute_tasks(&mut xts)?;
            self.reregister(&mut xts)?;
            self.spam(&mut xts)?;
        }
        self.verdicts(&mut xts)?;
        let outcome = self.chain.produce(xts)?;
        if active {
            self.order()?;
        }
        Ok(outcome)
    }

    /// Clients' escrow deposits (first block) and the non-payers' cycles. The
    /// non-payers' calls go first in the block: the worst case for the workers whose
    /// receipts follow.
    fn escrow_moves(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let number = self.chain.head.number + 1;
        for i in 0..self.agents.len() {
            let Some(client) = self.agents[i].client.clone() else {
                continue;
            };
            let call = match self.agents[i].strategy {
                Strategy::Client | Strategy::SelfDealer { .. } | Strategy::ValidatorSelfDealer
                    if number == 1 =>
                {
                    Some(PonwCall::DepositEscrow {
                        amount: self.load.escrow,
                    })
                }
                Strategy::NonPayer => self.nonpayer_call(i, &client.account, number)?,
                _ => None,
            };
            if let Some(call) = call {
                xts.push(self.chain.sign(&client.account, Call::Ponw(call))?);
            }
        }
        Ok(())
    }

    /// The non-payer's next escrow call: deposit, request the release at once, buy work
    /// until the release is due, withdraw, start over.
    fn nonpayer_call(
        &mut self,
        i: usize,
        who: &AccountId,
        number: u64,
    ) -> Result<Option<PonwCall>> {
        let e = escrow::escrow(&self.chain.state, who).map_err(|e| anyhow!("{e}"))?;
        let cycle = *self.cycles.get(&i).unwrap_or(&Cycle::Deposit);
        let (call, next) = match cycle {
            Cycle::Deposit if e.release_at.is_none() => (
                Some(PonwCall::DepositEscrow {
                    amount: self.load.nonpayer_escrow,
                }),
                Cycle::RequestRelease,
            ),
            Cycle::RequestRelease if e.amount > 0 => {
                (Some(PonwCall::RequestEscrowRelease), Cycle::Buying)
            }
            Cycle::Buying if e.release_at.is_some_and(|at| at <= number) => {
                (Some(PonwCall::WithdrawEscrow), Cycle::Deposit)
            }
            other => (None, other),
        };
        self.cycles.insert(i, next);
        Ok(call)
    }

    /// Every receipt signed after the last block, in one batch per worker, submitted by
    /// the worker (as its node does).
    fn submit_outbox(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let mut by_worker: Vec<(AccountId, Vec<Receipt>)> = Vec::new();
        for (_, r) in std::mem::take(&mut self.outbox) {
            match by_worker.iter_mut().find(|(w, _)| *w == r.body.worker) {
                Some((_, batch)) => batch.push(r),
                None => by_worker.push((r.body.worker.clone(), vec![r])),
            }
        }
        for (worker, receipts) in by_worker {
            let call = Call::Ponw(PonwCall::SubmitReceipts { receipts });
            xts.push(self.chain.sign(&worker, call)?);
        }
        Ok(())
    }

    /// The second block of every minute: every worker account's heartbeat, every
    /// validator's liveness report, and a machine-minute on every machine's bill.
    fn minute_tasks(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let p = system::params(&self.chain.state).map_err(|e| anyhow!("{e}"))?;
        let minute = system::minute_of_slot(&p, self.chain.next_slot());
        let seeded = ponw::MINUTE_SEED
            .get(&self.chain.state)
            .map_err(|e| anyhow!("{e}"))?
            .is_some_and(|(m, _)| m == minute);
        if !seeded || self.minute_done == Some(minute) {
            return Ok(());
        }
        self.minute_done = Some(minute);
        for i in 0..self.agents.len() {
            if self.agents[i].strategy.has_machine() {
                self.bills[i].machine_minutes += 1.0;
            }
            for w in self.agents[i].workers.clone() {
                let challenge =
                    ponw::challenge(&self.chain.state, &w.account).map_err(|e| anyhow!("{e}"))?;
                if let Some(c) = challenge.filter(|c| c.minute == minute) {
                    let (chunk, proof) = self.stand_in.answer(c.layer, c.chunk_index);
                    let call = Call::Ponw(PonwCall::Heartbeat {
                        minute,
                        chunk,
                        proof,
                    });
                    xts.push(self.chain.sign(&w.account, call)?);
                }
            }
        }
        let ids: Vec<AccountId> = self.validators.iter().map(|v| v.account.clone()).collect();
        for v in &ids {
            let tasks =
                ponw::probe_tasks(&self.chain.state, &ids, v).map_err(|e| anyhow!("{e}"))?;
            let (mut answered, mut failed) = (Vec::new(), Vec::new());
            for task in tasks {
                match self.probe_outcome(v, &task.worker) {
                    0 => failed.push(task.worker),
                    t => answered.push((task.worker, t)),
                }
            }
            if !answered.is_empty() || !failed.is_empty() {
                let call = Call::Ponw(PonwCall::ReportLiveness {
                    minute,
                    answered,
                    failed,
                });
                xts.push(self.chain.sign(v, call)?);
            }
        }
        Ok(())
    }

    /// The throughput `prober`'s probe of `worker` proves (0: failed).
    fn probe_outcome(&self, prober: &AccountId, worker: &AccountId) -> u64 {
        let Some(&i) = self.owner.get(worker) else {
            return 0;
        };
        match self.agents[i].strategy {
            Strategy::Honest { .. } | Strategy::Lazy { .. } => self.reference,
            Strategy::SybilFarmer { accounts } => {
                let split = if accounts == 1 {
                    1.0
                } else {
                    self.detection.sybil_split_ratio
                };
                (self.reference as f64 * split / accounts as f64) as u64
            }
            Strategy::ValidatorUptime { .. } if prober == self.colluder() => self.reference,
            _ => 0,
        }
    }

    /// Cheaters whose worker was deregistered by a slash register again (from the
    /// spare bond they were endowed with).
    fn reregister(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let bond = ponw::params(&self.chain.state)
            .map_err(|e| anyhow!("{e}"))?
            .worker_bond;
        for i in 0..self.agents.len() {
            let strategy = self.agents[i].strategy.clone();
            if matches!(
                strategy,
                Strategy::Honest { .. } | Strategy::SybilFarmer { .. }
            ) {
                continue;
            }
            for w in self.agents[i].workers.clone() {
                let state = &self.chain.state;
                let registered = ponw::worker(state, &w.account).map_err(|e| anyhow!("{e}"))?;
                let free = self
                    .chain
                    .runtime
                    .account(state, &w.account)
                    .map_err(|e| anyhow!("{e}"))?
                    .free;
                if registered.is_none() && free > bond + neuroshard_primitives::UNIT {
                    let call = Call::Ponw(PonwCall::RegisterWorker {
                        model: self.stand_in.hash,
                        shards: shards_of(&strategy, &self.stand_in),
                    });
                    xts.push(self.chain.sign(&w.account, call)?);
                }
            }
        }
        Ok(())
    }

    /// Spammers' failing receipt batches (fee paid) and invalid free heartbeats.
    fn spam(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        for i in 0..self.agents.len() {
            let Strategy::Spammer { per_block } = self.agents[i].strategy else {
                continue;
            };
            let Some(me) = self.agents[i].client.clone() else {
                continue;
            };
            for _ in 0..per_block {
                self.session += 1;
                let mut forged = receipt(&Order {
                    worker: &me.pair,
                    client: &me.pair,
                    model: self.stand_in.hash,
                    layers: self.stand_in.shards[0],
                    session: self.session,
                    epoch: self.epoch()?,
                    tokens: self.load.tokens,
                });
                // Claims an honest worker's work under a signature it cannot make.
                forged.body.worker = self.agents[0].workers[0].account.clone();
                let call = Call::Ponw(PonwCall::SubmitReceipts {
                    receipts: vec![forged],
                });
                xts.push(self.chain.sign(&me.account, call)?);
            }
            let call = Call::Ponw(PonwCall::Heartbeat {
                minute: 0,
                chunk: vec![0; 1024],
                proof: vec![],
            });
            xts.push(self.chain.sign(&me.account, call)?);
            self.bills[i].extrinsics += per_block as f64 + 1.0;
        }
        Ok(())
    }

    /// Every pending check's drawn checker answers it once per assignment.
    fn verdicts(&mut self, xts: &mut Vec<SignedExtrinsic>) -> Result<()> {
        let pending = spot_checks::all_pending(&self.chain.state).map_err(|e| anyhow!("{e}"))?;
        for (id, check) in pending {
            let key = (id, check.checker.clone(), check.round());
            if !self.validators.iter().any(|v| v.account == check.checker)
                || !self.answered.insert(key)
            {
                continue;
            }
            let note = self.notes.get(&id).copied();
            let Some(agent) = note.map(|n| n.agent) else {
                continue;
            };
            let stance = self.stance(agent, &check.checker);
            let worker = self.agents[agent]
                .workers
                .iter()
                .find(|k| k.account == check.body.worker)
                .ok_or_else(|| anyhow!("no key for the checked worker"))?
                .pair
                .clone();
            let (verdict, evidence) = verdict(id, &check.body, note.as_ref(), stance, &worker);
            let call = Call::Ponw(PonwCall::SubmitSpotCheck {
                receipt: id,
                verdict,
                evidence,
            });
            xts.push(self.chain.sign(&check.checker, call)?);
        }
        Ok(())
    }

    /// How `agent`'s worker meets `checker`.
    fn stance(&self, agent: usize, checker: &AccountId) -> Stance {
        use crate::agents::OnCheck;
        match &self.agents[agent].strategy {
            Strategy::ValidatorSelfDealer | Strategy::ValidatorUptime { .. }
                if checker == self.colluder() =>
            {
                Stance::Accomplice
            }
            Strategy::Lazy {
                on_check: OnCheck::Hide,
                ..
            }
            | Strategy::SelfDealer { .. }
            | Strategy::ValidatorSelfDealer => Stance::Hide,
            _ => Stance::Answer,
        }
    }

    /// The epoch of the next block (receipts signed now are included in it).
    fn epoch(&self) -> Result<u32> {
        let p = system::params(&self.chain.state).map_err(|e| anyhow!("{e}"))?;
        Ok(system::epoch_of(self.chain.head.number + 1, p.epoch_length))
    }

    /// Clients order the next block's work.
    fn order(&mut self) -> Result<()> {
        for i in 0..self.agents.len() {
            match self.agents[i].strategy {
                Strategy::Client => {
                    for _ in 0..self.load.requests_per_block {
                        self.market_request(i)?;
                    }
                }
                Strategy::NonPayer if self.cycles.get(&i) == Some(&Cycle::Buying) => {
                    for _ in 0..self.load.requests_per_block {
                        self.market_request(i)?;
                    }
                }
                Strategy::SelfDealer { fake_rate } => self.self_deal(i, fake_rate)?,
                Strategy::ValidatorSelfDealer => self.self_deal(i, 1.0)?,
                _ => {}
            }
        }
        Ok(())
    }

    /// One request of client agent `c` through the whole model, each range served by a
    /// worker drawn among those registered for it, which serves only while the client's
    /// escrow covers what it already owes them and this request.
    fn market_request(&mut self, c: usize) -> Result<()> {
        let client = self.agents[c]
            .client
            .clone()
            .ok_or_else(|| anyhow!("no client"))?;
        let p = ponw::params(&self.chain.state).map_err(|e| anyhow!("{e}"))?;
        let owed: Balance = self
            .outbox
            .iter()
            .filter(|(_, r)| r.body.client == client.account)
            .map(|(_, r)| escrow::fee_for(&p, layer_tokens(&r.body)).0)
            .sum();
        let funds =
            escrow::escrow(&self.chain.state, &client.account).map_err(|e| anyhow!("{e}"))?;
        if funds.release_at.is_some() && !self.load.serve_releasing {
            return Ok(());
        }
        let have = funds.amount;
        self.session += 1;
        for range in 0..self.stand_in.shards.len() {
            let layers = self.stand_in.shards[range];
            let fee = escrow::fee_for(&p, u64::from(self.load.tokens) * u64::from(layers.len())).0;
            if have < owed + fee * (range as u128 + 1) {
                return Ok(());
            }
            let candidates = self.serving(range)?;
            if candidates.is_empty() {
                continue;
            }
            let w = candidates[self.rng.gen_range(0..candidates.len())];
            let (cheated, saved, detectable) = match self.agents[w].strategy {
                Strategy::Lazy { mode, rate, .. } => {
                    let m = &self.detection.modes[mode];
                    let cheated = self.rng.gen_bool(rate);
                    (cheated, m.saved, cheated && self.rng.gen_bool(m.rejected))
                }
                _ => (false, 0.0, false),
            };
            let worker = self.agents[w].workers[0].clone();
            self.sign_work(w, c, &worker, &client, range, cheated, saved, detectable)?;
        }
        Ok(())
    }

    /// A self-dealer's request to its own worker: every range, faked with `fake_rate`
    /// by the greediest measured mode.
    fn self_deal(&mut self, i: usize, fake_rate: f64) -> Result<()> {
        let client = self.agents[i]
            .client
            .clone()
            .ok_or_else(|| anyhow!("no client"))?;
        let worker = self.agents[i].workers[0].clone();
        if ponw::worker(&self.chain.state, &worker.account)
            .map_err(|e| anyhow!("{e}"))?
            .is_none()
        {
            return Ok(());
        }
        let mode = self.detection.greediest().clone();
        for _ in 0..self.load.self_deals_per_block {
            self.session += 1;
            for range in 0..self.stand_in.shards.len() {
                let cheated = self.rng.gen_bool(fake_rate);
                let detectable = cheated && self.rng.gen_bool(mode.rejected);
                self.sign_work(
                    i, i, &worker, &client, range, cheated, mode.saved, detectable,
                )?;
            }
        }
        Ok(())
    }

    /// Signs the receipt of one range of the current session, bills its compute to the
    /// worker's agent and credits its value to the client's, and queues it.
    #[allow(clippy::too_many_arguments)]
    fn sign_work(
        &mut self,
        w: usize,
        c: usize,
        worker: &Key,
        client: &Key,
        range: usize,
        cheated: bool,
        saved: f64,
        detectable: bool,
    ) -> Result<()> {
        let r = receipt(&Order {
            worker: &worker.pair,
            client: &client.pair,
            model: self.stand_in.hash,
            layers: self.stand_in.shards[range],
            session: self.session,
            epoch: self.epoch()?,
            tokens: self.load.tokens,
        });
        let lt = layer_tokens(&r.body);
        let done = if cheated { 1.0 - saved } else { 1.0 };
        self.bills[w].layer_tokens += lt as f64 * done;
        self.served[c] += lt;
        self.notes.insert(
            r.body.id(),
            Note {
                agent: w,
                cheated,
                detectable,
            },
        );
        self.outbox.push((w, r));
        Ok(())
    }

    /// The agents serving `range` whose worker is registered.
    fn serving(&self, range: usize) -> Result<Vec<usize>> {
        let mut out = Vec::new();
        for (i, a) in self.agents.iter().enumerate() {
            if a.strategy.serves_range() != Some(range) {
                continue;
            }
            let registered = ponw::worker(&self.chain.state, &a.workers[0].account)
                .map_err(|e| anyhow!("{e}"))?
                .is_some();
            if registered {
                out.push(i);
            }
        }
        Ok(out)
    }

    /// Whether `who` belongs to the colluding validator's partners.
    pub fn is_validator(&self, who: &AccountId) -> bool {
        is_one_of(who, &self.validators)
    }

    /// The measured detection the world plays with.
    pub fn detection_ref(&self) -> &Detection {
        &self.detection
    }

    /// The runtime (for the report's final balances).
    pub fn runtime(&self) -> &Runtime {
        &self.chain.runtime
    }
}

/// Positions times layers of a receipt.
pub fn layer_tokens(body: &neuroshard_primitives::ReceiptBody) -> u64 {
    u64::from(body.tokens()) * u64::from(body.layers.len())
}
