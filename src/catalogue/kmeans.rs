//! k-means (Lloyd's rounds) and nearest-centroid assignment: the partition of the ANN index's
//! inverted file (`super::inverted_file`). The distance is Euclidean; the nearest centroid of
//! `x` is the one of largest `x . c - |c|^2 / 2`, so a block of rows is assigned by one matrix
//! product with every centroid (the project's `gemm` product, on the compute threads).
//!
//! Written here because the crates that do k-means in Rust (linfa-clustering, kmeans) either
//! pull in an ndarray stack or have no matrix-product assignment; this is the forty lines the
//! index needs. Deterministic: the first centroids are rows spread evenly through the sample,
//! an emptied list is re-seeded from the largest, and the same input gives the same centroids.

use rayon::prelude::*;

use crate::error::Result;
use crate::nn::product::{Op, matmul};
use crate::progress::{Reporter, Task, Unit};

/// Rows assigned per matrix product (with 16,384 centroids, 64 MiB of scores).
const BLOCK: usize = 1024;

/// The nearest of the centroids `cents` (`[c, d]`) to each row of `x` (`[n, d]`), reporting
/// rows done to `task`.
pub fn nearest(x: &[f32], cents: &[f32], d: usize, task: Option<&Task>) -> Vec<u32> {
    let c = cents.len() / d;
    let half: Vec<f32> = cents
        .chunks_exact(d)
        .map(|r| r.iter().map(|v| v * v).sum::<f32>() / 2.0)
        .collect();
    let mut out = Vec::with_capacity(x.len() / d);
    let mut s = Vec::new();
    for block in x.chunks(BLOCK * d) {
        let m = block.len() / d;
        s.resize(m * c, 0.0);
        matmul(&mut s, block, Op::N, cents, Op::T, (m, c, d), false);
        out.par_extend(s.par_chunks(c).map(|row| best(row, &half)));
        if let Some(t) = task {
            t.advance(m as u64);
        }
    }
    out
}

/// The column of the largest `row[j] - half[j]` (the first on ties).
fn best(row: &[f32], half: &[f32]) -> u32 {
    let mut top = (f32::NEG_INFINITY, 0u32);
    for (j, (&v, &h)) in row.iter().zip(half).enumerate() {
        if v - h > top.0 {
            top = (v - h, j as u32);
        }
    }
    top.1
}

/// `lists` centroids of the rows `x` (`[n, d]`, n >= lists >= 1) after `rounds` of Lloyd's
/// algorithm, starting from rows spread evenly through `x`. A list left empty by a round is
/// re-seeded with a member of the largest list (scaled by a hair, so that the two split it).
pub fn train(
    x: &[f32],
    d: usize,
    lists: usize,
    rounds: usize,
    progress: &Reporter,
) -> Result<Vec<f32>> {
    let n = x.len() / d;
    assert!(
        (1..=n).contains(&lists),
        "k-means: {lists} lists of {n} rows"
    );
    let mut cents: Vec<f32> = (0..lists)
        .flat_map(|j| x[(j * n / lists) * d..][..d].iter().copied())
        .collect();
    let task = progress.task("k-means rounds", Unit::Steps, rounds as u64, 0);
    for _ in 0..rounds {
        let a = nearest(x, &cents, d, None);
        let mut sum = vec![0f64; lists * d];
        let mut count = vec![0usize; lists];
        for (row, &j) in x.chunks_exact(d).zip(&a) {
            count[j as usize] += 1;
            let s = &mut sum[j as usize * d..][..d];
            s.iter_mut().zip(row).for_each(|(s, v)| *s += *v as f64);
        }
        for j in 0..lists {
            let c = &mut cents[j * d..][..d];
            if count[j] > 0 {
                let s = &sum[j * d..][..d];
                c.iter_mut()
                    .zip(s)
                    .for_each(|(c, s)| *c = (*s / count[j] as f64) as f32);
            } else {
                let big = (0..lists).max_by_key(|&b| count[b]).expect("lists >= 1");
                let p = a
                    .iter()
                    .position(|&l| l as usize == big)
                    .expect("non-empty");
                let scale = 1.0 + 1e-3 * (j as f32 + 1.0);
                c.iter_mut()
                    .zip(&x[p * d..][..d])
                    .for_each(|(c, v)| *c = v * scale);
                count[big] -= 1;
            }
        }
        task.advance(1);
        progress.check(|| "index build stopped".into())?;
    }
    task.finish();
    Ok(cents)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_is_the_closest_centroid_by_euclidean_distance() {
        // centroids (0,0) and (4,0): (1,5) is nearer the first (1+25 < 9+25), (3,-1) the
        // second (9+1 > 1+1); ties ((2,0): 4 = 4) go to the first
        let cents = [0.0, 0.0, 4.0, 0.0];
        let x = [1.0, 5.0, 3.0, -1.0, 2.0, 0.0];
        assert_eq!(nearest(&x, &cents, 2, None), [0, 1, 0]);
    }

    #[test]
    fn two_separated_groups_end_at_their_means() {
        // rows 0-2 around (0,0), rows 3-5 around (10,10); the first centroids are rows 0 and
        // 3 (spread evenly: j * 6 / 2), one round assigns each group to its own, and the
        // means are (1/3, 1/3) and (31/3, 31/3); a second round changes nothing
        let x = [
            0.0, 0.0, 1.0, 0.0, 0.0, 1.0, //
            10.0, 10.0, 11.0, 10.0, 10.0, 11.0,
        ];
        let c = train(&x, 2, 2, 2, &Reporter::silent()).unwrap();
        let want = [1.0 / 3.0, 1.0 / 3.0, 31.0 / 3.0, 31.0 / 3.0];
        for (a, b) in c.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{c:?}");
        }
    }

    #[test]
    fn an_emptied_list_is_reseeded_from_the_largest() {
        // three rows at (1,1) and one at (9,9), three lists: the first centroids are rows 0,
        // 1 and 2 (j * 4 / 3), all (1,1). Round 1: every row goes to list 0 (first on ties;
        // mean (3,3)); lists 1 and 2 are re-seeded from list 0's first member, (1,1) scaled
        // by 1.002 and 1.003. Round 2: the (1,1) rows go to list 1 (nearest), (9,9) stays in
        // list 0, list 2 empties again and is re-seeded from list 1 (the largest) by 1.003
        let x = [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 9.0, 9.0];
        let c = train(&x, 2, 3, 2, &Reporter::silent()).unwrap();
        let want = [9.0, 9.0, 1.0, 1.0, 1.003, 1.003];
        for (a, b) in c.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{c:?}");
        }
        assert_eq!(nearest(&x, &c, 2, None), [1, 1, 1, 0]);
    }
}
