//! Operations with frozen operands, for towers that train around frozen weights (Adapter, LoRA,
//! BitFit): no gradient is computed or kept for an operand that tracks no variable
//! ([`super::graft`] says why candle would). When every operand tracks one (full fine-tuning,
//! the side networks) they are candle's own ops. When none does (encoding, evaluating frozen
//! towers), products, biases and same-shape sums run on the project's CPU loops in f32
//! (docs/STACK.md section 15).
//!
//! - [`add`], [`mul`], [`matmul`]: when one side tracks nothing (a dropout or attention mask, a
//!   layer scale, a position table, the frozen half of a residual, the frozen keys facing LoRA
//!   queries), the backward goes to the other side alone.
//! - [`Dense`]: `x W^T + b` as one `[N, in] x [in, out]` product; a frozen layer on a tracked
//!   input is one grafted node with backward `g W` (candle would add `x^T g` for `W`, a
//!   product as large as the forward, and an activation-sized gradient for the broadcast bias).
//!
//! LayerNorm with a frozen scale is in [`super::layer_norm`].

use candle_core::{CpuStorage, Module, Result, Storage, Tensor};

use super::cpu::{self, Op};
use super::graft::graft;

/// `x + m`, broadcasting, with no gradient computed or kept for an operand that tracks no
/// variable (when the other one does and has the result's shape).
pub fn add(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    let shape = x.shape().broadcast_shape_binary_op(m.shape(), "add")?;
    let value = || match same_shape_sum(x, m)? {
        Some(sum) => Ok(sum),
        None => x.detach().broadcast_add(&m.detach()),
    };
    match (x.track_op(), m.track_op()) {
        (true, false) if *x.shape() == shape => graft(x, value()?, |_, _, g| Ok(g.clone())),
        (false, true) if *m.shape() == shape => graft(m, value()?, |_, _, g| Ok(g.clone())),
        (false, false) => value(),
        _ => super::mixed::broadcast_add(x, m),
    }
}

/// `x + m` of two contiguous f32 CPU tensors of one shape, summed by the project's loop
/// ([`cpu::sum`]): candle's own element-wise ops fork onto a pool of spinning workers of their
/// own, which compete with the products' threads (docs/STACK.md section 15). `None` for any
/// other pair.
fn same_shape_sum(x: &Tensor, m: &Tensor) -> Result<Option<Tensor>> {
    if x.shape() != m.shape() {
        return Ok(None);
    }
    match with_f32(x, |a| with_f32(m, |b| cpu::sum(a, b))).flatten() {
        Some(v) => Ok(Some(Tensor::from_vec(v, x.shape(), x.device())?)),
        None => Ok(None),
    }
}

/// `x * m`, broadcasting, with no gradient computed or kept for an operand that tracks no
/// variable (when the other one does and has the result's shape).
pub fn mul(x: &Tensor, m: &Tensor) -> Result<Tensor> {
    let shape = x.shape().broadcast_shape_binary_op(m.shape(), "mul")?;
    let one_side = |tracked: &Tensor, other: &Tensor| -> Result<Tensor> {
        let value = x.detach().broadcast_mul(&m.detach())?;
        let other = other.clone();
        graft(tracked, value, move |_, _, g| g.broadcast_mul(&other))
    };
    match (x.track_op(), m.track_op()) {
        (true, false) if *x.shape() == shape => one_side(x, m),
        (false, true) if *m.shape() == shape => one_side(m, x),
        _ => super::mixed::broadcast_mul(x, m),
    }
}

/// `a.matmul(b)` (batched over leading dimensions, as candle's) with no gradient computed or
/// kept for an operand that tracks no variable: with only `a` tracking, the backward is
/// `g b^T` alone; with only `b`, `a^T g` alone.
pub fn matmul(a: &Tensor, b: &Tensor) -> Result<Tensor> {
    match (a.track_op(), b.track_op()) {
        (true, false) => {
            let value = a.detach().matmul(b)?;
            let b = b.clone();
            graft(a, value, move |_, _, g| g.contiguous()?.matmul(&b.t()?))
        }
        (false, true) => {
            let value = a.matmul(&b.detach())?;
            let a = a.clone();
            graft(b, value, move |_, _, g| a.t()?.matmul(&g.contiguous()?))
        }
        _ => a.matmul(b),
    }
}

