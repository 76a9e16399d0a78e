//! `iisan index synth`: a clone of a trained run whose catalogue holds the real items first and
//! unchanged, then generated ones drawn around them (a Gaussian kernel density estimate: per
//! dimension the generated items' spread is the real items' times sqrt(1 + h^2), h the
//! bandwidth factor), that `recommend` serves; the same seed gives the same bytes; the source
//! run is never the output.

mod common;

use std::path::Path;

use candle_core::Device;
use common::*;

fn matrix(run: &Path) -> (usize, usize, Vec<f32>) {
    let t = candle_core::safetensors::load(run.join("items.safetensors"), &Device::Cpu).unwrap();
    let m = &t["items"];
    let (r, d) = m.dims2().unwrap();
    (r, d, m.flatten_all().unwrap().to_vec1().unwrap())
}

/// Per-dimension standard deviation of `rows` (`d` wide).
fn sd(rows: &[f32], d: usize) -> Vec<f64> {
    let n = (rows.len() / d) as f64;
    (0..d)
        .map(|k| {
            let col = rows.iter().skip(k).step_by(d).map(|&x| x as f64);
            let mean = col.clone().sum::<f64>() / n;
            (col.map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt()
        })
        .collect()
}

#[test]
fn the_clone_keeps_the_real_items_and_draws_the_rest_around_them() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let data = small_synth(t, "d", 80, 40);
    train_run(t, &run_sets(&data, "r", "id"));
    let synth = |out: &str| {
        iisan(
            t,
            &["index", "synth", "runs/r", "--items", "20000", "--out", out],
        )
    };
    let o = synth("runs/big");
    assert!(o.status.success(), "{}", stderr(&o));
    let h: f64 = stdout(&o)
        .split("bandwidth factor ")
        .nth(1)
        .unwrap()
        .trim()
        .trim_end_matches(')')
        .parse()
        .unwrap();
    let (r0, d, real) = matrix(&t.join("runs/r"));
    let (r1, d1, all) = matrix(&t.join("runs/big"));
    assert_eq!((r1, d1), (r0 + 20_000, d));
    assert_eq!(&all[..real.len()], &real[..], "real rows unchanged");
    let ids = std::fs::read_to_string(t.join("runs/big/item_ids.txt")).unwrap();
    let src = std::fs::read_to_string(t.join("runs/r/item_ids.txt")).unwrap();
    assert!(ids.starts_with(&src) && ids.ends_with("synth-20000\n"));
    assert_eq!(ids.lines().count(), r1 - 1);
    // spread: each generated dimension's sd within 10 % of the kernel estimate's
    let (want, got) = (sd(&real[d..], d), sd(&all[real.len()..], d));
    for k in 0..d {
        let expect = want[k] * (1.0 + h * h).sqrt();
        assert!(
            (got[k] / expect - 1.0).abs() < 0.1,
            "dim {k}: {} vs {expect}",
            got[k]
        );
    }
    // it serves, over the grown catalogue
    let o = iisan(
        t,
        &[
            "recommend",
            "runs/big",
            "--history",
            "S0001 S0002",
            "-k",
            "3",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    // the same seed again replaces its own output with the same bytes
    let before = std::fs::read(t.join("runs/big/items.safetensors")).unwrap();
    assert!(synth("runs/big").status.success());
    assert_eq!(
        std::fs::read(t.join("runs/big/items.safetensors")).unwrap(),
        before
    );
    // never into the source run
    one_line_exit_2(&synth("runs/r"), &["runs/r"]);
}
