//! The one seam of the hand-written CPU ops (the IISAN side-network paths, their collapsed
//! heads, the SASRec user encoder, the in-batch loss), and how they join the graph.
//!
//! A [`Kernel`] holds its weights, read out of the model's tensors once per step into named
//! fields; its forward keeps what its backward needs ([`Kernel::Saved`], a typed struct); its
//! backward turns the gradient of the output into named gradients ([`Kernel::Grads`]: one field
//! per weight, and the input's). Each concept's file holds its kernel beside its forward on
//! candle ops, and the [`Engine`] (chosen once per model, from the device and
//! `train.kernels`) says which one runs. Every implementation's tests run the same check of
//! its backward against finite differences (`check_against_differences`), and the concepts'
//! tests compare kernel and candle forward.
//!
//! Either way the trainer differentiates one graph: a kernel's output enters it as one node
//! ([`KernelNodes::node`], a custom op through [`super::graft`]) whose backward runs the kernel's
//! backward, hands the gradient of the node's input back to the graph and records the weights'
//! gradients (and the time it took) in the store's [`Pending`] record, which
//! [`super::ParamStore::backward`] adds to candle's gradient store.

use std::sync::{Arc, Mutex};

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};
use candle_nn::Linear;

use crate::error::{Error, Result};

/// Which implementation of each trained concept runs: the hand-written CPU kernels with their
/// own backward (`train.kernels = "cpu"` on the CPU, the default), or candle ops differentiated
/// by autograd (any other device, or `train.kernels = "autograd"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// The CPU kernels.
    Kernels,
    /// Candle ops.
    Graph,
}

impl Engine {
    /// The kernels when they are wanted and the device is the CPU, the graph otherwise.
    pub fn choose(kernels_wanted: bool, device: &candle_core::Device) -> Engine {
        if kernels_wanted && device.is_cpu() {
            Engine::Kernels
        } else {
            Engine::Graph
        }
    }
}

/// What the backward of kernel nodes produced for a store's parameters, waiting for
/// [`super::ParamStore::backward`]: their gradients, and the seconds each named phase took.
#[derive(Default)]
pub struct Pending {
    /// The weights' gradients.
    pub grads: GradSink,
    /// Seconds per phase (e.g. `SAN paths backward`), in the order they ran.
    pub phases: Vec<(String, f64)>,
}

impl Pending {
    /// Run `f`, charging its wall time to `phase`.
    pub fn time<T>(&mut self, phase: &str, f: impl FnOnce() -> T) -> T {
        let t0 = std::time::Instant::now();
        let out = f();
        self.phases
            .push((phase.to_string(), t0.elapsed().as_secs_f64()));
        out
    }
}

impl std::fmt::Debug for Pending {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Pending({} gradients, {} phases)",
            self.grads.0.len(),
            self.phases.len()
        )
    }
}

/// A kernel node's backward: the gradient of the node's output in, the gradient of its input
/// out (`None` for a node hanging from the anchor), the weights' gradients into the pending
/// record.
pub type NodeBackward = Box<dyn FnOnce(&Tensor, &mut Pending) -> Result<Option<Tensor>> + Send>;

/// Where a model's kernels put their outputs on the graph: a handle to its store's pending
/// record and anchor, cloned into every part that owns a kernel.
#[derive(Debug, Clone)]
pub struct KernelNodes {
    pending: Arc<Mutex<Pending>>,
    anchor: Var,
}

impl KernelNodes {
    /// A new pending record and anchor on `device`.
    pub(super) fn new(device: &candle_core::Device) -> Result<KernelNodes> {
        Ok(KernelNodes {
            pending: Arc::new(Mutex::new(Pending::default())),
            anchor: Var::zeros(1, candle_core::DType::F32, device)?,
        })
    }

    /// Everything recorded since the last take.
    pub(super) fn take(&self) -> Pending {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// `value`, a kernel's output computed from `input` (a graph tensor; `None` when the kernel
    /// reads no graph tensor, e.g. cached states: the node then hangs from the store's anchor, a
    /// variable no parameter shares, so the graph's backward still reaches it) as a node of the
    /// graph whose backward is `backward`, called once.
    pub fn node(
        &self,
        input: Option<&Tensor>,
        value: Tensor,
        backward: NodeBackward,
    ) -> Result<Tensor> {
        let anchored = input.is_none();
        let input = input.unwrap_or(self.anchor.as_tensor());
        if !input.track_op() {
            // graft would hand the value back detached, and the weights would get no gradient
            return Err(Error::Internal(
                "kernel node: its input tracks no variable".into(),
            ));
        }
        let once = Mutex::new(Some(backward));
        let pending = self.pending.clone();
        let node = super::graft::graft(input, value, move |arg, _value, grad| {
            let f = once
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take()
                .ok_or_else(|| candle_core::Error::Msg("kernel node: backward ran twice".into()))?;
            let mut p = pending.lock().unwrap_or_else(|e| e.into_inner());
            let g = f(grad, &mut p).map_err(|e| candle_core::Error::Msg(e.to_string()))?;
            match (anchored, g) {
                // the anchor is no parameter: its gradient is a placeholder
                (true, _) => arg.zeros_like(),
                (false, Some(g)) => Ok(g),
                (false, None) => Err(candle_core::Error::Msg(
                    "kernel node: no gradient for its input".into(),
                )),
            }
        })?;
        Ok(node)
    }
}

/// A hand-written op with its own backward.
pub trait Kernel {
    /// What the forward reads besides the weights (activations, shapes, dropout context).
    type Input<'a>;
    /// What the forward keeps for the backward, its output included.
    type Saved;
    /// The named gradients the backward returns.
    type Grads;

