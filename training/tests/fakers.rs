//! Training fakers (issue 24): a holder of a shard that claims the training reward
//! without running its inner loop. Each fake is played for several rounds beside three
//! honest holders of the tiny random Llama: its receipt goes through the training
//! pallet, its payload through every holder's robust aggregate, and the round through
//! the validator's real verification (`gauntlet::verify_contributions`, replaying every
//! contribution on its worker's assigned data); what the pallet mints is what it earns.
//! The faker always claims the losses the verifier will replay (it computes them itself,
//! two forward passes), so it is never `Contradicted`: the only question is whether the
//! fake is paid.
//!
//! With `TRAINING_FAKERS_OUT=FILE` the test writes what it measured (per fake, the share
//! of faked receipts paid) for `neuroshard bench econ` (`docs/training-fakers.json`).

mod common;

use common::*;
use neuroshard_balances as balances;
use neuroshard_primitives::{
    AccountId, AdapterOutcome, ContributionOutcome, RoundVerification, UNIT,
};
use neuroshard_support::{Overlay, StateDb};
use neuroshard_training::gauntlet::{self, verify_contributions, Candidate, RoundContext};
use neuroshard_training::{codec, Contribution, ShardTrainer};
use neuroshard_training_pallet as training;
use sp_core::Pair as _;

/// Rounds each fake is played for.
const ROUNDS: u32 = 4;
/// The round's training reward.
const REWARD: u128 = 6 * UNIT;

/// What a faker submits in place of its own inner loop's pseudo-gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Fake {
    /// An all-zero pseudo-gradient.
    Zero,
    /// Noise of the norm of the previous round's honest pseudo-gradients.
    Noise,
    /// An honest holder's pseudo-gradient of the previous round, replayed verbatim
    /// (payloads are revealed once their round's window is over).
    StaleReplay,
    /// The same, scaled by 0.9 and with one coordinate in ten zeroed (another hash,
    /// cosine about 0.95 with the original).
    StaleTweaked,
}

impl Fake {
    fn name(self) -> &'static str {
        match self {
            Fake::Zero => "zero gradient",
            Fake::Noise => "noise",
            Fake::StaleReplay => "last round's gradient",
            Fake::StaleTweaked => "last round's, tweaked",
        }
    }

    /// The fake pseudo-gradient of a round, from the previous round's honest ones.
    fn forge(self, len: usize, previous: &[Vec<f32>], round: u32) -> Option<Vec<f32>> {
        let last = previous.first()?;
        Some(match self {
            Fake::Zero => vec![0.0; len],
            Fake::Noise => {
                let norm = last.iter().map(|v| v * v).sum::<f32>().sqrt();
                let noise: Vec<f32> = (0..len)
                    .map(|j| (((j as u32 * 7919 + round * 104_729) % 1000) as f32 / 500.0) - 1.0)
                    .collect();
                let k = norm / noise.iter().map(|v| v * v).sum::<f32>().sqrt().max(1e-12);
                noise.iter().map(|v| v * k).collect()
            }
            Fake::StaleReplay => last.clone(),
            Fake::StaleTweaked => last
                .iter()
                .enumerate()
                .map(|(j, v)| if j % 10 == 3 { 0.0 } else { 0.9 * v })
                .collect(),
        })
    }
}

/// What one fake earned over [`ROUNDS`] rounds.
#[derive(Debug)]
struct Played {
    fake: Fake,
    /// Rounds the faker submitted a fake in.
    faked: u32,
    /// Of them, rounds its fake was paid in.
    paid: u32,
    /// Its verdicts, round by round.
    outcomes: Vec<ContributionOutcome>,
    /// Honest receipts and how many of them were paid.
    honest: u32,
    honest_paid: u32,
    /// Minted to the faker and to each honest holder.
    faker_minted: u128,
    honest_minted: Vec<u128>,
}

