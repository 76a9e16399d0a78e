//! Throughput of the project's row-major product (`nn::product::matmul`, over the `gemm` crate)
//! on the towers' shapes (text batches of 64 x 26 tokens, 224 px image batches of 32 x 257), in
//! GFLOP/s, beside `scripts/bench/gemm_rate.py` (PyTorch and NumPy's OpenBLAS on the same
//! shapes). Weights stored `[out, in]` as the towers' (`Op::T`), 2 threads:
//! `RAYON_NUM_THREADS=2 cargo run --release --example gemm_rate`.
use iisan::nn::cpu::{Op, matmul};
use std::time::Instant;

fn main() {
    let shapes = [
        (1664, 384, 384),
        (1664, 384, 1536),
        (1664, 1536, 384),
        (8224, 384, 384),
        (8224, 384, 1536),
        (8224, 1536, 384),
    ];
    for (m, k, n) in shapes {
        let a: Vec<f32> = (0..m * k).map(|i| ((i % 97) as f32) * 0.01).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i % 89) as f32) * 0.01).collect();
        let mut c = vec![0f32; m * n];
        let mut run = || matmul(&mut c, &a, Op::N, &b, Op::T, (m, n, k), false);
        run();
        run();
        let t = Instant::now();
        let mut reps = 0;
        while t.elapsed().as_secs_f64() < 1.5 {
            run();
            reps += 1;
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        let gf = 2.0 * (m * k * n) as f64 / dt / 1e9;
        println!("{m}x{k}x{n}: iisan {gf:.1} GF/s");
    }
}