/// A linear layer `x W^T + b` (`W` `[out, in]`, like `candle_nn::Linear`) over the last
/// dimension, computed as one product of all rows.
#[derive(Debug, Clone)]
pub struct Dense {
    weight: Tensor,
    bias: Option<Tensor>,
}

impl Dense {
    /// The layer of `weight` `[out, in]` and optional `bias` `[out]`.
    pub fn new(weight: Tensor, bias: Option<Tensor>) -> Dense {
        Dense { weight, bias }
    }

    /// The weight `[out, in]`.
    pub fn weight(&self) -> &Tensor {
        &self.weight
    }

    /// The bias `[out]`, if any.
    pub fn bias(&self) -> Option<&Tensor> {
        self.bias.as_ref()
    }

    fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let (out, inp) = self.weight.dims2()?;
        let mut dims = x.dims().to_vec();
        dims.pop();
        let rows: usize = dims.iter().product();
        let x2 = x.reshape((rows, inp))?;
        let w = &self.weight;
        let frozen = !w.track_op() && !self.bias.as_ref().is_some_and(|b| b.track_op());
        let y = match &self.bias {
            // nothing to differentiate (frozen inference, encoding)
            _ if frozen && !x2.track_op() => self.frozen_value(&x2)?,
            // a frozen layer on a tracked input: product and bias in one grafted node
            Some(_) if frozen => {
                let w = w.clone();
                graft(&x2, self.frozen_value(&x2)?, move |_, _, g| {
                    product(&g.contiguous()?, &w, Op::N)
                })?
            }
            Some(b) => add(&matmul(&x2, &w.t()?)?, b)?,
            None => matmul(&x2, &w.t()?)?,
        };
        dims.push(out);
        y.reshape(dims)
    }

    /// `x2 W^T + b` off the graph.
    fn frozen_value(&self, x2: &Tensor) -> Result<Tensor> {
        product_bias(&x2.detach(), &self.weight, Op::T, self.bias.as_ref())
    }
}

/// `a · op(w)` (`a` `[n, k]`, `w` `[k, m]` or, with `Op::T`, `[m, k]`) off the graph: on the
/// CPU in f32 the project's product ([`cpu::matmul`]: single-threaded gemm per block of rows,
/// one fork per product, docs/STACK.md section 5), elsewhere candle's.
fn product(a: &Tensor, w: &Tensor, tw: Op) -> Result<Tensor> {
    product_bias(a, w, tw, None)
}

/// [`product`] plus a `bias` `[m]` on every row. On the CPU in f32 the bias is added by the
/// project's loop ([`cpu::add_bias`], the same sums as candle's broadcast add, whose thread pool
/// spins against the products' threads: docs/STACK.md section 15).
fn product_bias(a: &Tensor, w: &Tensor, tw: Op, bias: Option<&Tensor>) -> Result<Tensor> {
    let (n, k) = a.dims2()?;
    let m = match tw {
        Op::N => w.dim(1)?,
        Op::T => w.dim(0)?,
    };
    let c = with_f32(a, |av| {
        with_f32(w, |wv| cpu::matmul_new(av, Op::N, wv, tw, (n, m, k)))
    });
    let Some(Some(mut c)) = c else {
        // not CPU f32: candle's product and broadcast add
        let y = match tw {
            Op::T => a.matmul(&w.t()?)?,
            Op::N => a.matmul(w)?,
        };
        return match bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        };
    };
    let Some(b) = bias else {
        return Tensor::from_vec(c, (n, m), a.device());
    };
    let added = with_f32(b, |bv| {
        let fits = bv.len() == m;
        if fits {
            cpu::add_bias(&mut c, bv);
        }
        fits
    });
    if added == Some(true) {
        return Tensor::from_vec(c, (n, m), a.device());
    }
    // a bias of another kind or length: candle's broadcast add (and its shape error)
    Tensor::from_vec(c, (n, m), a.device())?.broadcast_add(b)
}

