//! Time of one batch call of the library API: `Run::recommend` on many histories of item ids
//! at once (the call `iisan.Run.recommend` makes from Python; `scripts/bench/python_overhead.sh`
//! runs both on the same run and histories). Prints the median and the best of the repeats.
//!
//! Usage: `cargo run --release --example recommend_batch -- RUN HISTORIES.txt [REPEATS] [K]`
//! (HISTORIES.txt: one history of item ids per line; default 7 repeats, k = 10).

use std::time::Instant;

/// The allocator of the `iisan` binary and of the Python extension (glibc's would pay page
/// faults on every chunk's score matrix, making this side the slow one).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> iisan::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (dir, file) = (&args[0], &args[1]);
    let repeats: usize = args.get(2).map_or(7, |s| s.parse().expect("REPEATS"));
    let k: usize = args.get(3).map_or(10, |s| s.parse().expect("K"));
    let run = iisan::Run::open(std::path::Path::new(dir))?;
    let text = std::fs::read_to_string(file).expect("histories file");
    let histories: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .filter(|h: &Vec<&str>| !h.is_empty())
        .collect();
    // warm-up: page in the matrix, size the allocator's pools
    run.recommend(&histories[..histories.len().min(500)], k, false)?;
    let mut secs = Vec::with_capacity(repeats);
    for _ in 0..repeats {
        let t = Instant::now();
        let top = run.recommend(&histories, k, false)?;
        secs.push(t.elapsed().as_secs_f64());
        assert_eq!(top.len(), histories.len());
    }
    secs.sort_by(f64::total_cmp);
    println!(
        "rust   {} histories x {} items, k {k}: median {:.4} s, best {:.4} s ({repeats} repeats)",
        histories.len(),
        run.num_items()?,
        secs[secs.len() / 2],
        secs[0]
    );
    Ok(())
}
