//! The device path checked against the CPU path (docs/GPU.md): one configuration built twice
//! from one seed, once as the CPU trains it (`train.kernels` as configured, on the CPU: the
//! hand-written kernels and the in-place Adam) and once as another device trains it (candle
//! ops, autograd and the tensor Adam on `device`; with `device` the CPU, this is the same code
//! a GPU runs, on the CPU backend). Both take the same batches; after each, the loss and every
//! parameter's gradient are compared, then both take their Adam step. Before the next batch the
//! device model takes the CPU model's parameters, so every batch compares the two paths at the
//! same weights, along the CPU path's trajectory: Adam's first steps are about `lr` whatever a
//! gradient's size, so a gradient value that is zero up to rounding steps `+lr` on one path and
//! `-lr` on the other, and from a zero-initialised adapter up-projection such steps change the
//! next gradients by percents (measured on the H200: 3.3e-2 on an adapter's down-projection when
//! the models were left to drift). The parameters are compared after the last step: one step's
//! divergence. [`compare_towers`] runs the frozen towers on both.
//! `iisan check-device` prints the results; the CPU-side tests run it for every method.

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use serde::Serialize;

use super::Trainer;
use crate::backbone::bert::Bert;
use crate::backbone::inputs::{ItemImages, ItemTokens};
use crate::backbone::vit::Vit;
use crate::config::Plan;
use crate::data::Dataset;
use crate::efficiency::Profile;
use crate::error::{Error, Result};
use crate::model::{Kernels, TrainedModel};
use crate::nn::{Ctx, TowerDType};

/// The largest disagreement found between the two paths.
#[derive(Debug, Clone, Serialize)]
pub struct GradientCheck {
    /// Batches compared (each followed by one Adam step on both sides).
    pub batches: usize,
    /// Largest `|loss_a - loss_b| / |loss_a|` over the batches.
    pub loss_rel: f64,
    /// Largest over parameters and batches of `max |g_a - g_b| / max |g_a|` (gradients), the
    /// denominator at least [`ZERO_GRADIENT`] of the batch's largest gradient value.
    pub grad_rel: f64,
    /// The parameter (and batch) where `grad_rel` was found.
    pub worst_grad: String,
    /// Largest over batches of `||g_a - g_b|| / ||g_a||` over all parameters' gradients
    /// together (Euclidean norms): the gradient as a whole, which half precision's roundings
    /// perturb by about their size, where single values that are zero up to rounding in f32
    /// (`grad_rel`) can differ by their own size.
    pub grad_norm_rel: f64,
    /// Largest `|p_a - p_b|` of a parameter value after the last step. Adam's step is
    /// `lr m / (sqrt(v) + eps)`, about `lr` in size whatever the gradient's: a gradient value
    /// that is zero up to rounding can step `+lr` on one path and `-lr` on the other, so this
    /// is bounded by `2 lr` per step, not by the gradients' agreement.
    pub param_abs: f64,
    /// The share of parameter values that differ by more than a tenth of the smallest
    /// learning rate after the last step: the values where the two Adam steps went different
    /// ways (near-zero gradients only, when the gradients agree). Parameters whose gradient was
    /// zero up to rounding in the last batch (see [`ZERO_GRADIENT`]) are left out: Adam steps
    /// their noise by about `lr` either way.
    pub param_split: f64,
    /// Parameters compared.
    pub params: usize,
}

/// Gradients smaller than this share of the largest gradient value of the batch are compared
/// against that floor, not against themselves. A gradient that is zero in exact arithmetic (an
/// attention key's bias: softmax ignores a shift shared by all keys) is rounding noise on both
/// paths, and noise over noise is not a relative error; a small gradient deep in a tower carries
/// the rounding of everything above it, which on a GPU (another summation order in every
/// product) reached 4.8e-7 of the largest gradient value (an adapter's down-projection, whose
/// own values were below 1e-4 of the largest). Against this floor a tolerance of 1e-3 still
/// catches a wrong gradient as small as 1e-6 of the largest.
pub const ZERO_GRADIENT: f64 = 1e-3;

