//! Trainable parameters: named `Var`s with an initialiser and a learning-rate group, drawn from
//! one seeded RNG so that a seed fixes every initial value (candle's own CPU RNG is unseeded).
//!
//! Under mixed precision (docs/GPU.md, "Mixed precision for training") each parameter is kept
//! twice: the f32 **master** that Adam updates, checkpoints save and the seed draws, and a
//! **compute copy** in the training precision (bf16 or f16) that the model's graph reads. The
//! graph's gradients arrive on the compute copies; [`ParamStore::master_grads`] hands them to
//! the masters in f32 (divided by the loss scale), and [`ParamStore::sync`] rounds the masters
//! into the compute copies after every update. In f32 the two are one variable.

use std::collections::HashMap;
use std::path::Path;

use candle_core::backprop::GradStore;
use candle_core::{DType, Device, Tensor, Var};
use candle_nn::Linear;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Normal};

use super::kernel::KernelNodes;
use crate::error::{Error, Result};

/// Learning-rate group name of parameters without a specific group (docs/MODEL.md section 5: 2e-4).
pub const GROUP_DEFAULT: &str = "default";

/// How a new parameter is initialised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// `N(0, std^2)`.
    Normal(f64),
    /// Xavier/Glorot normal for a `[fan_out, fan_in]` matrix: `std = sqrt(2 / (fan_in + fan_out))`.
    XavierNormal,
    /// `U(-bound, bound)`.
    Uniform(f64),
    /// PyTorch's `nn.Linear` default: `U(-1/sqrt(fan_in), 1/sqrt(fan_in))` (for the bias of a
    /// [`ParamStore::linear`] too, with the layer's input width as fan_in).
    TorchLinear,
}

/// One trainable parameter.
#[derive(Debug, Clone)]
pub struct Param {
    /// Unique dotted name (the checkpoint key).
    pub name: String,
    /// The variable: the f32 master, which the optimiser updates and checkpoints save.
    pub var: Var,
    /// Under mixed precision, the copy in the training precision that the graph reads (and
    /// whose gradient the backward pass computes); `None` in f32.
    pub compute: Option<Var>,
    /// Learning-rate group.
    pub group: &'static str,
}

impl Param {
    /// The variable the model's graph reads: the compute copy under mixed precision, else the
    /// master.
    pub fn graph(&self) -> &Var {
        self.compute.as_ref().unwrap_or(&self.var)
    }
}

/// All trainable parameters of a model, in creation order, and the record of what its kernel
/// nodes computed in a backward pass ([`KernelNodes`]).
#[derive(Debug)]
pub struct ParamStore {
    params: Vec<Param>,
    rng: StdRng,
    device: Device,
    nodes: KernelNodes,
    precision: DType,
}

impl ParamStore {
    /// An empty store whose initial values derive from `seed`.
    pub fn new(seed: u64, device: Device) -> Self {
        ParamStore {
            params: Vec::new(),
            rng: StdRng::seed_from_u64(seed),
            nodes: KernelNodes::new(&device).expect("a one-element variable"),
            device,
            precision: DType::F32,
        }
    }

    /// Train in `precision` (f32, bf16 or f16): every parameter created or registered from
    /// now on gets a compute copy in it (see the module doc). Set before the first parameter.
    pub fn set_precision(&mut self, precision: DType) -> Result<()> {
        if !self.params.is_empty() {
            return Err(Error::Internal(
                "the training precision is set before the first parameter".into(),
            ));
        }
        if !matches!(precision, DType::F32 | DType::BF16 | DType::F16) {
            return Err(Error::Internal(format!(
                "training precision {precision:?}: f32, bf16 or f16"
            )));
        }
        self.precision = precision;
        Ok(())
    }

    /// The precision the model's graph computes in (f32 unless [`ParamStore::set_precision`]).
    pub fn precision(&self) -> DType {
        self.precision
    }

    /// The gradients of `grads` (from [`ParamStore::backward`], on the graph's variables) as
    /// the masters' f32 gradients, each divided by `scale` (the loss scale; 1 without one).
    /// In f32 with a scale of 1 they are returned as they are.
    pub fn master_grads(&self, mut grads: GradStore, scale: f64) -> Result<GradStore> {
        if self.precision == DType::F32 && scale == 1.0 {
            return Ok(grads);
        }
        for p in &self.params {
            if let Some(g) = grads.remove(p.graph().as_tensor()) {
                let g = g.to_dtype(DType::F32)?;
                let g = if scale == 1.0 { g } else { (g / scale)? };
                grads.insert(p.var.as_tensor(), g);
            }
        }
        Ok(grads)
    }

