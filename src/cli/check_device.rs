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
use iisan::train::device_check::{compare_paths, compare_towers};

/// The largest share of parameter values whose Adam steps may go different ways.
const MAX_SPLIT: f64 = 1e-3;

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
    /// Largest relative difference accepted for the loss, a gradient or a parameter.
    #[arg(long, default_value_t = 1e-3)]
    tolerance: f64,
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
    let data = Dataset::load(&plan.cfg().data.dir, &plan.cfg().data.options)?;
    let g = compare_paths(&plan, &data, &device, a.batches)?;
    println!(
        "{} on {}: {} batches, {} parameters; loss rel {:.2e}, gradient rel {:.2e} (worst {}); \
         after the Adam steps: parameters max |diff| {:.2e}, {:.4}% stepped apart",
        plan.cfg().method_label(),
        a.device,
        g.batches,
        g.params,
        g.loss_rel,
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
        let v = json!({"device": a.device.to_string(), "tolerance": a.tolerance,
            "gradients": g, "towers": towers});
        iisan::atomic::write_text(path, &serde_json::to_string_pretty(&v).expect("json"))?;
    }
    // Adam steps about lr either way (see GradientCheck::param_abs): what is held for the
    // parameters is that at most one value in a thousand stepped apart
    let towers_ok = towers
        .iter()
        .filter(|t| t.dtype == "f32")
        .all(|t| t.rel <= a.tolerance);
    let ok = g.loss_rel <= a.tolerance
        && g.grad_rel <= a.tolerance
        && g.param_split <= MAX_SPLIT
        && towers_ok;
    if !ok {
        return Err(Error::Internal(format!(
            "the device path differs from the CPU path by more than {:e} (or more than {:e} of \
             the parameters stepped apart)",
            a.tolerance, MAX_SPLIT
        )));
    }
    println!("within {:e}", a.tolerance);
    Ok(())
}
