//! Golden test: the loss and the full-ranking evaluator against numbers produced by the
//! independent PyTorch reference (`../shared/reference/iisan_ref.py`) on fixed inputs.
//! Producer: `scripts/golden/loss_eval.py` -> `tests/golden/loss_eval.json` (committed).

use candle_core::{Device, Tensor};
use iisan::data::batch::TrainBatch;
use iisan::eval::{Mask, Metrics, ranking::rank_chunked};
use iisan::train::loss::LossPlan;
use serde_json::Value;

fn golden() -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/loss_eval.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn matrix(v: &Value) -> Tensor {
    let rows: Vec<Vec<f32>> = serde_json::from_value(v.clone()).unwrap();
    let (r, c) = (rows.len(), rows[0].len());
    Tensor::from_vec(rows.concat(), (r, c), &Device::Cpu).unwrap()
}

#[test]
fn loss_matches_the_reference() {
    let g = golden();
    let seq: Vec<Vec<u32>> = serde_json::from_value(g["seq"].clone()).unwrap();
    let pop: Vec<f64> = serde_json::from_value(g["pop"].clone()).unwrap();
    let e_table = matrix(&g["E"]);
    let p = matrix(&g["P"]);
    let width = seq[0].len();
    let batch = TrainBatch {
        slots: seq.concat(),
        batch: seq.len(),
        width,
    };
    let idx = Tensor::from_slice(&batch.slots, batch.slots.len(), &Device::Cpu).unwrap();
    let e = e_table.index_select(&idx, 0).unwrap();
    let plan = LossPlan::new(&batch, &pop, &Device::Cpu).unwrap();
    let loss = plan.loss(&p, &e).unwrap().to_scalar::<f32>().unwrap() as f64;
    let want = g["loss"].as_f64().unwrap();
    assert!(
        (loss - want).abs() < 1e-5,
        "loss {loss} vs reference {want}"
    );
}

#[test]
fn ranking_metrics_match_the_reference_under_both_masks() {
    let g = golden();
    let items = matrix(&g["E"]);
    let users = matrix(&g["U"]);
    let targets: Vec<u32> = serde_json::from_value(g["targets"].clone()).unwrap();
    let hists: Vec<Vec<u32>> = serde_json::from_value(g["histories"].clone()).unwrap();
    let hist_refs: Vec<&[u32]> = hists.iter().map(Vec::as_slice).collect();
    let ks: Vec<usize> = serde_json::from_value(g["ks"].clone()).unwrap();
    let ranks = rank_chunked(&users, &items, &targets, &hist_refs, 5).unwrap();
    for mask in [Mask::History, Mask::None] {
        let r: Vec<u64> = ranks.iter().map(|x| *x.get(mask)).collect();
        let got = Metrics::from_ranks(&r, &ks);
        let want: Metrics = serde_json::from_value(g["metrics"][mask.name()].clone()).unwrap();
        assert_eq!(
            got.0.keys().collect::<Vec<_>>(),
            want.0.keys().collect::<Vec<_>>()
        );
        for (k, w) in &want.0 {
            assert!(
                (got.get(*k) - w).abs() < 1e-9,
                "{} {k}: {} vs reference {w}",
                mask.name(),
                got.get(*k)
            );
        }
    }
}