    /// Round every master into its compute copy (after an update or a load); nothing in f32.
    pub fn sync(&self) -> Result<()> {
        for p in &self.params {
            if let Some(c) = &p.compute {
                c.set(&p.var.as_tensor().to_dtype(self.precision)?)?;
            }
        }
        Ok(())
    }

    /// The compute copy of `master` in the training precision (`None` in f32).
    fn compute_copy(&self, master: &Var) -> Result<Option<Var>> {
        if self.precision == DType::F32 {
            return Ok(None);
        }
        Ok(Some(Var::from_tensor(
            &master.as_tensor().to_dtype(self.precision)?,
        )?))
    }

    /// Where this store's kernels put their outputs on the graph.
    pub fn nodes(&self) -> &KernelNodes {
        &self.nodes
    }

    /// The gradient of every parameter `loss` depends on: candle's backward pass over the
    /// graph, kernel nodes included, then the gradients those nodes recorded for their weights.
    /// Returns them with the seconds per phase the nodes' backward recorded.
    pub fn backward(&self, loss: &Tensor) -> Result<(GradStore, Vec<(String, f64)>)> {
        // a failed pass leaves nothing behind for the next one
        self.nodes.take();
        let grads = loss.backward();
        let pending = self.nodes.take();
        let mut grads = grads?;
        pending.grads.insert_into(&mut grads)?;
        Ok((grads, pending.phases))
    }

