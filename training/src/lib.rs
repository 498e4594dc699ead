//! Proof of Training: the holders of one shard of a Llama model train a LoRA adapter on
//! that shard's projections, on top of the frozen (quantized) model, DiLoCo style: many
//! local AdamW steps with candle autograd on local text ([`diloco`], [`model`],
//! [`lora`]), then an outer step on the pseudo-gradients all holders share through a
//! [`GradientExchange`], aggregated with a Byzantine-robust rule ([`aggregate`]:
//! trimmed mean or Krum). Each holder signs a gradient receipt for what it shared; the
//! chain's training pallet pays the receipts the aggregate accepted and records the
//! adapter versions. The merged adapter is served by the unchanged inference executor
//! ([`lora::merge_adapter`]).
//!
//! Depends on primitives and inference only (never on runtime or node).

pub mod aggregate;
pub mod codec;
pub mod corpus;
pub mod dataset;
pub mod diloco;
pub mod error;
pub mod exchange;
pub mod gauntlet;
pub mod in_process;
pub mod lora;
pub mod model;
pub mod snapshot;
pub mod trainer;

pub use aggregate::{aggregate, Aggregate, RobustRule};
pub use codec::WireFloat;
pub use dataset::Dataset;
pub use diloco::{evaluate_windows, inner_loop, InnerConfig, OuterOptimizer};
pub use error::{Result, TrainingError};
pub use exchange::{Contribution, GradientExchange, InProcessExchange, RoundKey};
pub use lora::{merge_adapter, AdapterLayout, LoraConfig, Projection};
pub use model::{AdapterTensors, FrozenModel};
pub use snapshot::AdapterSnapshot;
pub use trainer::{LocalUpdate, RoundOutcome, ShardTrainer, TrainerConfig};
