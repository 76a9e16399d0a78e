//! Helpers of the tests of this layer: seeded random tensors and their largest difference.

use candle_core::{Device, Tensor};

/// Values uniform in [-1, 1) from a seeded stream (candle's CPU RNG cannot be seeded).
pub(crate) fn randn(shape: &[usize], seed: u64) -> Tensor {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::Xoshiro256PlusPlus::seed_from_u64(seed);
    let n: usize = shape.iter().product();
    let v: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    Tensor::from_vec(v, shape, &Device::Cpu).unwrap()
}

/// The largest absolute difference between `a` and `b`.
pub(crate) fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_scalar()
        .unwrap()
}