fn apply(
    state: &mut StateDb,
    f: impl FnOnce(&mut Overlay<'_>) -> training::Result<()>,
) -> training::Result<()> {
    state.commit(f).map(drop)
}

/// The faker's receipt for `g`, claiming exactly what the verifier will replay on its
/// probe window.
fn forged(faker: &ShardTrainer, g: &[f32]) -> Contribution {
    let windows = faker.assigned();
    let probe = &windows[..gauntlet::PROBE_WINDOWS];
    let r = gauntlet::replay(
        faker.model(),
        faker.layout(),
        faker.adapter(),
        g,
        (faker.data(), probe),
    )
    .unwrap();
    faker.contribution(g, r.loss_before, r.loss_after).unwrap()
}

/// The drawn validator's verification of `round` of `contributions`, replayed on the
/// model and pool of `holder` (an honest holder, before it applies the round).
fn verify(holder: &ShardTrainer, contributions: &[Contribution], round: u32) -> RoundVerification {
    let ctx = RoundContext {
        model: holder.model(),
        layout: holder.layout(),
        pool: holder.data(),
        inner: &tiny_config().inner,
        shard: (tiny_hash(), holder.layers()),
        round,
        base: holder.adapter_hash(),
        theta_base: holder.adapter(),
    };
    let candidates: Vec<Candidate> = contributions
        .iter()
        .map(|c| Candidate {
            worker: c.receipt.body.worker.clone(),
            claimed: (c.receipt.body.loss_before, c.receipt.body.loss_after),
            pseudo_gradient: codec::decode(&c.payload, holder.layout().len, 1 << 24).ok(),
        })
        .collect();
    RoundVerification {
        model: tiny_hash(),
        layers: holder.layers(),
        round,
        checks: verify_contributions(&ctx, &candidates).unwrap(),
        adapter: AdapterOutcome::Adopted,
        held_out_before: 0,
        held_out_after: 0,
    }
}

/// Three honest holders and one faker playing `fake` for [`ROUNDS`] rounds through
/// the pallet.
fn play(fake: Fake) -> Played {
    let keys = [key(1), key(2), key(3), key(4)];
    let (_, mut holders) = tiny_holders(2..4, &keys);
    let layers = holders[0].layers();
    let accounts: Vec<AccountId> = keys.iter().map(|k| k.public().into()).collect();
    let faker = 3;
    let mut state = chain(&accounts, layers, REWARD);
    let verifier: AccountId = key(9).public().into();
    let validators = [(verifier.clone(), 1)];
    let verifiers = training::Verifiers {
        validators: &validators,
        randomness: Default::default(),
    };
    let mut played = Played {
        fake,
        faked: 0,
        paid: 0,
        outcomes: Vec::new(),
        honest: 0,
        honest_paid: 0,
        faker_minted: 0,
        honest_minted: Vec::new(),
    };
    let mut previous: Vec<Vec<f32>> = Vec::new();
    for round in 0..ROUNDS {
        let mut contributions = Vec::new();
        let mut honest = Vec::new();
        for h in &holders[..faker] {
            let u = h.train_local().unwrap();
            contributions.push(
                h.contribution(&u.pseudo_gradient, u.loss_before, u.loss_after)
                    .unwrap(),
            );
            honest.push(u.pseudo_gradient);
        }
        let len = holders[faker].layout().len;
        let fake_g = fake.forge(len, &previous, round);
        if let Some(g) = &fake_g {
            contributions.push(forged(&holders[faker], g));
            played.faked += 1;
        }
        for c in &contributions {
            apply(&mut state, |o| {
                training::submit_gradient_receipt(o, 1, &c.receipt)
            })
            .unwrap();
        }
        let v = verify(&holders[0], &contributions, round);
        let outcomes: Vec<_> = holders
            .iter_mut()
            .map(|h| h.apply_round(&contributions).unwrap())
            .collect();
        for (i, o) in outcomes.iter().enumerate().take(faker) {
            apply(&mut state, |ov| {
                training::report_round_result(ov, 2, &accounts[i], &o.result, &verifiers)
            })
            .unwrap();
        }
        let free = |state: &StateDb, a: &AccountId| balances::account(state, a).unwrap().free;
        let before: Vec<u128> = accounts.iter().map(|a| free(&state, a)).collect();
        apply(&mut state, |o| {
            training::submit_round_verification(
                o,
                2,
                std::slice::from_ref(&verifier),
                &verifier,
                &v,
            )
        })
        .unwrap();
        let gained: Vec<bool> = accounts
            .iter()
            .zip(&before)
            .map(|(a, b)| free(&state, a) > *b)
            .collect();
        played.honest += faker as u32;
        played.honest_paid += gained[..faker].iter().filter(|g| **g).count() as u32;
        if fake_g.is_some() {
            played.outcomes.push(v.checks[faker].outcome);
            played.paid += u32::from(gained[faker]);
        }
        previous = honest;
    }
    played.faker_minted = training::earned(&state, &accounts[faker]).unwrap();
    played.honest_minted = accounts[..faker]
        .iter()
        .map(|a| training::earned(&state, a).unwrap())
        .collect();
    played
}

/// The measured shares, as `bench econ` reads them.
fn write_measurement(path: &str, played: &[Played]) {
    let modes: Vec<String> = played
        .iter()
        .map(|p| {
            format!(
                "    {{ \"mode\": \"{}\", \"receipts\": {}, \"paid\": {:.4} }}",
                p.fake.name(),
                p.faked,
                f64::from(p.paid) / f64::from(p.faked.max(1))
            )
        })
        .collect();
    let (honest, paid) = played
        .iter()
        .fold((0, 0), |(h, p), x| (h + x.honest, p + x.honest_paid));
    let text = format!(
        "{{\n  \"produced_by\": \"TRAINING_FAKERS_OUT=FILE cargo test -p neuroshard-training --test fakers (tiny random Llama, 3 honest holders, {ROUNDS} rounds per fake)\",\n  \"honest_paid\": {:.4},\n  \"modes\": [\n{}\n  ]\n}}\n",
        f64::from(paid) / f64::from(honest.max(1)),
        modes.join(",\n")
    );
    std::fs::write(path, text).unwrap();
}

/// Ignored until it has run once: it was written on 2026-12-07 and its first run did not
/// finish on the loaded build host before the merge (issue 24's notes); whether each
/// fake is paid under today's rules is not known yet.
#[test]
#[ignore = "not run yet: first run pending (issue 24)"]
fn training_fakers_are_not_paid() {
    let played: Vec<Played> = [
        Fake::Zero,
        Fake::Noise,
        Fake::StaleReplay,
        Fake::StaleTweaked,
    ]
    .into_iter()
    .map(play)
    .collect();
    for p in &played {
        println!(
            "{:<52} faked {} rounds, paid in {}, verdicts {:?}, minted {} (honest {:?})",
            p.fake.name(),
            p.faked,
            p.paid,
            p.outcomes,
            p.faker_minted,
            p.honest_minted
        );
    }
    if let Ok(path) = std::env::var("TRAINING_FAKERS_OUT") {
        write_measurement(&path, &played);
    }
    for p in &played {
        assert_eq!(p.faked, ROUNDS - 1, "{p:?}");
        assert!(
            p.honest_minted.iter().all(|m| *m > 0),
            "honest holders unpaid: {p:?}"
        );
        assert_eq!(p.paid, 0, "the faker was paid: {p:?}");
        assert_eq!(p.faker_minted, 0, "{p:?}");
    }
}
