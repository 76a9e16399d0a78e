//! Compute time of one recommendation (no HTTP): a finished run's user encoder and catalogue
//! (through its ANN index when it has one) ranking single histories one at a time, as the
//! server's compute thread does for a request
//! that arrives alone. Prints the catalogue size and p50 / p99 / mean milliseconds.
//!
//! Usage: `cargo run --release --example recommend_latency -- RUN HISTORIES.txt [N]`
//! (HISTORIES.txt: one history of item ids per line; N histories timed, default 2000).

use std::time::Instant;

fn main() -> iisan::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (run, file) = (&args[0], &args[1]);
    let n: usize = args.get(2).map_or(2000, |s| s.parse().expect("N"));
    let mode = iisan::api::SearchMode::Auto;
    let model = iisan::run::finished::open_served(std::path::Path::new(run), mode)?;
    let text = std::fs::read_to_string(file).expect("histories file");
    let histories: Vec<Vec<u32>> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(n)
        .map(|l| model.rows(&l.split_whitespace().collect::<Vec<_>>()))
        .collect::<iisan::Result<_>>()?;
    // warm-up: page in the matrix, size the allocator's pools
    for h in histories.iter().take(50) {
        model.recommend(std::slice::from_ref(h), 10, false)?;
    }
    let mut ms = Vec::with_capacity(histories.len());
    for h in &histories {
        let t = Instant::now();
        let top = model.recommend(std::slice::from_ref(h), 10, false)?;
        ms.push(t.elapsed().as_secs_f64() * 1e3);
        assert_eq!(top[0].len(), 10);
    }
    ms.sort_by(f64::total_cmp);
    let p = |q: f64| ms[((ms.len() as f64 * q).ceil() as usize).clamp(1, ms.len()) - 1];
    println!(
        "{} items, {} single histories: p50 {:.3} ms, p99 {:.3} ms, mean {:.3} ms",
        iisan::scorer::Scorer::num_items(&model),
        ms.len(),
        p(0.5),
        p(0.99),
        ms.iter().sum::<f64>() / ms.len() as f64
    );
    Ok(())
}
