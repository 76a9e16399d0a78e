//! The floor every model is built on: the parameter store ([`params`]), candle layers with a
//! train/eval context ([`layers`]), the exact-GELU op ([`gelu`]), the dense CPU kernels of
//! the hand-differentiated parts ([`cpu`]) and their common seam ([`kernel`]). It knows no model, dataset or configuration.

pub mod cpu;
pub mod gelu;
pub mod kernel;
pub mod layers;
pub mod params;

pub use kernel::{GradSink, Kernel};
pub use layers::{Ctx, LayerNorm};
pub use params::{GROUP_DEFAULT, Init, Param, ParamScope, ParamStore};
