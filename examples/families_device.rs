//! The decoder and CLIP-family towers on a device against transformers' states: each parity
//! fixture (`tests/fixtures/families/`, golden states in `tests/golden/families.json`, the same
//! inputs `tests/families_parity.rs` checks on the CPU) run on DEVICE in f32, the relative
//! difference per hidden state (Frobenius norm of the difference over the reference's) printed
//! as one table row per family and pooling; exits 1 when any exceeds 1e-4.
//!
//! Usage: `cargo run --release --example families_device -- [DEVICE]` (default cuda; `cpu`
//! prints the CPU's row for comparison).

use std::path::Path;

use candle_core::{DType, Tensor};
use iisan::backbone::encoders::{ImageEncoder, TextEncoder};
use iisan::backbone::pooling::Pooling;
use iisan::nn::Ctx;
use serde_json::Value;

fn relative(got: &Tensor, want: &Value) -> Vec<f64> {
    let want: Vec<Vec<Vec<f32>>> = serde_json::from_value(want.clone()).expect("golden");
    let got: Vec<Vec<Vec<f32>>> = got.to_vec3().expect("states");
    (0..want[0].len())
        .map(|k| {
            let (mut num, mut den) = (0f64, 0f64);
            for (g, w) in got.iter().zip(&want) {
                for (a, b) in g[k].iter().zip(&w[k]) {
                    num += f64::from(a - b).powi(2);
                    den += f64::from(*b).powi(2);
                }
            }
            (num / den).sqrt()
        })
        .collect()
}

fn main() -> iisan::Result<()> {
    let arg = std::env::args().nth(1).unwrap_or_else(|| "cuda".into());
    let spec: iisan::nn::DeviceSpec = arg.parse().expect("DEVICE");
    let dev = spec.open()?;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("tests/golden/families.json")).expect("golden");
    let g: Value = serde_json::from_str(&text).expect("JSON");
    let fixture = |n: &str| root.join("tests/fixtures/families").join(n);
    let mut worst = 0f64;
    let mut row = |what: String, rel: Vec<f64>| {
        let cells: Vec<String> = rel.iter().map(|d| format!("{d:.1e}")).collect();
        println!("| {what} | {arg} | {} |", cells.join(" "));
        worst = rel.iter().cloned().fold(worst, f64::max);
    };
    for name in ["llama", "mistral", "qwen2", "qwen3"] {
        let f = &g["families"][name];
        let ids: Vec<Vec<u32>> = serde_json::from_value(f["ids"].clone()).expect("ids");
        let lens: Vec<usize> = serde_json::from_value(f["lengths"].clone()).expect("lengths");
        let rows: Vec<&[u32]> = ids.iter().zip(&lens).map(|(r, &n)| &r[..n]).collect();
        for p in [Pooling::Mean, Pooling::MeanUnmasked, Pooling::Last] {
            let tower = TextEncoder::load(&fixture(name), Some(p), &dev, DType::F32)?;
            let got = tower.states(&rows, ids[0].len(), &Ctx::eval())?;
            row(
                format!("{name} {}", p.name()),
                relative(&got, &f["pooling"][p.name()]),
            );
        }
    }
    for name in ["clip", "siglip"] {
        let f = &g["families"][name];
        let shape: Vec<usize> = serde_json::from_value(f["shape"].clone()).expect("shape");
        let px: Vec<f32> = serde_json::from_value(f["pixels"].clone()).expect("pixels");
        let px = Tensor::from_vec(px, shape.as_slice(), &dev)?;
        let tower = ImageEncoder::load(&fixture(name), shape[2], &dev, DType::F32)?;
        row(
            name.to_string(),
            relative(&tower.states(&px, &Ctx::eval())?, &f["states"]),
        );
    }
    println!("worst relative difference: {worst:.1e}");
    if worst > 1e-4 {
        std::process::exit(1);
    }
    Ok(())
}