/// What a [`GradientCheck`] is held to.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    /// Largest `loss_rel`.
    pub loss: f64,
    /// Largest `grad_norm_rel`.
    pub gradient: f64,
    /// Largest `grad_rel` and `param_split` (f32 only: see [`Limits::of`]).
    pub values: Option<(f64, f64)>,
}

impl Limits {
    /// The limits of a device step in `precision` against the CPU's f32 step, the loss's and
    /// the gradients' replaced by `tolerance` when given. In f32 (two summation orders) every
    /// figure is held to 1e-3, single gradient values and the share of parameter values that
    /// stepped apart included. The half precisions round every product's operands to 8 (bf16)
    /// or 11 (f16) significant bits, 2^-9 = 2.0e-3 or 2^-12 = 2.4e-4 relative per rounding,
    /// compounded through the layers: the loss and the gradient as a whole are held, to about
    /// three times the largest figures measured for every method on the CPU backend
    /// (docs/GPU.md); single values are not, since a gradient value that is zero up to
    /// rounding in f32 is rounding noise of its own size in half precision, and Adam steps it
    /// by about `lr` either way.
    pub fn of(precision: TowerDType, tolerance: Option<f64>) -> Limits {
        let (loss, gradient, values) = match precision {
            TowerDType::F32 => (
                F32_TOLERANCE,
                F32_TOLERANCE,
                Some((F32_TOLERANCE, F32_TOLERANCE)),
            ),
            TowerDType::F16 => (3e-3, GRAD_F16, None),
            TowerDType::Bf16 => (3e-3, GRAD_BF16, None),
        };
        Limits {
            loss: tolerance.unwrap_or(loss),
            gradient: tolerance.unwrap_or(gradient),
            values: values.map(|(g, split)| (tolerance.unwrap_or(g), split)),
        }
    }

    /// Whether `g` is within these limits.
    pub fn holds(&self, g: &GradientCheck) -> bool {
        let values = self
            .values
            .is_none_or(|(v, split)| g.grad_rel <= v && g.param_split <= split);
        g.loss_rel <= self.loss && g.grad_norm_rel <= self.gradient && values
    }
}

/// What f32 on a device is held to against the CPU (relative; see [`Limits::of`]), and the
/// f32 towers of [`compare_towers`].
pub const F32_TOLERANCE: f64 = 1e-3;

/// The gradients' relative difference held in f16 and in bf16 (see [`Limits::of`]).
const GRAD_F16: f64 = 0.1;
const GRAD_BF16: f64 = 0.12;

/// `max |a|`.
fn max_abs(a: &[f32]) -> f64 {
    a.iter().fold(0f64, |m, x| m.max(x.abs() as f64))
}

/// `max |a - b|`.
fn max_abs_diff(a: &[f32], b: &[f32]) -> f64 {
    a.iter()
        .zip(b)
        .fold(0f64, |m, (x, y)| m.max((x - y).abs() as f64))
}

/// A tensor's values as f32 on the host.
fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_device(&Device::Cpu)?
        .to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

