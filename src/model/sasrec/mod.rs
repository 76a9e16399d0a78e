//! The SASRec user encoder (docs/MODEL.md section 4), each part on both engines (candle ops and
//! the CPU kernels): its shape ([`config`]), the stack ([`encoder`]), one Transformer block
//! ([`block`]), the causal attention over packed rows ([`attention`]), its parameters by name
//! ([`params`]) and its training objective ([`objective`]).

pub mod attention;
pub mod block;
pub mod config;
pub mod encoder;
pub mod objective;
pub mod params;
#[cfg(test)]
mod tests;

pub use config::UserEncoderConfig;
pub use encoder::{BlockParams, UserEncoder, UserKernel, UserParams};
pub use objective::{RowsLoss, RowsLossValue};
