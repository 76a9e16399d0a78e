//! The SASRec user encoder (docs/MODEL.md section 4): the version on candle ops ([`encoder`]),
//! the same function on hand-written CPU kernels with their own backward ([`kernel`]), the
//! packed causal attention those kernels use ([`attention`]), and its training objective on
//! either engine ([`objective`]).

pub mod attention;
pub mod encoder;
pub mod kernel;
pub mod objective;
pub mod params;

pub use encoder::{BlockParams, UserEncoder, UserEncoderConfig, UserParams};
pub use kernel::UserKernel;
pub use objective::{RowsLoss, RowsLossValue};
