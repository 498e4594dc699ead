//! Deliberate faults for tests and benches (cargo feature `fault-injection`, never in a
//! production build): a [`SkipWork`] shard saves compute by skipping its layers for a
//! share of its positions, the cheat spot checks and liveness probes must catch.

use crate::error::Result;
use crate::executor::ShardExecutor;
use crate::messages::{ShardInput, ShardRequest};
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

/// [`SkipWork`]: replaces a share of the output rows by the input rows (the embeddings
/// when the input is tokens), chosen by a hash of (seed, session, position) so a replay
/// fakes the same ones.
pub(crate) fn fake_positions(
    exec: &ShardExecutor,
    out: &candle_core::Tensor,
    req: &ShardRequest,
    fault: SkipWork,
) -> Result<candle_core::Tensor> {
    let (input, start) = (&req.input, req.start_pos as usize);
    let (_, seq, width) = out.dims3()?;
    let mut rows = out.squeeze(0)?.to_vec2::<f32>()?;
    let inputs: Vec<Vec<f32>> = match input {
        ShardInput::Hidden(a) => a.to_tensor()?.squeeze(0)?.to_vec2::<f32>()?,
        ShardInput::Tokens(t) => exec
            .embed(t)?
            .chunks(width)
            .map(|row| row.to_vec())
            .collect(),
    };
    for (i, row) in rows.iter_mut().enumerate() {
        let draw = neuroshard_primitives::blake2_256(
            &(fault.seed, req.session, (start + i) as u64).encode(),
        );
        let x = u32::from_le_bytes([draw[0], draw[1], draw[2], draw[3]]) % 1_000_000;
        if x < fault.permill {
            if let Some(input_row) = inputs.get(i) {
                *row = input_row.clone();
            }
        }
    }
    let flat: Vec<f32> = rows.into_iter().flatten().collect();
    Ok(candle_core::Tensor::from_vec(
        flat,
        (1, seq, width),
        out.device(),
    )?)
}