    /// The device parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Create a parameter of `shape`. `fan` = (fan_out, fan_in) for the fan-based initialisers
    /// (for a 2-d shape it defaults to the shape itself).
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        group: &'static str,
    ) -> Result<Tensor> {
        if self.params.iter().any(|p| p.name == name) {
            return Err(Error::Internal(format!("parameter {name} created twice")));
        }
        let n: usize = shape.iter().product();
        let (fan_out, fan_in) = match shape {
            [o, i] => (*o, *i),
            [i] => (1, *i),
            _ => (n, 1),
        };
        let data: Vec<f32> = match init {
            Init::Zeros => vec![0.0; n],
            Init::Ones => vec![1.0; n],
            Init::Normal(std) => self.normal(n, std),
            Init::XavierNormal => self.normal(n, (2.0 / (fan_in + fan_out) as f64).sqrt()),
            Init::Uniform(b) => (0..n)
                .map(|_| self.rng.random_range(-b..b) as f32)
                .collect(),
            Init::TorchLinear => {
                let b = 1.0 / (fan_in as f64).sqrt();
                (0..n)
                    .map(|_| self.rng.random_range(-b..b) as f32)
                    .collect()
            }
        };
        let t = Tensor::from_vec(data, shape, &self.device)?;
        let var = Var::from_tensor(&t)?;
        let compute = self.compute_copy(&var)?;
        let param = Param {
            name: name.to_string(),
            var,
            compute,
            group,
        };
        let out = param.graph().as_tensor().clone();
        self.params.push(param);
        Ok(out)
    }

    /// Register an existing f32 variable (e.g. a pretrained tower weight made trainable) and,
    /// under mixed precision, the compute copy the model was built with (required then: the
    /// graph must read the copy whose gradient it computes).
    pub fn register(
        &mut self,
        name: &str,
        var: Var,
        compute: Option<Var>,
        group: &'static str,
    ) -> Result<()> {
        if self.params.iter().any(|p| p.name == name) {
            return Err(Error::Internal(format!("parameter {name} created twice")));
        }
        if var.dtype() != DType::F32 {
            return Err(Error::Internal(format!(
                "parameter {name}: the master is f32, not {:?}",
                var.dtype()
            )));
        }
        let fits = match &compute {
            Some(c) => c.dtype() == self.precision && self.precision != DType::F32,
            None => self.precision == DType::F32,
        };
        if !fits {
            return Err(Error::Internal(format!(
                "parameter {name}: compute copy {:?} in a {:?} store",
                compute.as_ref().map(|c| c.dtype()),
                self.precision
            )));
        }
        self.params.push(Param {
            name: name.to_string(),
            var,
            compute,
            group,
        });
        Ok(())
    }

    fn normal(&mut self, n: usize, std: f64) -> Vec<f32> {
        let d = Normal::new(0.0, std).expect("finite std");
        (0..n).map(|_| d.sample(&mut self.rng) as f32).collect()
    }

    /// A `Linear(input -> output)` with weight `[output, input]` initialised by `init` and a
    /// bias (zeros, or PyTorch's default for [`Init::TorchLinear`]) when `bias`.
    pub fn linear(
        &mut self,
        name: &str,
        input: usize,
        output: usize,
        bias: bool,
        init: Init,
        group: &'static str,
    ) -> Result<Linear> {
        let w = self.add(&format!("{name}.weight"), &[output, input], init, group)?;
        let b = if bias {
            let binit = match init {
                Init::TorchLinear => Init::Uniform(1.0 / (input as f64).sqrt()),
                _ => Init::Zeros,
            };
            Some(self.add(&format!("{name}.bias"), &[output], binit, group)?)
        } else {
            None
        };
        Ok(Linear::new(w, b))
    }

    /// A view that prefixes every name it creates with `prefix.` (as candle's `vb.pp`).
    pub fn pp(&mut self, prefix: impl AsRef<str>) -> ParamScope<'_> {
        ParamScope {
            prefix: prefix.as_ref().to_string(),
            store: self,
        }
    }

    /// All parameters in creation order.
    pub fn params(&self) -> &[Param] {
        &self.params
    }

    /// Number of trainable scalars.
    pub fn num_trainable(&self) -> usize {
        self.params.iter().map(|p| p.var.elem_count()).sum()
    }

    /// Copies of every parameter's current value (for keeping the best epoch's weights).
    pub fn snapshot(&self) -> Result<Vec<Tensor>> {
        Ok(self
            .params
            .iter()
            .map(|p| p.var.as_tensor().copy())
            .collect::<candle_core::Result<_>>()?)
    }

    /// Set every parameter from a [`ParamStore::snapshot`].
    pub fn restore(&self, snap: &[Tensor]) -> Result<()> {
        for (p, t) in self.params.iter().zip(snap) {
            p.var.set(t)?;
        }
        self.sync()
    }

    /// Write `values` (a snapshot, or the live values when `None`) as safetensors to `path`,
    /// through a temporary file renamed into place.
    pub fn save(&self, path: &Path, values: Option<&[Tensor]>) -> Result<()> {
        let map: HashMap<String, Tensor> = self
            .params
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let t = values.map_or_else(|| p.var.as_tensor().clone(), |v| v[i].clone());
                (p.name.clone(), t)
            })
            .collect();
        crate::atomic::write_tensors(path, &map)
    }

    /// Load values saved by [`ParamStore::save`]; a missing tensor or a shape mismatch is an
    /// error naming the file and the tensor.
    pub fn load(&self, path: &Path) -> Result<()> {
        let map = candle_core::safetensors::load(path, &self.device)
            .map_err(|e| Error::file(path, format!("cannot read checkpoint: {e}")))?;
        for p in &self.params {
            let t = map
                .get(&p.name)
                .ok_or_else(|| Error::file(path, format!("missing tensor {}", p.name)))?;
            if t.dims() != p.var.dims() {
                return Err(Error::file(
                    path,
                    format!(
                        "tensor {} has shape {:?}, expected {:?}",
                        p.name,
                        t.dims(),
                        p.var.dims()
                    ),
                ));
            }
            p.var.set(&t.to_dtype(DType::F32)?)?;
        }
        self.sync()
    }
}

/// A [`ParamStore`] seen under a name prefix: `store.pp("item").pp("text").add("w", ...)`
/// creates `item.text.w`.
pub struct ParamScope<'a> {
    store: &'a mut ParamStore,
    prefix: String,
}

impl ParamScope<'_> {
    /// The full name of `name` under this scope.
    pub fn name(&self, name: &str) -> String {
        format!("{}.{name}", self.prefix)
    }

    /// A nested scope `prefix.sub`.
    pub fn pp(&mut self, sub: impl AsRef<str>) -> ParamScope<'_> {
        let prefix = self.name(sub.as_ref());
        ParamScope {
            store: self.store,
            prefix,
        }
    }

    /// [`ParamStore::add`] under this scope.
    pub fn add(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        group: &'static str,
    ) -> Result<Tensor> {
        let full = self.name(name);
        self.store.add(&full, shape, init, group)
    }
}

#[cfg(test)]
#[path = "params_tests.rs"]
mod tests;