    /// The forward pass.
    fn forward(&self, input: Self::Input<'_>) -> Self::Saved;

    /// The backward pass over the forward's `input` and `saved` state, from `d_out` = d loss /
    /// d output.
    fn backward(&self, input: Self::Input<'_>, saved: Self::Saved, d_out: &[f32]) -> Self::Grads;
}

/// Parameter gradients in the order a backward pass produced them: the carrier from a kernel's
/// named gradients to candle's [`GradStore`].
#[derive(Default)]
pub struct GradSink(Vec<(Tensor, Vec<f32>)>);

impl GradSink {
    /// Append every gradient of `other` after these.
    pub fn extend(&mut self, other: GradSink) {
        self.0.extend(other.0);
    }
}

impl GradSink {
    /// Record `g` as the gradient of `param`.
    pub fn put(&mut self, param: &Tensor, g: Vec<f32>) {
        self.0.push((param.clone(), g));
    }

    /// Record a linear layer's weight gradient `w` and, when it has a bias, `b`.
    pub fn put_linear(&mut self, l: &Linear, w: Vec<f32>, b: Option<Vec<f32>>) {
        self.put(l.weight(), w);
        if let (Some(bias), Some(gb)) = (l.bias(), b) {
            self.put(bias, gb);
        }
    }

    /// Add `other`'s gradients (from another part of the batch, in the same parameter order)
    /// into these.
    pub fn add(&mut self, other: GradSink) {
        assert!(
            self.0.len() == other.0.len()
                && self
                    .0
                    .iter()
                    .zip(&other.0)
                    .all(|(a, b)| a.0.id() == b.0.id()),
            "the parts' gradients are not in the same parameter order"
        );
        for ((_, a), (_, b)) in self.0.iter_mut().zip(other.0) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    /// Insert every gradient into candle's store.
    pub fn insert_into(self, grads: &mut GradStore) -> Result<()> {
        for (param, g) in self.0 {
            let t = Tensor::from_vec(g, param.shape(), param.device())?;
            grads.insert(&param, t);
        }
        Ok(())
    }
}

/// The check every kernel's tests run: central differences of `f(θ) = <c, output(θ)>` against
/// `gradient(θ, c)` (what the kernel's backward gives for output weights `c`) at every
/// `stride`-th coordinate of `θ`, in f64, with a fixed pseudo-random `c`. `θ` holds the values
/// the backward differentiates (weights, and inputs where the backward returns their gradient);
/// `output` runs the kernel's forward on them. Panics naming the first coordinate that
/// disagrees by more than `tol` (relative to `1 + |difference|`).
#[cfg(test)]
pub(crate) fn check_against_differences(
    theta: &[f32],
    output: impl Fn(&[f32]) -> Vec<f32>,
    gradient: impl Fn(&[f32], &[f32]) -> Vec<f32>,
    (eps, tol, stride): (f32, f64, usize),
) {
    let n = output(theta).len();
    let c: Vec<f32> = (0..n)
        .map(|i| ((i * 37 + 11) % 23) as f32 / 11.5 - 1.0)
        .collect();
    let f = |t: &[f32]| -> f64 {
        output(t)
            .iter()
            .zip(&c)
            .map(|(a, b)| *a as f64 * *b as f64)
            .sum()
    };
    let g = gradient(theta, &c);
    assert_eq!(g.len(), theta.len(), "one gradient per value");
    for i in (0..theta.len()).step_by(stride.max(1)) {
        let (mut plus, mut minus) = (theta.to_vec(), theta.to_vec());
        plus[i] += eps;
        minus[i] -= eps;
        let fd = (f(&plus) - f(&minus)) / (2.0 * eps as f64);
        assert!(
            (fd - g[i] as f64).abs() < tol * (1.0 + fd.abs()),
            "value {i}: backward {} vs differences {fd}",
            g[i]
        );
    }
}

/// Split a flat `θ` into consecutive pieces of the given lengths.
#[cfg(test)]
pub(crate) fn split<'a>(theta: &'a [f32], lens: &[usize]) -> Vec<&'a [f32]> {
    let mut out = Vec::with_capacity(lens.len());
    let mut at = 0;
    for &l in lens {
        out.push(&theta[at..at + l]);
        at += l;
    }
    assert_eq!(at, theta.len(), "lengths cover theta");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn parts_add_entry_by_entry_and_reach_the_store() {
        // two parts' gradients of one parameter: [1, 2] + [10, 20] = [11, 22]
        let v = Var::from_vec(vec![0f32, 0.0], 2, &Device::Cpu).unwrap();
        let (mut a, mut b) = (GradSink::default(), GradSink::default());
        a.put(v.as_tensor(), vec![1.0, 2.0]);
        b.put(v.as_tensor(), vec![10.0, 20.0]);
        a.add(b);
        let mut store = v.as_tensor().sum_all().unwrap().backward().unwrap();
        a.insert_into(&mut store).unwrap();
        let g: Vec<f32> = store.get(v.as_tensor()).unwrap().to_vec1().unwrap();
        assert_eq!(g, [11.0, 22.0]);
    }
}
