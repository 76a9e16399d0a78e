//! Ops that combine a half-precision activation with a small operand broadcast over it (a
//! bias, a LayerNorm scale, a gate, a position table): under mixed precision (docs/GPU.md) the
//! small operand's gradient sums the activation-sized gradient over the broadcast dimensions,
//! and candle (0.11) sums a bf16 / f16 tensor in its own precision, one element after another
//! on the CPU: over a batch of 2,048 token rows a bias gradient carries thousands of roundings
//! of 2^-9 each, and a gate's (summed over every element of its path) is noise in bf16 and
//! overflows f16 under the loss scale. PyTorch sums half-precision tensors in f32. Here the
//! sum is taken in f32 and rounded once; the value and the other input's gradient are
//! candle's. In f32 each op is candle's own, unchanged.

use candle_core::{DType, Module, Tensor};
use candle_nn::{Embedding, Linear};

use super::graft::graft2;

/// Whether `x op p` needs the f32 sum: `x` in half precision, `p` tracking a variable and
/// broadcast over `x` (smaller, and `x` of the result's shape; anything else is candle's op).
fn half_and_tracked(x: &Tensor, p: &Tensor) -> bool {
    let broadcast = x.shape() != p.shape()
        && (x.shape().broadcast_shape_binary_op(p.shape(), "mixed")).is_ok_and(|s| s == *x.shape());
    x.dtype() != DType::F32 && p.track_op() && broadcast
}

/// `g` (of the broadcast result's shape) summed in f32 down to `like`'s shape (right-aligned
/// broadcasting, as candle's), rounded to `like`'s dtype.
pub fn sum_to(g: &Tensor, like: &Tensor) -> candle_core::Result<Tensor> {
    let mut s = g.to_dtype(DType::F32)?;
    let lead = s.rank() - like.rank();
    for _ in 0..lead {
        s = s.sum(0)?;
    }
    for (i, &d) in like.dims().iter().enumerate() {
        if d == 1 && s.dim(i)? > 1 {
            s = s.sum_keepdim(i)?;
        }
    }
    s.to_dtype(like.dtype())
}

/// `x + p`, broadcasting `p` (see the module doc).
pub fn broadcast_add(x: &Tensor, p: &Tensor) -> candle_core::Result<Tensor> {
    if !half_and_tracked(x, p) {
        return x.broadcast_add(p);
    }
    let value = x.detach().broadcast_add(&p.detach())?;
    graft2(x, p, value, |x, p, _, g| {
        let dx = x.track_op().then(|| g.clone());
        Ok((dx, Some(sum_to(g, p)?)))
    })
}

/// `x * p`, broadcasting `p` (see the module doc).
pub fn broadcast_mul(x: &Tensor, p: &Tensor) -> candle_core::Result<Tensor> {
    if !half_and_tracked(x, p) {
        return x.broadcast_mul(p);
    }
    let value = x.detach().broadcast_mul(&p.detach())?;
    graft2(x, p, value, |x, p, _, g| {
        let dx = x.track_op().then(|| g.broadcast_mul(p)).transpose()?;
        let dp = sum_to(&(g.to_dtype(DType::F32)? * x.to_dtype(DType::F32)?)?, p)?;
        Ok((dx, Some(dp)))
    })
}

/// The rows `ids` (a 1-d u32 tensor) of `table`: candle's `index_select`; a half-precision
/// table that trains gets its gradient (rows added up where an id repeats, e.g. a position
/// shared by every user of a batch) summed in f32.
pub fn index_select(table: &Tensor, ids: &Tensor) -> candle_core::Result<Tensor> {
    if table.dtype() == DType::F32 || !table.track_op() {
        return table.index_select(ids, 0);
    }
    let value = table.detach().index_select(ids, 0)?;
    let ids = ids.clone();
    super::graft::graft(table, value, move |table, _, g| {
        let acc = Tensor::zeros(table.shape(), DType::F32, table.device())?;
        acc.index_add(&ids, &g.to_dtype(DType::F32)?, 0)?
            .to_dtype(table.dtype())
    })
}

