//! The floor every model is built on: the parameter store ([`params`]), candle layers with a
//! train/eval context ([`layers`]), the exact-GELU op ([`gelu`]), ops whose frozen operands get
//! no gradient ([`frozen`], on [`graft`]), the row-major product ([`product`]), the dense CPU
//! kernels of the hand-differentiated parts ([`cpu`]) and their common seam ([`kernel`]), the
//! towers' fused inference attention ([`attention`]), the compute device and the frozen towers'
//! precision ([`device`]), f16 training's dynamic loss scale ([`loss_scale`]) and the broadcast
//! ops whose small operand's gradient mixed precision sums in f32 ([`mixed`]). It knows no
//! model, dataset or configuration.

pub mod attention;
pub mod cpu;
pub mod device;
pub mod frozen;
pub mod gelu;
pub mod graft;
pub mod kernel;
pub mod layer_norm;
pub mod layers;
pub mod loss_scale;
pub mod mixed;
pub mod params;
pub mod product;
#[cfg(test)]
pub(crate) mod testing;

pub use device::{DeviceSpec, TowerDType};
pub use kernel::{Engine, GradSink, Kernel, KernelNodes, NodeBackward, Pending};
pub use layer_norm::LayerNorm;
pub use layers::Ctx;
pub use params::{GROUP_DEFAULT, Init, Param, ParamScope, ParamStore};
