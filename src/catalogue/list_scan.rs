//! Scoring one list of the inverted file: the dot product of a query with every stored vector
//! of the list, f16 or f32, into a buffer. This loop is where an ANN query spends its time
//! (tens of thousands of vectors per query), so on x86-64 it runs AVX2 + FMA (+ F16C for the
//! halves) when the processor has them, chosen once per list; elsewhere a portable loop.

use half::f16;

/// A list's stored vectors, row-major `[n, d]`.
#[derive(Clone, Copy)]
pub enum Rows<'a> {
    /// Half precision.
    F16(&'a [f16]),
    /// Single precision.
    F32(&'a [f32]),
}

/// `out = [q . row for row in rows]` (rows of width `q.len()`); `out` is cleared first.
pub fn score(rows: Rows, q: &[f32], out: &mut Vec<f32>) {
    out.clear();
    #[cfg(target_arch = "x86_64")]
    {
        if std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
        {
            // SAFETY: the three features were just detected.
            unsafe { x86::score(rows, q, out) };
            return;
        }
    }
    let d = q.len();
    match rows {
        Rows::F16(r) => out.extend(
            r.chunks_exact(d)
                .map(|x| x.iter().zip(q).map(|(a, b)| a.to_f32() * b).sum::<f32>()),
        ),
        Rows::F32(r) => out.extend(
            r.chunks_exact(d)
                .map(|x| x.iter().zip(q).map(|(a, b)| a * b).sum::<f32>()),
        ),
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::Rows;
    use half::f16;

    /// [`super::score`] with AVX2, FMA and F16C: eight lanes a step, two accumulators.
    ///
    /// # Safety
    /// The processor must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn score(rows: Rows, q: &[f32], out: &mut Vec<f32>) {
        let d = q.len();
        match rows {
            Rows::F16(r) => out.extend(r.chunks_exact(d).map(|x| dot_f16(x, q))),
            Rows::F32(r) => out.extend(r.chunks_exact(d).map(|x| dot_f32(x, q))),
        }
    }

    /// The sum of the eight lanes of `v`.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn sum(v: __m256) -> f32 {
        let q = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
        let q = _mm_add_ps(q, _mm_movehl_ps(q, q));
        _mm_cvtss_f32(_mm_add_ss(q, _mm_shuffle_ps(q, q, 1)))
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_f16(x: &[f16], q: &[f32]) -> f32 {
        let n = x.len() / 8 * 8;
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= x.len() = q.len(): eight halves (16 bytes) of x and
            // eight floats of q are in bounds; the loads are unaligned ones.
            let (h, f) = unsafe {
                (
                    _mm_loadu_si128(x.as_ptr().add(i).cast::<__m128i>()),
                    _mm256_loadu_ps(q.as_ptr().add(i)),
                )
            };
            if i % 16 == 0 {
                a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(h), f, a0);
            } else {
                a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(h), f, a1);
            }
            i += 8;
        }
        let tail: f32 = (x[n..].iter().zip(&q[n..]))
            .map(|(a, b)| a.to_f32() * b)
            .sum();
        sum(_mm256_add_ps(a0, a1)) + tail
    }

    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot_f32(x: &[f32], q: &[f32]) -> f32 {
        let n = x.len() / 8 * 8;
        let (mut a0, mut a1) = (_mm256_setzero_ps(), _mm256_setzero_ps());
        let mut i = 0;
        while i < n {
            // SAFETY: i + 8 <= n <= x.len() = q.len(); unaligned loads.
            let (v, f) = unsafe {
                (
                    _mm256_loadu_ps(x.as_ptr().add(i)),
                    _mm256_loadu_ps(q.as_ptr().add(i)),
                )
            };
            if i % 16 == 0 {
                a0 = _mm256_fmadd_ps(v, f, a0);
            } else {
                a1 = _mm256_fmadd_ps(v, f, a1);
            }
            i += 8;
        }
        let tail: f32 = x[n..].iter().zip(&q[n..]).map(|(a, b)| a * b).sum();
        sum(_mm256_add_ps(a0, a1)) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scores_are_the_dot_products_for_every_width_and_storage() {
        // rows of 0.5 * (i + j) (exact in f16 up to 2048) against q_j = j - 3: every product
        // and sum is an exact small multiple of 0.5, so f32 and f16 give the same exact
        // values; widths 3 (tail only), 8, 19 (two blocks and a tail), 64
        for d in [3usize, 8, 19, 64] {
            let q: Vec<f32> = (0..d).map(|j| j as f32 - 3.0).collect();
            let rows: Vec<f32> = (0..5 * d)
                .map(|t| 0.5 * ((t / d) + (t % d)) as f32)
                .collect();
            let want: Vec<f32> = (0..5)
                .map(|i| (0..d).map(|j| 0.5 * (i + j) as f32 * q[j]).sum())
                .collect();
            let halves: Vec<f16> = rows.iter().map(|&v| f16::from_f32(v)).collect();
            let mut out = Vec::new();
            score(Rows::F32(&rows), &q, &mut out);
            assert_eq!(out, want, "f32, d = {d}");
            score(Rows::F16(&halves), &q, &mut out);
            assert_eq!(out, want, "f16, d = {d}");
        }
    }
}
