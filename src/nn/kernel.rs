//! The one seam of the hand-written CPU ops (the IISAN side-network path, its collapsed heads,
//! the SASRec user encoder, the in-batch loss). A [`Kernel`] holds its weights, read out of the
//! model's tensors once per step into named fields; its forward keeps what its backward needs
//! ([`Kernel::Saved`], a typed struct); its backward turns the gradient of the output into
//! named gradients ([`Kernel::Grads`]: one field per weight, and the input's). Each kernel has a
//! reference twin on candle ops, differentiated by autograd, that its tests compare it with
//! (`train.kernels = "autograd"` runs the twins). The owner of the weights puts the named
//! gradients into a [`GradSink`] against its parameter tensors; the trainer hands the sink to
//! the optimiser.

use candle_core::Tensor;
use candle_core::backprop::GradStore;
use candle_nn::Linear;

use crate::error::Result;

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