/// `f` over the elements of a contiguous f32 tensor on the CPU; `None` for any other tensor.
pub(crate) fn with_f32<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Option<R> {
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(CpuStorage::F32(v)) = &*storage else {
        return None;
    };
    let (lo, hi) = layout.contiguous_offsets()?;
    Some(f(&v[lo..hi]))
}

impl Module for Dense {
    /// `x` `[..., in]` -> `[..., out]`.
    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        self.apply(x)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::graft::grad_entries;
    use crate::nn::testing::{max_diff, randn};
    use candle_core::Var;

    /// The frozen-operand ops against candle's plain ops on the same inputs: equal values, equal
    /// input gradients (to float rounding), and no gradient entry for the frozen operands.
    /// `matmul` both ways round: only `a` or only `b` tracking.
    #[test]
    fn frozen_ops_match_candle_and_leave_frozen_operands_alone() {
        let x = Var::from_tensor(&randn(&[2, 3, 4], 1)).unwrap();
        let w = randn(&[5, 4], 2);
        let b = randn(&[5], 3);
        let m = randn(&[5], 4);
        let run = |frozen: bool| {
            let dense = Dense::new(w.clone(), Some(b.clone()));
            let h = if frozen {
                mul(
                    &add(&dense.forward(x.as_tensor()).unwrap(), &m).unwrap(),
                    &m,
                )
                .unwrap()
            } else {
                let l = candle_nn::Linear::new(w.clone(), Some(b.clone()));
                l.forward(x.as_tensor())
                    .unwrap()
                    .broadcast_add(&m)
                    .unwrap()
                    .broadcast_mul(&m)
                    .unwrap()
            };
            // sum of squares: a gradient that differs per element, and no operand of its own
            let loss = h.sqr().unwrap().sum_all().unwrap();
            (h, loss.backward().unwrap())
        };
        let (hf, gf) = run(true);
        let (hp, gp) = run(false);
        assert!(max_diff(&hf, &hp) < 1e-6);
        let dx = |g: &candle_core::backprop::GradStore| g.get(x.as_tensor()).unwrap().clone();
        assert!(max_diff(&dx(&gf), &dx(&gp)) < 1e-5);
        // grafted: x's gradient alone; candle: also the transposed weight's, the broadcast
        // bias's and the two broadcast m's
        assert_eq!(grad_entries(&gf), 1);
        assert_eq!(grad_entries(&gp), 5);
    }

    /// Batched `matmul` with only `a` or only `b` tracking: candle's value and gradient for the
    /// tracked side, and nothing stored for the other.
    #[test]
    fn matmul_differentiates_the_tracked_side_only() {
        let a = randn(&[2, 3, 4], 10);
        let b = randn(&[2, 4, 5], 11);
        for a_tracks in [true, false] {
            let v = Var::from_tensor(if a_tracks { &a } else { &b }).unwrap();
            let (ta, tb) = if a_tracks {
                (v.as_tensor().clone(), b.clone())
            } else {
                (a.clone(), v.as_tensor().clone())
            };
            let y = matmul(&ta, &tb).unwrap();
            let g = y.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            let y_ref = ta.matmul(&tb).unwrap();
            let g_ref = y_ref.sqr().unwrap().sum_all().unwrap().backward().unwrap();
            assert!(max_diff(&y, &y_ref) < 1e-6);
            let d = |g: &candle_core::backprop::GradStore| g.get(v.as_tensor()).unwrap().clone();
            assert!(max_diff(&d(&g), &d(&g_ref)) < 1e-5);
            assert_eq!((grad_entries(&g), grad_entries(&g_ref)), (1, 2));
        }
    }
}
