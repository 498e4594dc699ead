//! DiLoCo rounds among in-process holders of one shard of the tiny random Llama: the
//! held-out loss goes down, every holder ends each round with the same adapter and
//! serves the same output with it, and a poisoned holder is excluded by the robust
//! aggregate and, through the training pallet, earns no reward while the honest do.

mod common;

use common::*;
use neuroshard_balances as balances;
use neuroshard_inference::executor::{argmax_rows, ExecInput};
use neuroshard_inference::ShardExecutor;
use neuroshard_primitives::{
    AccountId, AdapterOutcome, ContributionOutcome as O, Hash, RoundVerification, UNIT,
};
use neuroshard_support::{Overlay, StateDb};
use neuroshard_training::codec;
use neuroshard_training::corpus::{byte_tokens, HELD_OUT};
use neuroshard_training::gauntlet::{verify_contributions, Candidate, RoundContext};
use neuroshard_training::in_process::run_round_in_process;
use neuroshard_training::{Contribution, Dataset, InProcessExchange, ShardTrainer};
use neuroshard_training_pallet as training;
use sp_core::Pair as _;

/// Greedy continuation of `prompt` by the whole model with `t`'s adapter merged in.
fn greedy(t: &ShardTrainer, prompt: &str, n: usize) -> Vec<u32> {
    let exec = ShardExecutor::new(t.merged_weights(&tiny_weights()).unwrap()).unwrap();
    let mut cache = exec.new_cache();
    let mut tokens = byte_tokens(prompt);
    let mut pos = 0;
    for _ in 0..n {
        let h = exec
            .forward(&mut cache, ExecInput::Tokens(&tokens[pos..]), pos)
            .unwrap();
        pos = tokens.len();
        let next = *argmax_rows(&exec.head(&h).unwrap())
            .unwrap()
            .last()
            .unwrap();
        tokens.push(next);
    }
    tokens
}

#[test]
fn three_holders_lower_held_out_loss_and_serve_the_same_adapter() {
    let keys = [key(1), key(2), key(3)];
    let (model, mut holders) = tiny_holders(2..4, &keys);
    let held_out = Dataset::new(&model, &byte_tokens(HELD_OUT), SEQ, 64).unwrap();
    let exchange = InProcessExchange::new(1 << 24);
    let base_output = greedy(&holders[0], "The fox ", 24);
    let mut losses = vec![holders[0].evaluate(&held_out, 8).unwrap()];
    for round in 0..4 {
        let (outcomes, _) = run_round_in_process(&mut holders, &exchange).unwrap();
        for o in &outcomes {
            assert_eq!(
                o.result, outcomes[0].result,
                "holders disagree in round {round}"
            );
            assert_eq!(o.accepted.len(), 3, "an honest holder was excluded");
            assert_eq!(o.invalid, 0);
        }
        let version = holders[0].adapter_hash();
        assert!(holders.iter().all(|h| h.adapter_hash() == version));
        assert_eq!(outcomes[0].result.adapter, version);
        losses.push(holders[0].evaluate(&held_out, 8).unwrap());
    }
    println!("tiny model, 3 holders, held-out loss by round: {losses:?}");
    assert!(
        losses.windows(2).all(|w| w[1] < w[0]),
        "held-out loss did not fall every round: {losses:?}"
    );
    // Every node serves the new adapter version and generates the same text with it,
    // which differs from the base model's.
    let outputs: Vec<Vec<u32>> = holders.iter().map(|h| greedy(h, "The fox ", 24)).collect();
    assert!(outputs.iter().all(|o| *o == outputs[0]));
    assert_ne!(
        outputs[0], base_output,
        "the trained adapter changed nothing"
    );
}

