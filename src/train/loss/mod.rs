//! The training losses (docs/MODEL.md section 5), each on both engines: the paper's in-batch
//! softmax with log-popularity correction ([`in_batch`], `train.loss = "inbatch"`) and the
//! softmax over the whole catalogue ([`full`], `train.loss = "full"`).

pub mod full;
pub mod in_batch;
pub mod one_pass;

pub use full::{Full, FullSoftmax};
pub use in_batch::{InBatch, InBatchLoss, LossPlan, MASKED_LOGIT};
pub use one_pass::{LossGrads, LossInput};
