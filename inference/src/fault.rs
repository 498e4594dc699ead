//! Deliberate faults for tests and benches (cargo feature `fault-injection`, never in a
//! production build): the cheats a rational worker could try to save compute or memory,
//! which spot checks and liveness probes must catch. A [`SkipWork`] shard skips its
//! layers for a random share of its positions; the other [`Fault`]s skip the quietest
//! positions (an oracle's worst case for a commitment that samples large values), skip
//! the shard's last layers, attend over a window of recent positions only, or run on
//! weights re-quantized to a cheaper format.

use crate::error::Result;
use crate::executor::ShardExecutor;
use crate::messages::{ShardInput, ShardRequest};
use crate::weights::{quantize_weights, ModelWeights};
use candle_core::quantized::GgmlDType;
use parity_scale_codec::Encode;

/// A worker that saves compute
/// by skipping its layers for a share of the positions it serves, returning their input
/// rows (the token embeddings, on the first shard) as the output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SkipWork {
    /// Share of positions faked, in millionths.
    pub permill: u32,
    pub seed: u64,
}

/// A cheat a worker could run.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Fault {
    /// A random share of the positions returns its input rows ([`SkipWork`]).
    SkipWork(SkipWork),
    /// Every position whose work (the L2 norm of output minus input) is below `max_norm`
    /// returns its input rows: an oracle that knows which positions its layers barely
    /// change, the worst case for a commitment that keeps only the largest values.
    SkipQuiet { max_norm: f32 },
    /// The shard's last `layers` layers are not run, for every position.
    SkipLastLayers { layers: usize },
    /// Attention sees only the first `sink` positions and the last `window` ones
    /// (StreamingLLM's cheap long-context approximation).
    AttentionWindow { sink: usize, window: usize },
    /// The shard's weights re-quantized to `dtype` (a cheaper format than the model's).
    Requantize(GgmlDType),
}

impl From<SkipWork> for Fault {
    fn from(f: SkipWork) -> Self {
        Fault::SkipWork(f)
    }
}

/// The executor a worker running `fault` uses instead of `exec`'s honest one (`None`
/// when the fault leaves the executor alone and fakes outputs instead).
pub(crate) fn degraded_executor(
    exec: &ShardExecutor,
    fault: Fault,
) -> Result<Option<ShardExecutor>> {
    let weights = exec.weights();
    Ok(match fault {
        Fault::SkipWork(_) | Fault::SkipQuiet { .. } => None,
        Fault::SkipLastLayers { layers } => {
            let keep = weights.layers.len().saturating_sub(layers);
            // Same layer range on the wire; fewer layers run.
            let fewer = ModelWeights {
                layers: weights.layers[..keep].to_vec(),
                ..weights.clone()
            };
            Some(ShardExecutor::new(fewer)?)
        }
        Fault::AttentionWindow { sink, window } => {
            Some(exec.clone().with_attention_window(sink, window))
        }
        Fault::Requantize(dtype) => Some(ShardExecutor::new(quantize_weights(weights, dtype)?)?),
    })
}

/// The input rows of `req` (the embeddings when the input is tokens), `width` wide.
fn input_rows(exec: &ShardExecutor, input: &ShardInput, width: usize) -> Result<Vec<Vec<f32>>> {
    Ok(match input {
        ShardInput::Hidden(a) => a.to_tensor()?.squeeze(0)?.to_vec2::<f32>()?,
        ShardInput::Tokens(t) => exec
            .embed(t)?
            .chunks(width)
            .map(|row| row.to_vec())
            .collect(),
    })
}

impl SkipWork {
    /// Whether this worker fakes position `pos` of `session`: a hash of (seed, session,
    /// position), so a replay fakes the same ones.
    pub fn fakes(&self, session: &[u8; 16], pos: usize) -> bool {
        let draw = neuroshard_primitives::blake2_256(&(self.seed, session, pos as u64).encode());
        let x = u32::from_le_bytes([draw[0], draw[1], draw[2], draw[3]]) % 1_000_000;
        x < self.permill
    }
}

/// Output-faking faults ([`Fault::SkipWork`], [`Fault::SkipQuiet`]): replaces the chosen
/// output rows by the input rows. Other faults return `out` unchanged (they act through
/// [`degraded_executor`]).
pub(crate) fn fake_positions(
    exec: &ShardExecutor,
    out: &candle_core::Tensor,
    req: &ShardRequest,
    fault: Fault,
) -> Result<candle_core::Tensor> {
    if !matches!(fault, Fault::SkipWork(_) | Fault::SkipQuiet { .. }) {
        return Ok(out.clone());
    }
    let start = req.start_pos as usize;
    let (_, seq, width) = out.dims3()?;
    let mut rows = out.squeeze(0)?.to_vec2::<f32>()?;
    let inputs = input_rows(exec, &req.input, width)?;
    for (i, (row, input_row)) in rows.iter_mut().zip(&inputs).enumerate() {
        let fake = match fault {
            Fault::SkipWork(f) => f.fakes(&req.session, start + i),
            Fault::SkipQuiet { max_norm } => {
                let work: f32 = row
                    .iter()
                    .zip(input_row)
                    .map(|(o, x)| (o - x) * (o - x))
                    .sum();
                work.sqrt() < max_norm
            }
            _ => false,
        };
        if fake {
            *row = input_row.clone();
        }
    }
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    Ok(candle_core::Tensor::from_vec(
        flat,
        (1, seq, width),
        out.device(),
    )?)
}
