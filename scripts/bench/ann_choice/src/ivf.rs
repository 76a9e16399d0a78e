//! An inverted-file index (IVF) for inner products, as a candidate against the HNSW crates:
//! k-means centroids trained on a sample, every item in the list of its nearest centroid (by
//! Euclidean distance), f16 copies of the rows laid out list by list; a query ranks the
//! centroids, scans the best `nprobe` lists and re-scores its best candidates exactly.
//!
//! Two ways to rank the lists: by `q . c` alone, or by an estimate of the best score in the
//! list, `q . c + |q| s_c sqrt(2 ln n_c)` (the expected maximum of `n_c` Gaussian residual
//! projections, `s_c` the list's residual spread per dimension).

use std::time::Instant;

use gemm::{Parallelism, gemm};
use half::f16;
use rayon::prelude::*;

use crate::{K, pct, recall, rescore};

/// c[m, n] = a[m, k] . b[n, k]^T, row-major, on every thread.
fn mm_t(c: &mut [f32], a: &[f32], b: &[f32], m: usize, n: usize, k: usize) {
    unsafe {
        gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            1,
            n as isize,
            false,
            a.as_ptr(),
            1,
            k as isize,
            b.as_ptr(),
            k as isize,
            1,
            0.0,
            1.0,
            false,
            false,
            false,
            Parallelism::Rayon(0),
        )
    }
}

/// For each row of `x` the nearest centroid (argmax of x.c - |c|^2/2) and that distance term.
fn assign(x: &[f32], cents: &[f32], d: usize) -> Vec<u32> {
    let nc = cents.len() / d;
    let half: Vec<f32> = cents
        .chunks_exact(d)
        .map(|c| c.iter().map(|v| v * v).sum::<f32>() / 2.0)
        .collect();
    let mut out = Vec::with_capacity(x.len() / d);
    let mut s = Vec::new();
    for block in x.chunks(4096 * d) {
        let m = block.len() / d;
        s.resize(m * nc, 0.0);
        mm_t(&mut s, block, cents, m, nc, d);
        out.par_extend(s.par_chunks(nc).map(|row| {
            let mut best = (f32::MIN, 0u32);
            for (j, (&v, &h)) in row.iter().zip(&half).enumerate() {
                let t = v - h;
                if t > best.0 {
                    best = (t, j as u32);
                }
            }
            best.1
        }));
    }
    out
}

/// Lloyd's k-means on `x` from `nc` rows spread through it; `iters` rounds.
fn kmeans(x: &[f32], d: usize, nc: usize, iters: usize) -> Vec<f32> {
    let n = x.len() / d;
    let mut cents: Vec<f32> = (0..nc)
        .flat_map(|j| x[(j * n / nc) * d..(j * n / nc + 1) * d].to_vec())
        .collect();
    for it in 0..iters {
        let a = assign(x, &cents, d);
        let mut sum = vec![0f64; nc * d];
        let mut cnt = vec![0usize; nc];
        for (i, &c) in a.iter().enumerate() {
            cnt[c as usize] += 1;
            for (s, v) in sum[c as usize * d..][..d]
                .iter_mut()
                .zip(&x[i * d..(i + 1) * d])
            {
                *s += *v as f64;
            }
        }
        let mut empty = 0;
        for j in 0..nc {
            if cnt[j] == 0 {
                // re-seed from a point of the biggest list
                empty += 1;
                let big = (0..nc).max_by_key(|&b| cnt[b]).unwrap();
                let p = a.iter().position(|&c| c as usize == big).unwrap();
                let jitter = 1.0 + 1e-3 * (j as f32 + 1.0);
                for t in 0..d {
                    cents[j * d + t] = x[p * d + t] * jitter;
                }
                continue;
            }
            for t in 0..d {
                cents[j * d + t] = (sum[j * d + t] / cnt[j] as f64) as f32;
            }
        }
        eprintln!("k-means round {it}: {empty} empty");
    }
    cents
}

