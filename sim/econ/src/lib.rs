//! `neuroshard bench econ`: a seeded agent-based simulation of the PoNW economy whose
//! blocks are built and imported by the real runtime (`neuroshard_runtime`), over the
//! dev chain's parameters. Honest workers, lazy workers, Sybil uptime farmers,
//! self-dealing client+worker pairs, a colluding validator with its partners,
//! non-paying clients and spammers play on one chain, and honest trainers beside
//! training fakers play the middle range's training rounds ([`training`]); the
//! adversaries' grid (cheat mode, cheat rate, accounts, answering or hiding when
//! checked, the fake) runs side by side.
//! Detection rates come from `bench verify`'s measurement ([`detection`]), compute costs
//! from stated prices ([`costs`]); balances, rewards, fees, slashes and forfeits are
//! the runtime's. See docs/ECONOMICS.md for what is executed and what is an input.

pub mod agents;
pub mod chain;
pub mod costs;
pub mod detection;
pub mod genesis;
pub mod ledger;
pub mod report;
pub mod training;
pub mod work;
pub mod world;

use agents::{roster, Strategy};
use anyhow::{ensure, Result};
use chain::{Chain, Key};
use costs::{nshd, nshd_signed, Prices};
use detection::Detection;
use genesis::{Endowments, StandIn, VALIDATORS, VALIDATOR_BOND};
use ledger::Ledger;
use neuroshard_primitives::{Balance, UNIT};
use neuroshard_runtime::ponw::escrow;
use rand::SeedableRng;
use report::{Report, Row};
use std::collections::HashMap;
use world::{Load, World};

/// What to simulate.
#[derive(Clone, Debug)]
pub struct EconOptions {
    pub epochs: u64,
    pub seed: u64,
    pub honest_per_range: usize,
    pub clients: usize,
    pub requests_per_block: usize,
    pub prices: Prices,
    /// Import every block as well as building it.
    pub import: bool,
    /// Workers' nodes keep serving clients whose escrow release is requested (the
    /// rule before the release race was found; for the "before" figures).
    pub serve_releasing: bool,
    pub print_progress: bool,
}

impl Default for EconOptions {
    fn default() -> Self {
        Self {
            epochs: 1_000,
            seed: 1,
            honest_per_range: 3,
            clients: 4,
            requests_per_block: 1,
            prices: Prices::default(),
            import: true,
            serve_releasing: false,
            print_progress: false,
        }
    }
}

/// Runs the simulation.
pub fn run(opts: &EconOptions, detection: &Detection) -> Result<Report> {
    detection.validate()?;
    ensure!(
        opts.epochs > 0 && opts.clients > 0,
        "epochs and clients must be positive"
    );
    let mut shards = Vec::new();
    let mut params = genesis::dev_params(&mut shards)?;
    params.training.training_reward = training::SIM_TRAINING_REWARD;
    let fakes = training::TrainingFakes::checked_in()?;
    let stand_in = StandIn::new(shards, params.ponw.model.num_layers)?;
    let blocks = opts.epochs * params.system.epoch_length;
    // A full-model request's fees, times what clients order over the run, with margin.
    let per_request = escrow::fee_for(&params.ponw, 32 * u64::from(params.ponw.model.num_layers)).0;
    let ordered = Balance::from(blocks) * opts.requests_per_block as Balance;
    let escrow_amount = per_request * ordered * 2 + 1_000 * UNIT;
    let endow = Endowments {
        worker: 2 * params.ponw.worker_bond + 1_000 * UNIT,
        client: escrow_amount + 1_000 * UNIT,
        validator: VALIDATOR_BOND + 100_000 * UNIT,
    };
    let load = Load {
        requests_per_block: opts.requests_per_block,
        tokens: 32,
        self_deals_per_block: 1,
        escrow: escrow_amount,
        nonpayer_escrow: per_request * 30,
        serve_releasing: opts.serve_releasing,
    };
    let mut agents = roster(detection, opts.honest_per_range, opts.clients)?;
    for strategy in training::strategies(&fakes) {
        agents.push(agents::agent(agents.len(), strategy)?);
    }
    let validators = (0..VALIDATORS)
        .map(|v| Key::from_uri(&format!("//econ/validator/{v}")))
        .collect::<Result<Vec<_>>>()?;
    let config = genesis::config(params.clone(), &stand_in, &validators, &agents, endow);
    let endowment: HashMap<_, _> = config.balances.iter().cloned().collect();
    let keys: Vec<Key> = agents
        .iter()
        .flat_map(|a| a.workers.iter().chain(a.client.iter()).cloned())
        .chain(validators.iter().cloned())
        .collect();
    let mut chain = Chain::new(&config, &keys)?;
    chain.import = opts.import;
    let rng = rand::rngs::StdRng::seed_from_u64(opts.seed);
    let mut world = World::new(
        chain,
        agents,
        validators,
        stand_in,
        detection.clone(),
        load,
        rng,
    )?;
    let mut rounds = training::Rounds::new(&world, fakes.clone(), opts.seed)?;
    let mut ledger = Ledger::default();
    let started = std::time::Instant::now();
    for b in 0..blocks {
        world.injected = rounds.calls(&mut world, true)?;
        let outcome = world.step(true)?;
        ledger.record(&outcome.events);
        if opts.print_progress && (b + 1) % (100 * params.system.epoch_length) == 0 {
            eprintln!(
                "econ: epoch {} of {} ({:.0} s)",
                (b + 1) / params.system.epoch_length,
                opts.epochs,
                started.elapsed().as_secs_f64()
            );
        }
    }
    // Drain: no new work; the last receipts settle or are checked, the last epoch pays.
    let drain = 4 * params.ponw.spot_check_blocks + 2 * params.system.epoch_length;
    for _ in 0..drain {
        world.injected = rounds.calls(&mut world, false)?;
        ledger.record(&world.step(false)?.events);
    }
    let rows = rows(&world, &ledger, &endowment, opts, &params)?;
    let header = format!(
        "econ: {} epochs of {} blocks ({} s slots) on the dev chain's parameters, seed {}; \
         {} honest workers per range, {} clients x {} request(s) of 32 tokens per block; \
         prices {} NSHD/layer-token, {} NSHD/machine-minute; detection from {}; \
         training: {} honest trainers, {} NSHD per round, fakes paid as measured by {}",
        opts.epochs,
        params.system.epoch_length,
        params.system.slot_duration_ms / 1000,
        opts.seed,
        opts.honest_per_range,
        opts.clients,
        opts.requests_per_block,
        opts.prices.layer_token,
        opts.prices.machine_minute,
        detection.produced_by,
        training::HONEST_TRAINERS,
        nshd(training::SIM_TRAINING_REWARD),
        fakes.produced_by
    );
    Ok(Report::new(header, rows))
}