/// `e(ids)`: the embeddings of `ids` (any shape) through [`index_select`], shaped
/// `[ids.., hidden]`.
pub fn embedding(e: &Embedding, ids: &Tensor) -> candle_core::Result<Tensor> {
    let mut dims = ids.dims().to_vec();
    let rows = index_select(e.embeddings(), &ids.flatten_all()?)?;
    dims.push(rows.dim(1)?);
    rows.reshape(dims)
}

/// `l(x)`: candle's `Linear` in f32; in half precision its product, then the bias by
/// [`broadcast_add`].
pub fn linear(l: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
    match l.bias() {
        Some(b) if half_and_tracked(x, b) => {
            let w = l.weight();
            let y = match x.rank() {
                2 => x.matmul(&w.t()?)?,
                _ => x.broadcast_matmul(&w.t()?)?,
            };
            broadcast_add(&y, b)
        }
        _ => l.forward(x),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// A tensor's values in f32, flattened.
    fn f32s(t: &Tensor) -> Vec<f32> {
        let t = t.to_dtype(DType::F32).unwrap();
        t.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The gradients of the sum of `y` (taken in f32).
    fn grads_of_sum(y: &Tensor) -> candle_core::backprop::GradStore {
        let sum = y.to_dtype(DType::F32).unwrap().sum_all().unwrap();
        sum.backward().unwrap()
    }

    /// A half-precision variable holding `v` (in `dtype`) shaped `shape`.
    fn var(v: Vec<f32>, shape: &[usize], dtype: DType) -> Var {
        let t = Tensor::from_vec(v, shape, &Device::Cpu).unwrap();
        Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
    }

    /// A bias of 1s added to 4,096 rows of 1s in bf16, and d(sum)/d bias: by hand every
    /// element of the gradient is 4,096 (the number of rows). Summed in bf16 one row after
    /// another the running sum stops growing at 256 (256 + 1 rounds back to 256 with 8 bits);
    /// summed in f32 it is exact, and 4,096 is a power of two, exact in bf16.
    #[test]
    fn a_half_precision_bias_gradient_is_summed_in_f32() {
        let x = var(vec![1.0; 4096 * 3], &[4096, 3], DType::BF16);
        let b = var(vec![1.0; 3], &[3], DType::BF16);
        let y = broadcast_add(x.as_tensor(), b.as_tensor()).unwrap();
        assert_eq!(f32s(&y).iter().sum::<f32>(), 2.0 * 4096.0 * 3.0);
        let g = grads_of_sum(&y);
        assert_eq!(f32s(g.get(b.as_tensor()).unwrap()), [4096.0; 3]);
        assert_eq!(f32s(g.get(x.as_tensor()).unwrap()), vec![1.0; 4096 * 3]);
        // candle's own op: the bf16 sum saturates
        let g = grads_of_sum(&x.as_tensor().broadcast_add(b.as_tensor()).unwrap());
        assert_eq!(f32s(g.get(b.as_tensor()).unwrap()), [256.0; 3]);
    }

    /// `x * p` with `x = [[1, 2], [3, 4]]`, `p = [10, 100]` (f16): d(sum)/dx = p per row,
    /// d(sum)/dp = column sums of x = [4, 6]; a `p` of shape [1] (10) gets the sum of all of
    /// x, 10, and gives 10 to every element of x.
    #[test]
    fn a_broadcast_product_differentiates_both_sides() {
        let x = var(vec![1.0, 2.0, 3.0, 4.0], &[2, 2], DType::F16);
        for (p, want_p, want_x) in [
            (
                vec![10f32, 100.0],
                [4f32, 6.0].to_vec(),
                [10f32, 100.0, 10.0, 100.0],
            ),
            (vec![10.0], [10.0].to_vec(), [10.0; 4]),
        ] {
            let n = p.len();
            let pv = var(p, &[n], DType::F16);
            let g = grads_of_sum(&broadcast_mul(x.as_tensor(), pv.as_tensor()).unwrap());
            assert_eq!(f32s(g.get(pv.as_tensor()).unwrap()), want_p);
            assert_eq!(f32s(g.get(x.as_tensor()).unwrap()), want_x);
        }
    }
}