/// The validator's verification of `round` (from adapter `base`, values `theta`) of
/// `contributions` (in the chain's order), replayed on `holder`'s model and pool.
fn verify(
    holder: &ShardTrainer,
    contributions: &[Contribution],
    (round, base, theta): (u32, Hash, &[f32]),
) -> RoundVerification {
    let ctx = RoundContext {
        model: holder.model(),
        layout: holder.layout(),
        pool: holder.data(),
        inner: &tiny_config().inner,
        shard: (tiny_hash(), holder.layers()),
        round,
        base,
        theta_base: theta,
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

fn apply(
    state: &mut StateDb,
    f: impl FnOnce(&mut Overlay<'_>) -> training::Result<()>,
) -> training::Result<()> {
    state.commit(f).map(drop)
}

#[test]
fn poisoned_holder_is_excluded_and_earns_nothing() {
    let keys = [key(1), key(2), key(3), key(4)];
    let (_, mut holders) = tiny_holders(2..4, &keys);
    let layers = holders[0].layers();
    let accounts: Vec<AccountId> = keys.iter().map(|k| k.public().into()).collect();
    let mut state = chain(&accounts, layers, 5 * UNIT);
    let verifier: AccountId = key(9).public().into();
    let validators = [(verifier.clone(), 1)];
    let verifiers = training::Verifiers {
        validators: &validators,
        randomness: Default::default(),
    };
    let poisoner = 2;
    for (round, scale) in [(0u32, -10.0f32), (1, 0.0)] {
        // Everyone trains; the poisoner scales its pseudo-gradient (round 0) or replaces
        // it with noise of the same norm (round 1) before signing and sharing it.
        let contributions: Vec<_> = holders
            .iter()
            .enumerate()
            .map(|(i, h)| {
                let u = h.train_local().unwrap();
                let mut g = u.pseudo_gradient.clone();
                if i == poisoner {
                    if scale != 0.0 {
                        g.iter_mut().for_each(|v| *v *= scale);
                    } else {
                        let norm = g.iter().map(|v| v * v).sum::<f32>().sqrt();
                        let noise: Vec<f32> = (0..g.len())
                            .map(|j| ((j * 7919 % 1000) as f32 / 500.0) - 1.0)
                            .collect();
                        let k = norm / noise.iter().map(|v| v * v).sum::<f32>().sqrt();
                        g = noise.iter().map(|v| v * k).collect();
                    }
                }
                h.contribution(&g, u.loss_before, u.loss_after).unwrap()
            })
            .collect();
        for c in &contributions {
            apply(&mut state, |o| {
                training::submit_gradient_receipt(o, 1, &c.receipt)
            })
            .unwrap();
        }
        let (base, theta_base) = (holders[0].adapter_hash(), holders[0].adapter().to_vec());
        let outcomes: Vec<_> = holders
            .iter_mut()
            .map(|h| h.apply_round(&contributions).unwrap())
            .collect();
        for o in &outcomes {
            assert_eq!(o.result, outcomes[0].result);
            assert_eq!(
                o.rejected,
                vec![accounts[poisoner].clone()],
                "round {round}"
            );
            assert_eq!(o.accepted.len(), 3);
        }
        // The poisoner reports a forged result accepting everyone; the honest majority
        // reports the real aggregate, which closes the round.
        let mut forged = outcomes[poisoner].result.clone();
        forged.accepted = contributions
            .iter()
            .map(|c| c.receipt.body.pseudo_gradient)
            .collect();
        forged.accepted.sort();
        apply(&mut state, |o| {
            training::report_round_result(o, 2, &accounts[poisoner], &forged, &verifiers)
        })
        .unwrap();
        for i in [0, 1, 3] {
            apply(&mut state, |o| {
                training::report_round_result(o, 2, &accounts[i], &outcomes[i].result, &verifiers)
            })
            .unwrap();
        }
        let closed = training::closed_round(&state, &(tiny_hash(), layers, round))
            .unwrap()
            .unwrap();
        assert_eq!(closed.adapter, holders[0].adapter_hash());
        assert_eq!(
            training::shard(&state, tiny_hash(), layers).unwrap().round,
            round + 1
        );
        // The validator replays every contribution on its assigned data: the honest
        // ones lower the loss; the poisoner's claimed losses (those of its real update)
        // are contradicted by what its shared pseudo-gradient does.
        let v = verify(&holders[0], &contributions, (round, base, &theta_base));
        let outcomes: Vec<_> = v.checks.iter().map(|c| c.outcome).collect();
        let mut expected = vec![O::Improved; 4];
        expected[poisoner] = O::Contradicted;
        assert_eq!(outcomes, expected, "round {round}: {:?}", v.checks);
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
    }
    for (i, who) in accounts.iter().enumerate() {
        // Two rounds, each 5 NSHD split among the three accepted holders.
        let expected = if i == poisoner { 0 } else { 2 * (5 * UNIT / 3) };
        assert_eq!(
            balances::account(&state, who).unwrap().free,
            expected,
            "holder {i}"
        );
        assert_eq!(training::earned(&state, who).unwrap(), expected);
    }
}

#[test]
fn tampered_contributions_are_dropped_before_aggregation() {
    let keys = [key(1), key(2), key(3)];
    let (_, mut holders) = tiny_holders(4..6, &keys);
    let mut contributions: Vec<_> = holders
        .iter()
        .map(|h| {
            let u = h.train_local().unwrap();
            h.contribution(&u.pseudo_gradient, u.loss_before, u.loss_after)
                .unwrap()
        })
        .collect();
    // A relay flips a payload byte: the hash no longer matches the signed receipt.
    let mut tampered = contributions[1].clone();
    let last = tampered.payload.len() - 1;
    tampered.payload[last] ^= 1;
    contributions.push(tampered);
    let outcome = holders[0].apply_round(&contributions).unwrap();
    assert_eq!(outcome.invalid, 1);
    assert_eq!(outcome.accepted.len(), 3);
    // A holder that signs two different pseudo-gradients is dropped entirely: only two
    // contributions remain, too few for Krum tolerating one fault.
    contributions.pop();
    let second = {
        let u = holders[1].train_local().unwrap();
        let g: Vec<f32> = u.pseudo_gradient.iter().map(|v| v * 0.5).collect();
        holders[1]
            .contribution(&g, u.loss_before, u.loss_after)
            .unwrap()
    };
    contributions.push(second);
    assert!(matches!(
        holders[1].apply_round(&contributions),
        Err(neuroshard_training::TrainingError::TooFewContributions { needed: 3, got: 2 })
    ));
}