/// One row per agent, from the ledger and the runtime's final balances.
fn rows(
    world: &World,
    ledger: &Ledger,
    endowment: &HashMap<neuroshard_primitives::AccountId, Balance>,
    opts: &EconOptions,
    params: &neuroshard_runtime::RuntimeParams,
) -> Result<Vec<Row>> {
    let state = &world.chain.state;
    let fee_per_layer_token =
        nshd(params.ponw.client_fee_per_token) / f64::from(params.ponw.model.num_layers);
    let mut rows = Vec::new();
    for (i, agent) in world.agents.iter().enumerate() {
        let (mut capital, mut end, mut fees_paid) = (0i128, 0i128, 0i128);
        let mut flows = ledger::Flows::default();
        for who in agent.accounts() {
            let info = world
                .runtime()
                .account(state, &who)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let f = ledger.of(&who);
            let left = escrow::escrow(state, &who)
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .amount;
            capital += endowment.get(&who).copied().unwrap_or(0) as i128;
            end += (info.free + info.reserved + info.bonded) as i128;
            fees_paid += f.deposited as i128 - f.withdrawn as i128 - left as i128;
            flows.rewards += f.rewards;
            flows.fees_earned += f.fees_earned;
            flows.slashed += f.slashed;
            flows.tx_fees += f.tx_fees;
        }
        let net = end - capital;
        let flow_net = flows.rewards as i128 + flows.fees_earned as i128
            - fees_paid
            - flows.slashed as i128
            - flows.tx_fees as i128;
        ensure!(
            net == flow_net,
            "agent {i}: balances changed by {net} but the events add up to {flow_net}"
        );
        let compute = world.bills[i].cost(&opts.prices);
        let value = match agent.strategy {
            Strategy::Client | Strategy::NonPayer => world.served[i] as f64 * fee_per_layer_token,
            _ => 0.0,
        };
        let capital = nshd_signed(capital);
        let profit = nshd_signed(net) - compute + value;
        rows.push(Row {
            label: agent.strategy.label(world.detection_ref()),
            family: agent.strategy.family(),
            strategy: agent.strategy.clone(),
            capital,
            compute,
            rewards: nshd(flows.rewards),
            fees_earned: nshd(flows.fees_earned),
            fees_paid: nshd_signed(fees_paid),
            tx_fees: nshd(flows.tx_fees),
            slashed: nshd(flows.slashed),
            value,
            profit,
            roi: profit / (capital + compute),
            vs_honest: 0.0,
        });
    }
    Ok(rows)
}
