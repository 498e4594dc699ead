//! Acceptance 1: our shard chains reproduce candle-transformers' quantized_llama on the
//! real SmolLM2 GGUF — logits within 1e-4 and identical 64-token greedy continuations.

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

fn chain_run(client: &mut PipelineClient) -> (Vec<Vec<f32>>, Vec<u32>) {
    let mut logits = Vec::new();
    let mut out = Vec::new();
    let mut input = PROMPT.to_vec();
    let mut pos = 0;
    for _ in 0..STEPS {
        let HeadResult::Logits(l) = client.forward(&input, pos, HeadMode::Logits).unwrap() else {
            panic!("expected logits")
        };
        let last = l.narrow(0, input.len() - 1, 1).unwrap();
        let next = argmax_rows(&last).unwrap()[0];
        logits.push(last.squeeze(0).unwrap().to_vec1::<f32>().unwrap());
        pos += input.len();
        input = vec![next];
        out.push(next);
    }
    (logits, out)
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
    for ranges in [vec![(0, 30)], vec![(0, 10), (10, 20), (20, 30)]] {
        let ts = transports(&weights, hash, &ranges);
        let mut c = client(&ts, hash, 1);
        let (logits, tokens) = chain_run(&mut c);
        let diff = max_diff(&oracle_logits, &logits);
        eprintln!(
            "{} shard(s): max |logit diff| over {STEPS} steps = {diff:e}",
            ranges.len()
        );
        assert!(diff <= 1e-4, "{} shards: max diff {diff}", ranges.len());
        assert_eq!(
            tokens,
            oracle_tokens,
            "{} shards: greedy continuation differs",
            ranges.len()
        );
    }
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
