//! Acceptance 1: our shard chains against candle-transformers' quantized_llama on the real
//! SmolLM2 GGUF. The quantized products, norms and rotary embedding use candle's arithmetic
//! (bit-exact, see the kernel tests), but attention sums its dot products in another order;
//! through thirty layers of 8-bit activation quantization those last-bit differences grow
//! to logit differences of up to about one (our executor with only the order of the
//! attention dot product changed differs from itself by as much: max 1.26, mean 0.17), so the comparison is run on the oracle's own token sequence and checks top-1
//! agreement and the size of the differences, while 1-shard and 3-shard chains must agree
//! with each other bit for bit.

mod common;

use candle_core::{Device, Tensor};
use candle_transformers::models::quantized_llama::ModelWeights as Oracle;
use common::*;
use neuroshard_inference::executor::argmax_rows;
use neuroshard_inference::{
    HeadMode, HeadResult, ModelSource, ModelWeights, PipelineClient, Precision,
};

const PROMPT: [u32; 9] = [1, 9690, 198, 504, 3458, 282, 4649, 314, 2];
const STEPS: usize = 64;

fn oracle_run() -> (Vec<Vec<f32>>, Vec<u32>) {
    let path = real_model_path();
    let mut file = std::fs::File::open(&path).unwrap();
    let ct = candle_core::quantized::gguf_file::Content::read(&mut file).unwrap();
    let mut model = Oracle::from_gguf(ct, &mut file, &Device::Cpu).unwrap();
    let mut logits = Vec::new();
    let mut out = Vec::new();
    let mut input = PROMPT.to_vec();
    let mut pos = 0;
    for _ in 0..STEPS {
        let x = Tensor::new(input.as_slice(), &Device::Cpu)
            .unwrap()
            .unsqueeze(0)
            .unwrap();
        let l = model.forward(&x, pos).unwrap().squeeze(0).unwrap();
        let next = argmax_rows(&l.unsqueeze(0).unwrap()).unwrap()[0];
        logits.push(l.to_vec1::<f32>().unwrap());
        pos += input.len();
        input = vec![next];
        out.push(next);
    }
    (logits, out)
}

/// Our logits and greedy tokens; with `forced`, each step is fed the oracle's token
/// instead of our own (teacher forcing), so every step compares the same context.
fn chain_run(client: &mut PipelineClient, forced: Option<&[u32]>) -> (Vec<Vec<f32>>, Vec<u32>) {
    let mut logits = Vec::new();
    let mut out = Vec::new();
    let mut input = PROMPT.to_vec();
    let mut pos = 0;
    for step in 0..STEPS {
        let HeadResult::Logits(l) = client.forward(&input, pos, HeadMode::Logits).unwrap() else {
            panic!("expected logits")
        };
        let last = l.narrow(0, input.len() - 1, 1).unwrap();
        let next = argmax_rows(&last).unwrap()[0];
        logits.push(last.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
        pos += input.len();
        input = vec![forced.map_or(next, |f| f[step])];
        out.push(next);
    }
    (logits, out)
}

fn top1(row: &[f32]) -> usize {
    (0..row.len()).fold(0, |best, i| if row[i] > row[best] { i } else { best })
}

/// The oracle's logit of its top-1 minus its second best.
fn margin(row: &[f32]) -> f32 {
    let best = top1(row);
    let second = row
        .iter()
        .enumerate()
        .filter(|&(i, _)| i != best)
        .map(|(_, &v)| v)
        .fold(f32::NEG_INFINITY, f32::max);
    row[best] - second
}

fn max_diff(a: &[Vec<f32>], b: &[Vec<f32>]) -> f32 {
    a.iter()
        .zip(b)
        .flat_map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p - q).abs()))
        .fold(0.0, f32::max)
}

#[test]
fn shard_chains_match_the_candle_oracle() {
    let (oracle_logits, oracle_tokens) = oracle_run();
    let weights = ModelWeights::load(
        &ModelSource::Gguf(real_model_path()),
        None,
        Precision::Native,
    )
    .unwrap();
    assert_eq!(weights.config.num_layers, 30);
    let hash = real_model_hash();
    let mut runs = Vec::new();
    for ranges in [vec![(0, 30)], vec![(0, 10), (10, 20), (20, 30)]] {
        let ts = transports(&weights, hash, &ranges);
        let forced = chain_run(&mut client(&ts, hash, 1), Some(&oracle_tokens)).0;
        let free = chain_run(&mut client(&ts, hash, 2), None);
        runs.push((forced, free));
    }
    // Shard boundaries change nothing: same bits, same greedy continuation.
    assert_eq!(max_diff(&runs[0].0, &runs[1].0), 0.0);
    assert_eq!(runs[0].1, runs[1].1);

    let ours = &runs[0].0;
    let diff = max_diff(&oracle_logits, ours);
    let (sum, count) = oracle_logits
        .iter()
        .zip(ours)
        .flat_map(|(a, b)| a.iter().zip(b).map(|(p, q)| (p - q).abs() as f64))
        .fold((0.0, 0usize), |(s, n), d| (s + d, n + 1));
    let mean = sum / count as f64;
    let agree = oracle_logits
        .iter()
        .zip(ours)
        .filter(|(a, b)| top1(a) == top1(b))
        .count();
    let same_prefix = oracle_tokens
        .iter()
        .zip(&runs[0].1 .1)
        .take_while(|(a, b)| a == b)
        .count();
    eprintln!(
        "vs candle over {STEPS} teacher-forced steps: max |logit diff| {diff:.4}, mean {mean:.5}, \
         top-1 agreement {agree}/{STEPS}; free-running greedy tokens identical for {same_prefix}"
    );
    // A wrong kernel moves logits by several units everywhere; amplified rounding noise
    // measured 0.15 on average and 1.1 at worst here.
    assert!(mean <= 0.3, "mean |logit diff| {mean}");
    assert!(diff <= 3.0, "max |logit diff| {diff}");
    // Wherever the oracle's choice is not a near-tie, ours is the same.
    for (step, (a, b)) in oracle_logits.iter().zip(ours).enumerate() {
        if margin(a) > diff {
            assert_eq!(
                top1(a),
                top1(b),
                "step {step}: top-1 differs (margin {})",
                margin(a)
            );
        }
    }
    assert!(agree >= STEPS - 2, "top-1 agreement {agree}/{STEPS}");
}

/// Every position's result is independent of the batch it is computed in (the property
/// that makes speculative verification and failover replay reproduce plain decoding).
#[test]
fn batched_positions_equal_single_steps_bit_for_bit() {
    use neuroshard_inference::executor::{ExecInput, ShardExecutor};
    let w = ModelWeights::load(
        &ModelSource::Gguf(real_model_path()),
        None,
        Precision::Native,
    )
    .unwrap();
    let ex = ShardExecutor::new(w).unwrap();
    let toks: Vec<u32> = (0..24u32).map(|i| 1 + (i * 7919) % 40000).collect();
    let mut a = ex.new_cache();
    let batched = ex.forward(&mut a, ExecInput::Tokens(&toks), 0).unwrap();
    let mut b = ex.new_cache();
    let single: Vec<Tensor> = (0..toks.len())
        .map(|i| {
            ex.forward(&mut b, ExecInput::Tokens(&toks[i..i + 1]), i)
                .unwrap()
        })
        .collect();
    let single = Tensor::cat(&single, 1).unwrap();
    let diff = (batched - single)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap();
    assert_eq!(diff.to_scalar::<f32>().unwrap(), 0.0);
}