/// Compare the CPU path of `plan` in f32 with the device path on `device` in `precision`
/// (f32, or mixed bf16 / f16: then the gradients compared are the f32 masters', unscaled) over
/// the first `batches` batches of users (in user order, `train.batch` each).
pub fn compare_paths(
    plan: &Plan,
    data: &Dataset,
    (device, precision): (&Device, TowerDType),
    batches: usize,
) -> Result<GradientCheck> {
    let plan = &plan.changed(|c| c.train.precision = TowerDType::F32)?;
    let plan_b = plan.changed(|c| {
        c.train.kernels = Kernels::Autograd;
        c.train.precision = precision;
    })?;
    let model_a = plan.build_model_on(data, &Device::Cpu)?;
    let model_b = plan_b.build_model_on(data, device)?;
    let mut ta = Trainer::new(plan, data, &model_a)?;
    let mut tb = Trainer::new(&plan_b, data, &model_b)?;
    let b = plan.cfg().train.batch;
    let mut out = GradientCheck {
        batches: 0,
        loss_rel: 0.0,
        grad_rel: 0.0,
        worst_grad: String::new(),
        grad_norm_rel: 0.0,
        param_abs: 0.0,
        param_split: 0.0,
        params: model_a.params().params().len(),
    };
    // per parameter: was its gradient below the zero floor in the last batch?
    let mut noise = Vec::new();
    for k in 0..batches {
        let users: Vec<usize> = (k * b..((k + 1) * b).min(data.num_users())).collect();
        if users.is_empty() {
            break;
        }
        if k > 0 {
            take_parameters(&model_a, &model_b)?;
        }
        let (la, ga) = ta.gradients(&users, &mut Profile::default())?;
        let (lb, gb) = tb.scaled_gradients(&users)?;
        out.loss_rel = out
            .loss_rel
            .max(((la - lb).abs() / la.abs().max(1e-30)) as f64);
        let (r, name, zero, norm) = gradient_disagreement(&model_a, &model_b, &ga, &gb)?;
        noise = zero;
        out.grad_norm_rel = out.grad_norm_rel.max(norm);
        if r > out.grad_rel {
            (out.grad_rel, out.worst_grad) = (r, format!("{name} (batch {})", k + 1));
        }
        ta.opt.step(&ga)?;
        tb.opt.step(&gb)?;
        model_b.params().sync()?;
        out.batches += 1;
    }
    (out.param_abs, out.param_split) = stepped_apart(plan, &model_a, &model_b, &noise)?;
    Ok(out)
}

/// Set every parameter of `b` to `a`'s value (and `b`'s compute copies to its rounding).
fn take_parameters(a: &TrainedModel, b: &TrainedModel) -> Result<()> {
    for (pa, pb) in a.params().params().iter().zip(b.params().params()) {
        pb.var
            .set(&pa.var.as_tensor().to_device(pb.var.as_tensor().device())?)?;
    }
    b.params().sync()
}

/// After the last step: the largest difference of a parameter value, and the share of values
/// (of parameters whose last gradient was not zero up to rounding, `noise`) that differ by more
/// than a tenth of the smallest learning rate.
fn stepped_apart(
    plan: &Plan,
    a: &TrainedModel,
    b: &TrainedModel,
    noise: &[bool],
) -> Result<(f64, f64)> {
    let t = &plan.cfg().train;
    let lr_min = t.lr_groups.values().fold(t.lr, |m, &v| m.min(v));
    let (mut abs, mut split, mut total) = (0f64, 0usize, 0usize);
    for (i, (pa, pb)) in a
        .params()
        .params()
        .iter()
        .zip(b.params().params())
        .enumerate()
    {
        let (x, y) = (host(pa.var.as_tensor())?, host(pb.var.as_tensor())?);
        abs = abs.max(max_abs_diff(&x, &y));
        if noise.get(i).copied().unwrap_or(false) {
            continue;
        }
        split += x
            .iter()
            .zip(&y)
            .filter(|(p, q)| (*p - *q).abs() as f64 > lr_min / 10.0)
            .count();
        total += x.len();
    }
    Ok((abs, split as f64 / total.max(1) as f64))
}