/// The index: centroids, list offsets, item numbers and f16 rows in list order, spreads.
pub struct Ivf {
    d: usize,
    cents: Vec<f32>,
    offsets: Vec<usize>,
    ids: Vec<u32>,
    rows: Vec<f16>,
    /// |q|-factor of the list's bonus: s_c sqrt(2 ln n_c).
    bonus: Vec<f32>,
}

impl Ivf {
    pub fn build(items: &[f32], d: usize, nc: usize, train: usize, iters: usize) -> Ivf {
        let n = items.len() / d;
        let step = (n / train.min(n)).max(1);
        let sample: Vec<f32> = (0..n)
            .step_by(step)
            .flat_map(|i| items[i * d..(i + 1) * d].iter().copied())
            .collect();
        let cents = kmeans(&sample, d, nc, iters);
        let a = assign(items, &cents, d);
        let mut cnt = vec![0usize; nc + 1];
        for &c in &a {
            cnt[c as usize + 1] += 1;
        }
        for j in 0..nc {
            cnt[j + 1] += cnt[j];
        }
        let offsets = cnt.clone();
        let mut at = cnt;
        let mut ids = vec![0u32; n];
        for (i, &c) in a.iter().enumerate() {
            ids[at[c as usize]] = i as u32;
            at[c as usize] += 1;
        }
        let rows: Vec<f16> = ids
            .iter()
            .flat_map(|&i| {
                items[i as usize * d..(i as usize + 1) * d]
                    .iter()
                    .map(|&v| f16::from_f32(v))
            })
            .collect();
        let bonus = (0..nc)
            .map(|j| {
                let (lo, hi) = (offsets[j], offsets[j + 1]);
                if hi <= lo + 1 {
                    return 0.0;
                }
                let c = &cents[j * d..(j + 1) * d];
                let ss: f64 = ids[lo..hi]
                    .iter()
                    .map(|&i| {
                        let r = &items[i as usize * d..(i as usize + 1) * d];
                        r.iter()
                            .zip(c)
                            .map(|(a, b)| ((a - b) * (a - b)) as f64)
                            .sum::<f64>()
                    })
                    .sum();
                let s = (ss / ((hi - lo) * d) as f64).sqrt();
                (s * (2.0 * ((hi - lo) as f64).ln()).sqrt()) as f32
            })
            .collect();
        Ivf {
            d,
            cents,
            offsets,
            ids,
            rows,
            bonus,
        }
    }

    /// The best `cand` items by f16 score over the `nprobe` best lists.
    pub fn search(&self, q: &[f32], nprobe: usize, cand: usize, bonus: bool) -> Vec<usize> {
        let d = self.d;
        let qn = q.iter().map(|v| v * v).sum::<f32>().sqrt();
        let mut lists: Vec<(f32, u32)> = self
            .cents
            .chunks_exact(d)
            .enumerate()
            .map(|(j, c)| {
                let mut s = dot32(c, q);
                if bonus {
                    s += qn * self.bonus[j];
                }
                (s, j as u32)
            })
            .collect();
        let np = nprobe.min(lists.len());
        lists.select_nth_unstable_by(np - 1, |a, b| b.0.total_cmp(&a.0));
        let mut buf: Vec<(f32, u32)> = Vec::with_capacity(4 * cand);
        let mut floor = f32::MIN;
        for &(_, j) in &lists[..np] {
            let (lo, hi) = (self.offsets[j as usize], self.offsets[j as usize + 1]);
            for (r, &id) in self.rows[lo * d..hi * d]
                .chunks_exact(d)
                .zip(&self.ids[lo..hi])
            {
                let s = dot16(r, q);
                if s > floor {
                    buf.push((s, id));
                    if buf.len() == 4 * cand {
                        buf.select_nth_unstable_by(cand - 1, |a, b| b.0.total_cmp(&a.0));
                        buf.truncate(cand);
                        floor = buf[cand - 1].0;
                    }
                }
            }
        }
        if buf.len() > cand {
            buf.select_nth_unstable_by(cand - 1, |a, b| b.0.total_cmp(&a.0));
            buf.truncate(cand);
        }
        buf.into_iter().map(|x| x.1 as usize).collect()
    }
}

