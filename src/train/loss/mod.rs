//! The in-batch softmax loss with log-popularity correction (docs/MODEL.md section 5): the
//! reference version on candle ops ([`reference`]) and the same loss and gradient as one
//! hand-written CPU kernel ([`kernel`]).

pub mod kernel;
pub mod reference;

pub use kernel::{InBatchLoss, LossInput};
pub use reference::{LossPlan, MASKED_LOGIT};
