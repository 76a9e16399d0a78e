//! Grafting: a value computed outside the autograd graph, put back on it as one node whose
//! gradient goes to ONE input ([`graft`]) or to two ([`graft2`]), by a backward written by
//! hand (docs/STACK.md section 14).
//!
//! Why by hand: candle's backprop (0.11, `backprop.rs`) computes, for every node on a path to
//! a variable, the gradient of EVERY operand: `x.matmul(w.t())` with a frozen `w` still costs
//! a second matmul for `w`'s gradient, and `x.broadcast_mul(gamma)` with a frozen `gamma` a
//! gradient of the activation's shape for the broadcast `gamma`. Those gradients land in the
//! gradient store under operands that nothing consumes, so they are never freed until the whole
//! backward pass ends. candle has no "stop gradient on this operand" switch, and its custom ops
//! are the only public way to give an op a backward of one's own: a [`CustomOp1`] on the input
//! whose backward is the caller's closure. (Upstream candle could do the same by skipping
//! `or_insert` for operands `sorted_nodes` did not mark as tracking a variable: issue #1241,
//! PRs #3508 / #3773.)
//!
//! The forward of the op does not compute anything: the caller computes the value with
//! ordinary tensor ops on the detached input (so candle's fused, vectorised kernels do the
//! work), and the op hands back a copy of it (a custom op must return a storage it owns; the
//! copy is one pass over the output, small next to the product that made it).

use std::sync::Mutex;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Storage, Tensor, bail};

/// The backward of a grafted value: `(input, value, gradient of value) -> gradient of input`.
type Backward = dyn Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync;

/// A grafted value, handed out once as the op's forward.
struct Held(Mutex<Option<Tensor>>);

/// The custom op: hands out `value` once, and calls `backward`.
struct Graft {
    value: Held,
    backward: Box<Backward>,
}

impl Held {
    /// Hold `value`, copied first unless it is laid out as its whole storage.
    fn new(value: Tensor) -> candle_core::Result<Held> {
        let value = if owns_storage(&value) {
            value
        } else {
            value.force_contiguous()?
        };
        Ok(Held(Mutex::new(Some(value))))
    }

    /// The value, taken (the op runs its forward exactly once), with its storage and layout
    /// checked to be one dense block.
    fn take(&self) -> candle_core::Result<Tensor> {
        let v = self.0.lock().expect("not poisoned").take();
        let Some(v) = v else {
            bail!("graft: the value was already taken")
        };
        if !v.is_contiguous() || v.layout().start_offset() != 0 {
            bail!("graft: the value must be a fresh contiguous tensor")
        }
        Ok(v)
    }
}

/// Number of elements a CPU storage holds.
fn cpu_len(s: &CpuStorage) -> usize {
    match s {
        CpuStorage::U8(v) => v.len(),
        CpuStorage::U32(v) => v.len(),
        CpuStorage::I64(v) => v.len(),
        CpuStorage::BF16(v) => v.len(),
        CpuStorage::F16(v) => v.len(),
        CpuStorage::F32(v) => v.len(),
        CpuStorage::F64(v) => v.len(),
        _ => usize::MAX,
    }
}

impl Held {
    /// The op's forward on the CPU: a copy of the value.
    fn cpu_value(&self) -> candle_core::Result<(CpuStorage, Shape)> {
        let v = self.take()?;
        let (storage, layout) = v.storage_and_layout();
        let Storage::Cpu(s) = &*storage else {
            bail!("graft: the value is not on the CPU")
        };
        // CpuStorage::try_clone copies the whole buffer, whatever the layout says
        if cpu_len(s) != layout.shape().elem_count() {
            bail!("graft: the value must own its whole storage")
        }
        Ok((s.try_clone(layout)?, layout.shape().clone()))
    }

    /// The op's forward on a CUDA device: a copy of the value (compiled in every build: without
    /// the `cuda` feature candle's dummy CUDA backend stands in).
    fn cuda_value(&self) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let v = self.take()?;
        let (storage, layout) = v.storage_and_layout();
        let Storage::Cuda(s) = &*storage else {
            bail!("graft: the value is not on the CUDA device")
        };
        Ok((s.try_clone(layout)?, layout.shape().clone()))
    }
}

impl CustomOp1 for Graft {
    fn name(&self) -> &'static str {
        "graft"
    }

    fn cpu_fwd(&self, _: &CpuStorage, _: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        self.value.cpu_value()
    }

    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.value.cuda_value()
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        Ok(Some((self.backward)(arg, res, grad)?))
    }
}

/// The backward of a value grafted onto two inputs: `(a, b, value, gradient of value) ->
/// (gradient of a, gradient of b)`.
type Backward2 = dyn Fn(&Tensor, &Tensor, &Tensor, &Tensor) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)>
    + Send
    + Sync;

/// [`Graft`] on two inputs.
struct Graft2 {
    value: Held,
    backward: Box<Backward2>,
}