fn dot32(a: &[f32], b: &[f32]) -> f32 {
    let mut l = [0f32; 8];
    for (x, y) in a.chunks_exact(8).zip(b.chunks_exact(8)) {
        for i in 0..8 {
            l[i] += x[i] * y[i];
        }
    }
    l.iter().sum()
}

#[inline]
fn dot16(a: &[f16], b: &[f32]) -> f32 {
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("f16c") {
            return unsafe { dot16_avx2(a, b) };
        }
    }
    a.iter().zip(b).map(|(x, y)| x.to_f32() * y).sum()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma,f16c")]
unsafe fn dot16_avx2(a: &[f16], b: &[f32]) -> f32 {
    use std::arch::x86_64::*;
    let n = a.len() / 16 * 16;
    let mut acc0 = _mm256_setzero_ps();
    let mut acc1 = _mm256_setzero_ps();
    let (pa, pb) = (a.as_ptr() as *const __m128i, b.as_ptr());
    let mut i = 0;
    while i < n {
        // SAFETY: i + 16 <= n <= a.len() = b.len(); unaligned loads
        unsafe {
            let x0 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i / 8)));
            let x1 = _mm256_cvtph_ps(_mm_loadu_si128(pa.add(i / 8 + 1)));
            acc0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(pb.add(i)), acc0);
            acc1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(pb.add(i + 8)), acc1);
        }
        i += 16;
    }
    let s = _mm256_add_ps(acc0, acc1);
    let hi = _mm256_extractf128_ps(s, 1);
    let lo = _mm256_castps256_ps128(s);
    let q = _mm_add_ps(hi, lo);
    let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    let q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    let mut t = _mm_cvtss_f32(q);
    for j in n..a.len() {
        t += a[j].to_f32() * b[j];
    }
    t
}

/// Build with `nc` lists (k-means on `train` sampled rows), then search at several nprobe.
pub fn ivf_case(
    items: &[f32],
    d: usize,
    states: &[f32],
    truth: &[Vec<usize>],
    nc: usize,
    train: usize,
) {
    let t0 = Instant::now();
    let ivf = Ivf::build(items, d, nc, train, 10);
    let build = t0.elapsed().as_secs_f64();
    let sizes: Vec<usize> = ivf.offsets.windows(2).map(|w| w[1] - w[0]).collect();
    println!(
        "ivf nlist={nc} train={train}: build {build:.1} s, biggest list {}, empty {}",
        sizes.iter().max().unwrap(),
        sizes.iter().filter(|&&s| s == 0).count()
    );
    let probes: Vec<usize> = std::env::var("NPROBE")
        .unwrap_or_else(|_| "8,16,32,64,128".into())
        .split(',')
        .map(|s| s.parse().unwrap())
        .collect();
    for bonus in [false, true] {
        for &np in &probes {
            let mut ms = Vec::new();
            let got: Vec<Vec<usize>> = states
                .chunks(d)
                .map(|q| {
                    let t = Instant::now();
                    let c = ivf.search(q, np, 100, bonus);
                    let r = rescore(items, d, q, c.into_iter());
                    ms.push(t.elapsed().as_secs_f64() * 1e3);
                    r
                })
                .collect();
            let (p50, p99) = pct(ms);
            println!(
                "ivf nlist={nc} bonus={bonus} nprobe={np}: recall@{K} {:.4}, p50 {p50:.3} ms, p99 {p99:.3} ms",
                recall(&got, truth)
            );
        }
    }
}
