//! Text turned into training windows for one shard: the token stream is cut into
//! consecutive windows of `seq + 1` tokens; for each the hidden states entering the shard
//! (constant, the layers before it are frozen) are computed once, and the next-token
//! targets kept beside them. Batches are stacked from those windows.

use crate::error::{Result, TrainingError};
use crate::model::FrozenModel;
use candle_core::{Device, Tensor};

/// The shard inputs and targets of a set of text windows.
pub struct Dataset {
    inputs: Vec<Tensor>,
    targets: Vec<Vec<u32>>,
    seq: usize,
}

impl Dataset {
    /// Cuts `tokens` into windows of `seq + 1` tokens (at most `max_windows`; the tail
    /// that does not fill a window is dropped).
    pub fn new(
        model: &FrozenModel,
        tokens: &[u32],
        seq: usize,
        max_windows: usize,
    ) -> Result<Self> {
        if seq == 0 {
            return Err(TrainingError::Dataset(
                "window length must be positive".into(),
            ));
        }
        let mut inputs = Vec::new();
        let mut targets = Vec::new();
        for window in tokens.chunks_exact(seq + 1).take(max_windows) {
            inputs.push(model.shard_input(&window[..seq])?);
            targets.push(window[1..].to_vec());
        }
        if inputs.is_empty() {
            return Err(TrainingError::Dataset(format!(
                "{} tokens do not fill one window of {}",
                tokens.len(),
                seq + 1
            )));
        }
        Ok(Self {
            inputs,
            targets,
            seq,
        })
    }

    pub fn len(&self) -> usize {
        self.inputs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inputs.is_empty()
    }

    /// Tokens predicted per window.
    pub fn seq(&self) -> usize {
        self.seq
    }

    /// The shard inputs `(batch, seq, hidden)` and targets `(batch, seq)` of `windows`.
    pub fn batch(&self, windows: &[usize]) -> Result<(Tensor, Tensor)> {
        let pick = |i: usize| {
            self.inputs
                .get(i)
                .ok_or_else(|| TrainingError::Dataset(format!("no window {i}")))
        };
        let inputs = windows
            .iter()
            .map(|&i| pick(i))
            .collect::<Result<Vec<_>>>()?;
        let mut flat = Vec::with_capacity(windows.len() * self.seq);
        for &i in windows {
            flat.extend_from_slice(&self.targets[i]);
        }
        let targets = Tensor::from_vec(flat, (windows.len(), self.seq), &Device::Cpu)?;
        Ok((Tensor::stack(&inputs, 0)?, targets))
    }
}
