//! The training loss: the in-batch softmax loss with log-popularity correction
//! (docs/MODEL.md section 5) on both engines ([`in_batch`]).

pub mod in_batch;

pub use in_batch::{InBatch, InBatchLoss, LossInput, LossPlan, MASKED_LOGIT};
