//! Acceptance 2 on the tiny random Llama: speculative greedy decoding is token-identical
//! to plain greedy for both drafters on several prompts, and speculative sampling follows
//! the target's distribution.

mod common;

use candle_core::quantized::GgmlDType;
use common::*;
use neuroshard_inference::sampling::probabilities;
use neuroshard_inference::weights::quantize_weights;
use neuroshard_inference::{
    decode, decode_until, DecodeOptions, Drafter, HeadMode, HeadResult, ModelDrafter, ModelSource,
    ModelWeights, NgramDrafter, Precision,
};

fn prompts() -> Vec<Vec<u32>> {
    vec![
        vec![1, 10, 20, 30, 40, 10, 20, 30],
        vec![1, 5, 5, 5, 5, 5],
        vec![1, 100, 101, 102, 103, 104, 105, 100, 101],
        vec![1, 200, 3, 77, 200, 3],
        vec![1, 42],
        vec![1, 9, 8, 7, 6, 5, 4, 3, 9, 8, 7],
    ]
}

#[test]
fn decoding_stops_when_the_listener_says_so() {
    let (w, hash) = tiny_model();
    let ts = transports(&w, hash, &[(0, 3), (3, 6)]);
    let opts = DecodeOptions {
        max_tokens: 40,
        ..Default::default()
    };
    let prompt = vec![1, 10, 20, 30, 10, 20];
    let full = decode(
        &mut client(&ts, hash, 60),
        &prompt,
        &opts,
        None,
        &mut |_| {},
    )
    .unwrap();
    let mut ngram = NgramDrafter::default();
    for drafter in [None, Some(&mut ngram as &mut dyn Drafter)] {
        let mut seen = 0;
        let mut c = client(&ts, hash, 61);
        let part = decode_until(&mut c, &prompt, &opts, drafter, &mut |_| {
            seen += 1;
            seen < 5
        })
        .unwrap();
        // Five tokens seen, the fifth ends it: the same prefix, and no round after it.
        assert_eq!(part.tokens, full.tokens[..5]);
        assert_eq!(part.accepted_positions, prompt.len() + 4);
        assert!(part.stats.rounds < full.stats.rounds);
    }
}

#[test]
fn speculative_greedy_is_identical_to_plain_greedy() {
    let (w, hash) = tiny_model();
    let ts = transports(&w, hash, &[(0, 2), (2, 4), (4, 6)]);
    let opts = DecodeOptions {
        max_tokens: 48,
        ..Default::default()
    };
    let drafter_weights = quantize_weights(&w, GgmlDType::Q4_1).unwrap();
    let mut model_drafter = ModelDrafter::new(drafter_weights).unwrap();
    let mut ngram = NgramDrafter::default();
    let (mut drafted, mut accepted) = (0, 0);
    for (i, prompt) in prompts().iter().enumerate() {
        let mut c = client(&ts, hash, i as u8);
        let plain = decode(&mut c, prompt, &opts, None, &mut |_| {}).unwrap();
        assert_eq!(plain.tokens.len(), 48);
        assert_eq!(
            plain.stats.rounds, 47,
            "plain decoding is one token per round"
        );
        for drafter in [&mut ngram as &mut dyn Drafter, &mut model_drafter] {
            let mut c = client(&ts, hash, 100 + i as u8);
            let spec = decode(&mut c, prompt, &opts, Some(drafter), &mut |_| {}).unwrap();
            assert_eq!(
                spec.tokens,
                plain.tokens,
                "prompt {i}, drafter {}",
                drafter.name()
            );
            drafted += spec.stats.drafted;
            accepted += spec.stats.accepted;
            assert!(spec.stats.rounds <= plain.stats.rounds);
        }
    }
    assert!(
        drafted > 0 && accepted > 0,
        "drafters never helped: {accepted}/{drafted}"
    );
}

/// Exact distribution of the second generated token under the target (sum over the first).
fn exact_second_token(
    w: &ModelWeights,
    hash: neuroshard_primitives::Hash,
    prompt: &[u32],
    t: f64,
) -> Vec<f64> {
    let ts = transports(w, hash, &[(0, 6)]);
    let mut c = client(&ts, hash, 250);
    let HeadResult::Logits(l) = c.forward(prompt, 0, HeadMode::Logits).unwrap() else {
        panic!()
    };
    let rows = l.to_vec2::<f32>().unwrap();
    let p1 = probabilities(rows.last().unwrap(), t);
    let mut marginal = vec![0f64; p1.len()];
    for (t1, &pt1) in p1.iter().enumerate() {
        if pt1 < 1e-6 {
            continue;
        }
        let HeadResult::Logits(l2) = c
            .forward(&[t1 as u32], prompt.len(), HeadMode::Logits)
            .unwrap()
        else {
            panic!()
        };
        let p2 = probabilities(&l2.to_vec2::<f32>().unwrap()[0], t);
        for (t2, &v) in p2.iter().enumerate() {
            marginal[t2] += pt1 as f64 * v as f64;
        }
    }
    marginal
}