impl CustomOp2 for Graft2 {
    fn name(&self) -> &'static str {
        "graft2"
    }

    fn cpu_fwd(
        &self,
        _: &CpuStorage,
        _: &Layout,
        _: &CpuStorage,
        _: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.value.cpu_value()
    }

    fn cuda_fwd(
        &self,
        _: &candle_core::CudaStorage,
        _: &Layout,
        _: &candle_core::CudaStorage,
        _: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        self.value.cuda_value()
    }

    fn bwd(
        &self,
        a: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        (self.backward)(a, b, res, grad)
    }
}

/// Whether `v` is laid out as its whole storage, densely from the start (what the op's forward
/// can hand back as a copy of the storage).
fn owns_storage(v: &Tensor) -> bool {
    if !v.is_contiguous() || v.layout().start_offset() != 0 {
        return false;
    }
    match &*v.storage_and_layout().0 {
        Storage::Cpu(s) => cpu_len(s) == v.elem_count(),
        _ => true,
    }
}

/// `value` (computed from `input` outside the graph) as a node of `input`'s graph whose gradient
/// goes to `input` alone, as `backward(input, value, gradient)`. When `input` tracks no
/// variable there is nothing to graft onto and `value` is returned as it is.
pub fn graft<F>(input: &Tensor, value: Tensor, backward: F) -> candle_core::Result<Tensor>
where
    F: Fn(&Tensor, &Tensor, &Tensor) -> candle_core::Result<Tensor> + Send + Sync + 'static,
{
    if !input.track_op() {
        return Ok(value);
    }
    let op = Graft {
        value: Held::new(value)?,
        backward: Box::new(backward),
    };
    input.apply_op1(op)
}

/// `value` (computed from `a` and `b` outside the graph) as a node of their graph whose
/// gradients are `backward(a, b, value, gradient)` (`None` for an input that needs none). At
/// least one input must track a variable.
pub fn graft2<F>(a: &Tensor, b: &Tensor, value: Tensor, backward: F) -> candle_core::Result<Tensor>
where
    F: Fn(
            &Tensor,
            &Tensor,
            &Tensor,
            &Tensor,
        ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)>
        + Send
        + Sync
        + 'static,
{
    let op = Graft2 {
        value: Held::new(value)?,
        backward: Box::new(backward),
    };
    a.apply_op2(b, op)
}

/// Entries in a gradient store: its Debug output lists one `TensorId(..)` per entry (the store
/// has no iterator in candle 0.11). For tests that count what a backward pass kept.
#[cfg(test)]
pub(crate) fn grad_entries(g: &candle_core::backprop::GradStore) -> usize {
    format!("{g:?}").matches("TensorId(").count()
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// y = graft(x, 3x, g -> 3g) behaves as y = 3x: value 3x, d(sum y)/dx = 3 everywhere; and a
    /// frozen tensor used only inside the value gets no gradient entry at all.
    #[test]
    fn value_is_kept_and_the_gradient_is_the_hand_written_one() {
        let x = Var::new(&[1f32, -2.0, 0.5], &Device::Cpu).unwrap();
        let frozen = Tensor::new(&[3f32, 3.0, 3.0], &Device::Cpu).unwrap();
        let value = x.as_tensor().detach().mul(&frozen).unwrap();
        let f = frozen.clone();
        let y = graft(x.as_tensor(), value, move |_, _, g| g.mul(&f)).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [3.0, -6.0, 1.5]);
        let grads = y.sum_all().unwrap().backward().unwrap();
        assert_eq!(
            grads.get(x.as_tensor()).unwrap().to_vec1::<f32>().unwrap(),
            [3.0, 3.0, 3.0]
        );
        assert!(grads.get(&frozen).is_none());
        assert_eq!(grad_entries(&grads), 1, "x alone");
        // the plain product stores a gradient for the frozen operand (what grafting avoids)
        let plain = x.as_tensor().mul(&frozen).unwrap();
        let grads = plain.sum_all().unwrap().backward().unwrap();
        assert!(grads.get(&frozen).is_some());
        assert_eq!(grad_entries(&grads), 2);
    }

    /// An input that tracks nothing gets its value back untouched (no node, no copy); a view that
    /// does not own its storage is copied first.
    #[test]
    fn untracked_inputs_and_views() {
        let x = Tensor::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let v = Tensor::new(&[5f32, 6.0], &Device::Cpu).unwrap();
        let y = graft(&x, v.clone(), |_, _, g| Ok(g.clone())).unwrap();
        assert_eq!(y.id(), v.id());
        let t = Var::new(&[1f32, 2.0], &Device::Cpu).unwrap();
        let big = Tensor::new(&[9f32, 7.0, 8.0], &Device::Cpu).unwrap();
        let view = big.narrow(0, 1, 2).unwrap();
        let y = graft(t.as_tensor(), view, |_, _, g| Ok(g.clone())).unwrap();
        assert_eq!(y.to_vec1::<f32>().unwrap(), [7.0, 8.0]);
    }
}
