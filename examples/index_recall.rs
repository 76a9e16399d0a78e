//! Recall and compute time of ranking through a run's ANN index against the exact scan, on
//! the same run: the served top 10 of each history compared with the exact top 10 over the
//! whole catalogue (recall@10 = the share of the exact top 10 served), and the time of one
//! history answered alone (as the server's compute thread does for a request that arrives
//! alone), p50 / p99, both ways. BENCHMARKS.md, "The ANN index".
//!
//! Usage: `cargo run --release --example index_recall -- RUN HISTORIES.txt [N] [TIMED_EXACT]
//! [PROBES]` (HISTORIES.txt: one history of item ids per line; N histories, default 10,000;
//! the exact scan is timed on the first TIMED_EXACT of them, default 1,000: at 10^7 items each
//! takes a tenth of a second or more; PROBES: lists scanned per query, default the index's).

use std::time::Instant;

use iisan::api::SearchMode;
use iisan::{Result, Run};

fn percentiles(mut ms: Vec<f64>) -> (f64, f64) {
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    (p(0.5), p(0.99))
}

/// Each history answered alone: the lists and the milliseconds each took.
fn one_by_one(run: &Run, hs: &[Vec<u32>]) -> Result<(Vec<Vec<u32>>, Vec<f64>)> {
    let (mut lists, mut ms) = (Vec::new(), Vec::new());
    for h in hs {
        let t = Instant::now();
        let top = run.recommend_rows(std::slice::from_ref(h), 10, false)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        lists.push(top[0].iter().map(|s| s.item).collect());
    }
    Ok((lists, ms))
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, file) = (std::path::Path::new(&args[0]), &args[1]);
    let n: usize = args.get(2).map_or(10_000, |s| s.parse().expect("N"));
    let timed: usize = args
        .get(3)
        .map_or(1_000, |s| s.parse().expect("TIMED_EXACT"));
    let probes = args.get(4).map(|s| s.parse().expect("PROBES"));
    let ann = Run::open_with(dir, probes.map_or(SearchMode::Auto, SearchMode::Probes))?;
    let exact = Run::open_with(dir, SearchMode::Exact)?;
    let text = std::fs::read_to_string(file).expect("histories file");
    let hs: Vec<Vec<u32>> = (text.lines().filter(|l| !l.trim().is_empty()).take(n))
        .map(|l| ann.rows(&l.split_whitespace().collect::<Vec<_>>()))
        .collect::<Result<_>>()?;
    // warm-up: page the matrix and the index in
    one_by_one(&ann, &hs[..hs.len().min(200)])?;
    one_by_one(&exact, &hs[..hs.len().min(5)])?;
    let (served, ann_ms) = one_by_one(&ann, &hs)?;
    let t = Instant::now();
    // the exact lists of every history, 256 at a time (one pass over the rows per group)
    let truth = exact.recommend_rows(&hs, 10, false)?;
    let batch_s = t.elapsed().as_secs_f64();
    let (_, exact_ms) = one_by_one(&exact, &hs[..hs.len().min(timed)])?;
    let hits: usize = (served.iter().zip(&truth))
        .map(|(s, t)| t.iter().filter(|x| s.contains(&x.item)).count())
        .sum();
    let (a50, a99) = percentiles(ann_ms);
    let (e50, e99) = percentiles(exact_ms);
    println!(
        "{} items, {} histories: recall@10 {:.4}; one history through the index p50 {a50:.3} ms, \
         p99 {a99:.3} ms; exact scan p50 {e50:.3} ms, p99 {e99:.3} ms ({} timed; all {} in \
         groups of 256: {batch_s:.1} s)",
        ann.num_items()?,
        hs.len(),
        hits as f64 / (10 * hs.len()) as f64,
        timed.min(hs.len()),
        hs.len(),
    );
    Ok(())
}
