//! `iisan check-device`: the device path against the CPU path on a configuration's first
//! batches (loss, every gradient, the parameters after the Adam steps) and its frozen towers
//! on both, within stated tolerances (docs/GPU.md).

use std::path::PathBuf;

use clap::Args;
use serde_json::json;

use iisan::config::Config;
use iisan::data::Dataset;
use iisan::error::{Error, Result};
use iisan::nn::{DeviceSpec, TowerDType};
use iisan::train::device_check::{F32_TOLERANCE, Limits, compare_paths, compare_towers};

/// `iisan check-device` arguments.
#[derive(Args)]
pub(crate) struct CheckDeviceArgs {
    /// TOML config file (the model and data to check); omitted keys take the defaults.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Override one key, e.g. `--set train.batch=32` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    sets: Vec<String>,
    /// The device checked against the CPU kernels (cpu: the autograd path on the CPU).
    #[arg(long, default_value = "cuda")]
    device: DeviceSpec,
    /// Batches compared (each followed by an Adam step on both paths).
    #[arg(long, default_value_t = 3)]
    batches: usize,
    /// The precision of the device path's training step: f32, or the mixed bf16 / f16
    /// (compared with the CPU's f32 step; default: the config's train.precision).
    #[arg(long, value_enum)]
    precision: Option<TowerDType>,
    /// Largest relative difference accepted for the loss and a gradient (default: 1e-3 in f32,
    /// the half precisions' own: see docs/GPU.md).
    #[arg(long)]
    tolerance: Option<f64>,
    /// Items run through each frozen tower of model.towers (0: no tower check).
    #[arg(long, default_value_t = 64)]
    tower_items: usize,
    /// The towers' precision on the device (f32 is held to --tolerance; half precision is
    /// reported, not held).
    #[arg(long, value_enum, default_value = "f32")]
    tower_dtype: TowerDType,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// `iisan check-device`.
pub(crate) fn check_device(a: CheckDeviceArgs) -> Result<()> {
    let mut plan = Config::load(a.config.as_deref(), &a.sets)?.check()?;
    if !a.device.is_cpu() {
        // the device draws its own dropout masks: compare with dropout off
        plan = plan.changed(|c| c.model.user.dropout = 0.0)?;
    }
    let device = a.device.open()?;
    let precision = a.precision.unwrap_or(plan.cfg().train.precision);
    let limits = Limits::of(precision, a.tolerance);
    let data = Dataset::load(&plan.cfg().data.dir, &plan.cfg().data.options)?;
    let g = compare_paths(&plan, &data, (&device, precision), a.batches)?;
    println!(
        "{} on {} in {}: {} batches, {} parameters; loss rel {:.2e}, gradients rel {:.2e} \
         (norm), {:.2e} (worst value: {}); after the Adam steps: parameters max |diff| {:.2e}, \
         {:.4}% stepped apart",
        plan.cfg().method_label(),
        a.device,
        precision.name(),
        g.batches,
        g.params,
        g.loss_rel,
        g.grad_norm_rel,
        g.grad_rel,
        g.worst_grad,
        g.param_abs,
        100.0 * g.param_split
    );
    let towers = if a.tower_items > 0 {
        compare_towers(&plan, &data, &device, a.tower_dtype, a.tower_items)?
    } else {
        Vec::new()
    };
    for t in &towers {
        println!(
            "{} tower in {} on {}: {} items, max |diff| {:.2e}, rel {:.2e}",
            t.tower, t.dtype, a.device, t.items, t.max_abs, t.rel
        );
    }
    if let Some(path) = &a.json {
        let v = json!({"device": a.device.to_string(), "precision": precision.name(),
            "limits": limits, "gradients": g, "towers": towers});
        iisan::atomic::write_text(path, &serde_json::to_string_pretty(&v).expect("json"))?;
    }
    // Adam steps about lr either way (see GradientCheck::param_abs): what is held for the
    // parameters is the share of values that stepped apart
    let towers_ok = towers
        .iter()
        .filter(|t| t.dtype == "f32")
        .all(|t| t.rel <= a.tolerance.unwrap_or(F32_TOLERANCE));
    let values = limits
        .values
        .map_or("single values reported, not held".into(), |(v, s)| {
            format!("each gradient {v:e}, at most {s:e} of the parameters stepped apart")
        });
    if !(limits.holds(&g) && towers_ok) {
        return Err(Error::Internal(format!(
            "the device path in {} differs from the CPU path by more than its limits (loss \
             {:e}, gradients as a whole {:e}; {values})",
            precision.name(),
            limits.loss,
            limits.gradient,
        )));
    }
    println!(
        "within the {} limits (loss {:e}, gradients as a whole {:e}; {values})",
        precision.name(),
        limits.loss,
        limits.gradient,
    );
    Ok(())
}
