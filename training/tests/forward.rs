//! The training forward pass against the inference executor (the oracle): with a fresh
//! adapter it reproduces the base model's logits, and with a trained-looking random
//! adapter it reproduces the executor running the merged weights `W + scale B A`.

mod common;

use candle_core::Tensor;
use common::*;
use neuroshard_inference::executor::ExecInput;
use neuroshard_inference::ShardExecutor;
use neuroshard_training::corpus::byte_tokens;
use neuroshard_training::{merge_adapter, AdapterLayout, AdapterTensors, FrozenModel, LoraConfig};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn executor_logits(weights: &neuroshard_inference::ModelWeights, tokens: &[u32]) -> Vec<f32> {
    let exec = ShardExecutor::new(weights.clone()).unwrap();
    let mut cache = exec.new_cache();
    let h = exec
        .forward(&mut cache, ExecInput::Tokens(tokens), 0)
        .unwrap();
    exec.head(&h)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn training_logits(model: &FrozenModel, adapter: &AdapterTensors<'_>, tokens: &[u32]) -> Vec<f32> {
    let input = model.shard_input(tokens).unwrap().unsqueeze(0).unwrap();
    model
        .logits(&input, adapter)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1()
        .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn training_forward_matches_the_executor_with_and_without_adapter() {
    let weights = tiny_weights();
    let tokens = byte_tokens("The tortoise walked on, one slow step after another.");
    let base = executor_logits(&weights, &tokens);
    for shard in [0..2, 2..5, 5..6] {
        let model = FrozenModel::new(&weights, shard.clone()).unwrap();
        let layout =
            AdapterLayout::new(model.config(), shard.clone(), LoraConfig::default()).unwrap();
        // Fresh adapter: B = 0, the model is unchanged.
        let fresh = layout.init(1);
        let adapter = AdapterTensors::from_theta(&layout, &fresh).unwrap();
        let d = max_diff(&training_logits(&model, &adapter, &tokens), &base);
        assert!(
            d < 1e-4,
            "shard {shard:?}: fresh adapter differs from base by {d}"
        );
        // A random adapter with non-zero B changes the logits, and merging it into the
        // weights makes the executor agree with the training forward.
        let mut rng = StdRng::seed_from_u64(3);
        let theta: Vec<f32> = (0..layout.len)
            .map(|_| rng.gen_range(-0.05..0.05))
            .collect();
        let adapter = AdapterTensors::from_theta(&layout, &theta).unwrap();
        let trained = training_logits(&model, &adapter, &tokens);
        assert!(max_diff(&trained, &base) > 1e-2, "adapter had no effect");
        let merged = merge_adapter(&weights, &layout, &theta).unwrap();
        let d = max_diff(&trained, &executor_logits(&merged, &tokens));
        assert!(d < 1e-4, "shard {shard:?}: merged executor differs by {d}");
    }
}

#[test]
fn gradients_reach_the_adapter_through_the_frozen_layers() {
    // Finite differences on a B entry of the first layer of a shard in the middle: the
    // autograd gradient must flow back through every later (frozen) layer and the head.
    let weights = tiny_weights();
    let model = FrozenModel::new(&weights, 1..3).unwrap();
    let layout = AdapterLayout::new(model.config(), 1..3, LoraConfig::default()).unwrap();
    let mut rng = StdRng::seed_from_u64(5);
    let theta: Vec<f32> = (0..layout.len)
        .map(|_| rng.gen_range(-0.05..0.05))
        .collect();
    let tokens = byte_tokens("Little by little does the trick, said the crow.");
    let input = model
        .shard_input(&tokens[..tokens.len() - 1])
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let targets = Tensor::new(&tokens[1..], &candle_core::Device::Cpu)
        .unwrap()
        .unsqueeze(0)
        .unwrap();
    let loss_of = |theta: &[f32]| -> f64 {
        let a = AdapterTensors::from_theta(&layout, theta).unwrap();
        f64::from(
            model
                .loss(&input, &targets, &a)
                .unwrap()
                .to_scalar::<f32>()
                .unwrap(),
        )
    };
    let var = candle_core::Var::from_slice(&theta, theta.len(), &candle_core::Device::Cpu).unwrap();
    let pairs = layout
        .slots
        .iter()
        .map(|s| {
            let r = layout.config.rank;
            let (out, inp) = s.shape;
            let a = var
                .as_tensor()
                .narrow(0, s.offset, r * inp)
                .unwrap()
                .reshape((r, inp))
                .unwrap();
            let b = var
                .as_tensor()
                .narrow(0, s.offset + r * inp, out * r)
                .unwrap()
                .reshape((out, r))
                .unwrap();
            (a, b)
        })
        .collect();
    let adapter = AdapterTensors {
        layout: &layout,
        pairs,
    };
    let grads = model
        .loss(&input, &targets, &adapter)
        .unwrap()
        .backward()
        .unwrap();
    let grad: Vec<f32> = grads.get(var.as_tensor()).unwrap().to_vec1().unwrap();
    let slot = &layout.slots[0];
    for index in [
        slot.offset + 3,
        slot.offset + layout.config.rank * slot.shape.1 + 5,
    ] {
        let eps = 1e-2f32;
        let mut plus = theta.clone();
        plus[index] += eps;
        let mut minus = theta.clone();
        minus[index] -= eps;
        let numeric = (loss_of(&plus) - loss_of(&minus)) / (2.0 * f64::from(eps));
        let analytic = f64::from(grad[index]);
        assert!(
            (numeric - analytic).abs() < 1e-3 + 0.05 * numeric.abs(),
            "index {index}: numeric {numeric}, autograd {analytic}"
        );
    }
}

#[test]
fn training_forward_matches_the_executor_in_every_family() {
    // The families' parts (QKV biases, q/k norms and a head size of their own, a sliding
    // window, scaled RoPE) in the training forward, against the executor, on the F32
    // tiny files (no 8-bit activations in the executor's products).
    use candle_core::quantized::gguf_file::Value;
    use neuroshard_inference::tiny_gguf::{tiny_family, write_gguf, TINY_FAMILIES};
    use neuroshard_inference::{ModelSource, ModelWeights, Precision};
    let dir = tempfile::tempdir().unwrap();
    let tokens = byte_tokens("Slow and steady wins the race, said the tortoise again.");
    for family in TINY_FAMILIES {
        let mut spec = tiny_family(&format!("{family}-f32")).unwrap();
        if family == "mistral3" {
            let window = ("attention.sliding_window".to_string(), Value::U32(8));
            spec.metadata.push(window);
        }
        let path = dir.path().join(format!("{family}.gguf"));
        write_gguf(&path, &spec).unwrap();
        let source = ModelSource::Gguf(path);
        let weights = ModelWeights::load(&source, None, Precision::Native).unwrap();
        let base = executor_logits(&weights, &tokens);
        let model = FrozenModel::new(&weights, 1..3).unwrap();
        let layout = AdapterLayout::new(model.config(), 1..3, LoraConfig::default()).unwrap();
        let fresh = AdapterTensors::from_theta(&layout, &layout.init(1)).unwrap();
        let d = max_diff(&training_logits(&model, &fresh, &tokens), &base);
        assert!(d < 1e-4, "{family}: fresh adapter differs from base by {d}");
        let mut rng = StdRng::seed_from_u64(3);
        let theta: Vec<f32> = (0..layout.len)
            .map(|_| rng.gen_range(-0.05..0.05))
            .collect();
        let adapter = AdapterTensors::from_theta(&layout, &theta).unwrap();
        let merged = merge_adapter(&weights, &layout, &theta).unwrap();
        let trained = training_logits(&model, &adapter, &tokens);
        let d = max_diff(&trained, &executor_logits(&merged, &tokens));
        assert!(d < 1e-4, "{family}: merged executor differs by {d}");
    }
}