/// The largest relative disagreement between two models' gradients (parameters in the same
/// order), the parameter where it is, which parameters' gradients are zero up to rounding, and
/// `||g_a - g_b|| / ||g_a||` over all parameters together: `max |g_a - g_b|` over `max |g_a|`,
/// the denominator at least [`ZERO_GRADIENT`] of the largest gradient value.
fn gradient_disagreement(
    a: &TrainedModel,
    b: &TrainedModel,
    ga: &GradStore,
    gb: &GradStore,
) -> Result<(f64, String, Vec<bool>, f64)> {
    let mut per = Vec::new(); // (name, max |g_a - g_b|, max |g_a|)
    let (mut diff2, mut norm2) = (0f64, 0f64);
    for (pa, pb) in a.params().params().iter().zip(b.params().params()) {
        let (Some(x), Some(y)) = (ga.get(pa.var.as_tensor()), gb.get(pb.var.as_tensor())) else {
            return Err(Error::Internal(format!(
                "{} has a gradient on one path only",
                pa.name
            )));
        };
        let (x, y) = (host(x)?, host(y)?);
        for (a, b) in x.iter().zip(&y) {
            diff2 += ((a - b) as f64).powi(2);
            norm2 += (*a as f64).powi(2);
        }
        per.push((pa.name.clone(), max_abs_diff(&x, &y), max_abs(&x)));
    }
    let floor = per.iter().fold(0f64, |m, p| m.max(p.2)) * ZERO_GRADIENT;
    let zero = per.iter().map(|p| p.2 < floor).collect();
    let (r, name) = per
        .into_iter()
        .map(|(name, diff, scale)| (diff / scale.max(floor).max(1e-30), name))
        .fold((0.0, String::new()), |m, p| if p.0 > m.0 { p } else { m });
    Ok((r, name, zero, (diff2 / norm2.max(1e-300)).sqrt()))
}

/// One frozen tower run on the CPU in f32 and on a device in a given precision.
#[derive(Debug, Clone, Serialize)]
pub struct TowerCheck {
    /// `text` or `image`.
    pub tower: String,
    /// The precision on the device.
    pub dtype: String,
    /// Items compared.
    pub items: usize,
    /// Largest absolute difference of a [CLS] state value.
    pub max_abs: f64,
    /// `max_abs` over the largest CPU value.
    pub rel: f64,
}

/// Run the frozen towers of `plan`'s `model.towers` over the first `n` items of `data` on the
/// CPU (f32) and on `device` (in `dtype`), and compare every [CLS] state.
pub fn compare_towers(
    plan: &Plan,
    data: &Dataset,
    device: &Device,
    dtype: TowerDType,
    n: usize,
) -> Result<Vec<TowerCheck>> {
    let tc = &plan.cfg().model.towers;
    let ids: Vec<u32> = (1..=n.min(data.num_items()) as u32).collect();
    let mut out = Vec::new();
    let mut push = |tower: &str, a: Tensor, b: Tensor| -> Result<()> {
        let (a, b) = (host(&a)?, host(&b)?);
        if a.len() != b.len() {
            return Err(Error::Internal(format!(
                "{tower} tower: {} values on the CPU, {} on the device",
                a.len(),
                b.len()
            )));
        }
        let diff = max_abs_diff(&a, &b);
        out.push(TowerCheck {
            tower: tower.into(),
            dtype: dtype.name().into(),
            items: ids.len(),
            max_abs: diff,
            rel: diff / max_abs(&a).max(1e-30),
        });
        Ok(())
    };
    if let Some(dir) = &tc.text_model {
        let tokens = ItemTokens::new(data, dir, tc.max_tokens)?;
        let run = |dev: &Device, dt: TowerDType| -> Result<Tensor> {
            let bert = Bert::load_as(dir, dev, dt.dtype())?;
            let (t, m) = tokens.batch(&ids, dev)?;
            bert.cls_states(&t, &m, &Ctx::eval())
        };
        push(
            "text",
            run(&Device::Cpu, TowerDType::F32)?,
            run(device, dtype)?,
        )?;
    }
    if let Some(dir) = &tc.image_model {
        let images = ItemImages::new(data, dir, tc.image_size, tc.missing_images)?;
        let run = |dev: &Device, dt: TowerDType| -> Result<Tensor> {
            let vit = Vit::load_as(dir, tc.image_size, dev, dt.dtype())?;
            vit.cls_states(&images.batch(&ids, dev)?, &Ctx::eval())
        };
        push(
            "image",
            run(&Device::Cpu, TowerDType::F32)?,
            run(device, dtype)?,
        )?;
    }
    Ok(out)
}