fn tv(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f64>() / 2.0
}

/// Total variation after folding every token outside `reference`'s top 8 into one bucket
/// (keeps the sampling noise of a few thousand draws small).
fn bucketed_tv(a: &[f64], b: &[f64], reference: &[f64]) -> f64 {
    let mut order: Vec<usize> = (0..reference.len()).collect();
    order.sort_by(|&i, &j| reference[j].total_cmp(&reference[i]));
    let fold = |d: &[f64]| {
        let mut v: Vec<f64> = order[..8].iter().map(|&i| d[i]).collect();
        v.push(order[8..].iter().map(|&i| d[i]).sum());
        v
    };
    tv(&fold(a), &fold(b))
}

fn histogram(samples: &[u32], vocab: usize) -> Vec<f64> {
    let mut h = vec![0f64; vocab];
    for &s in samples {
        h[s as usize] += 1.0 / samples.len() as f64;
    }
    h
}

#[test]
fn speculative_sampling_matches_the_target_distribution() {
    let (w, hash) = tiny_model();
    // A drafter that is a *different* model, so its proposals are often wrong and the
    // rejection/residual path matters.
    let other_dir = tempfile::tempdir().unwrap();
    neuroshard_inference::tiny::write_tiny_llama(other_dir.path(), 99).unwrap();
    let other = ModelWeights::load(
        &ModelSource::Safetensors(other_dir.path().into()),
        None,
        Precision::Native,
    )
    .unwrap();
    let prompt = vec![1u32, 10, 20, 30, 10, 20];
    let temperature = 0.8;
    let exact = exact_second_token(&w, hash, &prompt, temperature);
    let ts = transports(&w, hash, &[(0, 3), (3, 6)]);
    let draws = 1500;
    let mut model_drafter = ModelDrafter::new(other.clone()).unwrap();
    let mut ngram = NgramDrafter::default();
    let mut third: Vec<Vec<u32>> = Vec::new();
    for name in ["plain", "model", "ngram"] {
        let mut c = client(&ts, hash, 7);
        let mut second = Vec::new();
        let mut thirds = Vec::new();
        let mut stats_drafted = 0;
        for seed in 0..draws {
            let opts = DecodeOptions {
                max_tokens: 4,
                temperature,
                seed: seed as u64 + 1000 * name.len() as u64,
                draft_len: 3,
                adaptive: false,
                ..Default::default()
            };
            let drafter: Option<&mut dyn Drafter> = match name {
                "model" => Some(&mut model_drafter),
                "ngram" => Some(&mut ngram),
                _ => None,
            };
            let d = decode(&mut c, &prompt, &opts, drafter, &mut |_| {}).unwrap();
            second.push(d.tokens[1]);
            thirds.push(d.tokens[2]);
            stats_drafted += d.stats.drafted;
        }
        let dist = bucketed_tv(&histogram(&second, 256), &exact, &exact);
        eprintln!("{name}: TV(second token, exact) = {dist:.4}, drafted {stats_drafted}");
        assert!(
            dist < 0.06,
            "{name}: second-token distribution is off by TV {dist}"
        );
        if name != "plain" {
            assert!(stats_drafted > 0);
        }
        third.push(thirds);
    }
    // The drafter's own distribution is far from the target's: accepting every draft would
    // have failed the check above.
    let drafter_exact = exact_second_token(&other, hash, &prompt, temperature);
    assert!(tv(&drafter_exact, &exact) > 0.2);
    for (i, name) in ["model", "ngram"].iter().enumerate() {
        let plain = histogram(&third[0], 256);
        let d = bucketed_tv(&plain, &histogram(&third[i + 1], 256), &plain);
        eprintln!("{name}: TV(third token, plain sampling) = {d:.4}");
        assert!(
            d < 0.08,
            "{name}: third-token distribution differs from plain sampling: {d}"
        );
    }
}
