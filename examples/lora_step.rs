//! What LoRA through a decoder text tower costs per item: forward in training mode and backward
//! through the whole frozen tower to rank-r LoRA matrices on every layer's query and value (the
//! LoRA baseline's placement), for batches of titles from a dataset. The figure the cost curve
//! (BENCHMARKS.md, "Larger towers") sets beside cached IISAN, whose step never runs the tower.
//! Prints one JSON line: parameters, batch, seconds per step (each timed step), per item, and
//! the process's peak RSS.
//!
//! Usage: `cargo run --release --example lora_step -- TOWER DATASET [BATCH] [STEPS] [DEVICE]`
//! (BATCH titles per step, default 8; STEPS timed steps after one warm-up, default 3; DEVICE
//! cpu or cuda, default cpu).

use std::path::Path;
use std::time::Instant;

use candle_core::DType;
use iisan::backbone::decoder::Decoder;
use iisan::backbone::decoder_config::DecoderConfig;
use iisan::backbone::inputs::token_tensors;
use iisan::backbone::peft::{PeftBuilder, TowerTuning};
use iisan::backbone::pooling::Pooling;
use iisan::data::text::{TextPrep, TokenBatch};
use iisan::nn::{Ctx, ParamStore};

fn main() -> iisan::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (tower, dataset) = (Path::new(&args[0]), Path::new(&args[1]));
    let batch: usize = args.get(2).map_or(8, |s| s.parse().expect("BATCH"));
    let steps: usize = args.get(3).map_or(3, |s| s.parse().expect("STEPS"));
    let spec: iisan::nn::DeviceSpec = args
        .get(4)
        .map_or("cpu", String::as_str)
        .parse()
        .expect("DEVICE");
    let dev = spec.open()?;
    let file = tower.join("config.json");
    let v =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("config.json")).expect("JSON");
    let config = DecoderConfig::from_json(v, &file)?;
    let params = config.parameters();
    let vb = iisan::backbone::open_weights(tower, &dev, DType::F32)?;
    let mut store = ParamStore::new(0, dev.clone());
    let mut peft = PeftBuilder {
        store: &mut store,
        tuning: TowerTuning::Lora { r: 8, alpha: 1.0 },
        prefix: "text".into(),
    };
    let decoder = Decoder::with_peft(vb, config, &file, Some(&mut peft))?;
    let prep = TextPrep::from_model_dir(tower, 30)?;
    let items = std::fs::read_to_string(dataset.join("items.tsv")).expect("items.tsv");
    let titles: Vec<&str> = items
        .lines()
        .filter_map(|l| l.split_once('\t').map(|(_, t)| t))
        .collect();
    let ctx = Ctx::train(0);
    let mut seconds = Vec::new();
    for step in 0..=steps {
        let rows: Vec<Vec<u32>> = (0..batch)
            .map(|i| prep.encode(titles[(step * batch + i) % titles.len()]))
            .collect::<iisan::Result<_>>()?;
        let refs: Vec<&[u32]> = rows.iter().map(Vec::as_slice).collect();
        let (ids, mask) = token_tensors(TokenBatch::pad(&refs), &dev)?;
        let t = Instant::now();
        let states = decoder.pooled_states(&ids, &mask, Pooling::Mean, &ctx)?;
        let last = states.narrow(1, states.dim(1)? - 1, 1)?;
        let loss = last.sqr()?.mean_all()?;
        let _ = store.backward(&loss)?;
        if step > 0 {
            seconds.push(t.elapsed().as_secs_f64());
        }
    }
    let mean = seconds.iter().sum::<f64>() / seconds.len() as f64;
    println!(
        "{}",
        serde_json::json!({
            "tower": tower.display().to_string(), "parameters": params,
            "lora_parameters": store.num_trainable(), "batch": batch,
            "seconds_per_step": seconds, "seconds_per_item": mean / batch as f64,
            "peak_rss_mib": iisan::efficiency::peak_rss_mib(),
        })
    );
    Ok(())
}
