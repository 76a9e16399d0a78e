//! The SASRec user encoder (docs/MODEL.md section 4): the reference version on candle ops
//! ([`encoder`]), the same function on hand-written CPU kernels with their own backward
//! ([`kernel`]), and the packed causal attention those kernels use ([`attention`]).

pub mod attention;
pub mod encoder;
pub mod kernel;
pub mod params;

pub use encoder::{BlockParams, UserEncoder, UserEncoderConfig, UserParams};
pub use kernel::UserKernel;
