//! The heads (docs/MODEL.md section 3): each path's state through `F` (Linear(D, D)) and `P`
//! (Linear(D, d)), on both engines: [`Head`] composes candle ops; [`AffineChain`] evaluates a
//! chain of linear layers with no nonlinearity between them as one collapsed map, with exact
//! gradients for every layer. IISAN's heads are such a chain: `W_c [..; P(F(s)); ..]` is linear
//! in `s`, so the per-item cost is one `[d, D]` product instead of a `[D, D]` and a `[d, D]`
//! one.
//!
//! With layers `y_j = W_j y_{j-1} + b_j` (j = 1..L, `y_0 = s`), prefix maps `P_j = W_{j-1}..W_1`
//! (the input of layer j is `P_j s + q_j`, `q_1 = 0`, `q_{j+1} = W_j q_j + b_j`) and suffix maps
//! `S_j = W_L..W_{j+1}`, the output is `y = M s + c` with `M = S_0`, `c = q_{L+1}`. For output
//! gradients `dY` `[n, out]` over inputs `s` `[n, in]`, with `G = dY^T s` and `e = sum_rows dY`:
//! `dW_j = S_j^T G P_j^T + (S_j^T e) q_j^T`, `db_j = S_j^T e`, `ds = dY M`.

use candle_core::Tensor;
use candle_nn::Linear;

use crate::error::Result;
use crate::nn::Kernel;
use crate::nn::cpu::{Op, add_bias, add_column_sums, matmul, matmul_new};
use crate::nn::mixed::linear;
use crate::nn::{GROUP_DEFAULT, Init, ParamStore};

/// A head `P(F(x))`: Linear(D, D) then Linear(D, d).
#[derive(Debug, Clone)]
pub(crate) struct Head {
    pub(crate) f: Linear,
    pub(crate) p: Linear,
}

/// How a head is made: the learning-rate group of its `F`, and the initialiser of its `P`
/// (docs/MODEL.md section 3: the authors' per-head settings).
#[derive(Debug, Clone, Copy)]
pub(crate) struct HeadSpec {
    pub(crate) f_group: &'static str,
    pub(crate) p_init: Init,
}

impl Head {
    pub(crate) fn new(
        store: &mut ParamStore,
        name: &str,
        (dim, d): (usize, usize),
        spec: HeadSpec,
    ) -> Result<Self> {
        Ok(Head {
            f: store.linear(
                &format!("{name}.f"),
                dim,
                dim,
                true,
                Init::TorchLinear,
                spec.f_group,
            )?,
            p: store.linear(
                &format!("{name}.p"),
                dim,
                d,
                true,
                spec.p_init,
                GROUP_DEFAULT,
            )?,
        })
    }

    pub(crate) fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(linear(&self.p, &linear(&self.f, x)?)?)
    }
}

/// One layer: `W` `[out, in]` row-major and an optional bias `[out]`.
#[derive(Debug, Clone)]
pub struct AffineLayer {
    /// Weight, `[out, in]`.
    pub w: Vec<f32>,
    /// Output width.
    pub out: usize,
    /// Input width.
    pub inp: usize,
    /// Bias, `[out]`.
    pub b: Option<Vec<f32>>,
}

/// Gradients of one layer, shaped like it.
#[derive(Debug, Clone)]
pub struct AffineGrads {
    /// d loss / d W.
    pub w: Vec<f32>,
    /// d loss / d b (when the layer has a bias).
    pub b: Option<Vec<f32>>,
}

/// The chain with its collapsed map and the prefix/suffix products its backward needs.
#[derive(Debug)]
pub struct AffineChain {
    layers: Vec<AffineLayer>,
    /// `P_j` for j >= 2 (index j - 2), `[in_j, in_1]`.
    prefix: Vec<Vec<f32>>,
    /// `q_j` for j = 1..=L+1 (index j - 1), `[in_j]` (`q_{L+1}` = c, `[out_L]`).
    offsets: Vec<Vec<f32>>,
    /// `M` `[out_L, in_1]`.
    m: Vec<f32>,
}

impl AffineChain {
    /// Collapse `layers` (each layer's input width equal to the previous one's output width).
    pub fn new(layers: Vec<AffineLayer>) -> AffineChain {
        assert!(!layers.is_empty(), "empty affine chain");
        for w in layers.windows(2) {
            assert_eq!(w[0].out, w[1].inp, "affine chain widths");
        }
        let in1 = layers[0].inp;
        let mut prefix: Vec<Vec<f32>> = Vec::new();
        let mut offsets = vec![vec![0f32; in1]];
        for (j, l) in layers.iter().enumerate() {
            // P_{j+2} = W_{j+1} P_{j+1} (P_1 = I)
            let next = if j == 0 {
                l.w.clone()
            } else {
                let p = &prefix[j - 1];
                let mut out = vec![0f32; l.out * in1];
                matmul(&mut out, &l.w, Op::N, p, Op::N, (l.out, in1, l.inp), false);
                out
            };
            prefix.push(next);
            let q = &offsets[j];
            let mut nq = vec![0f32; l.out];
            matmul(&mut nq, &l.w, Op::N, q, Op::N, (l.out, 1, l.inp), false);
            if let Some(b) = &l.b {
                nq.iter_mut().zip(b).for_each(|(v, b)| *v += b);
            }
            offsets.push(nq);
        }
        let m = prefix.pop().expect("at least one layer");
        AffineChain {
            layers,
            prefix,
            offsets,
            m,
        }
    }

    /// Output width.
    pub fn out(&self) -> usize {
        self.layers.last().expect("non-empty").out
    }

    /// Input width.
    pub fn inp(&self) -> usize {
        self.layers[0].inp
    }

    /// Every layer's gradients from `dy` `[n, out]` over the forward's input `s` `[n, in]`.
    fn layer_grads(&self, s: &[f32], dy: &[f32]) -> Vec<AffineGrads> {
        let (o, i) = (self.out(), self.inp());
        let n = s.len() / i;
        let mut g = vec![0f32; o * i];
        matmul(&mut g, dy, Op::T, s, Op::N, (o, i, n), false);
        let mut e = vec![0f32; o];
        add_column_sums(&mut e, dy);
        let l = self.layers.len();
        let mut grads = Vec::with_capacity(l);
        // walk j = L..1 keeping S_j ([o, out_j]); S_L = I is represented by None
        let mut suffix: Option<Vec<f32>> = None;
        for j in (0..l).rev() {
            let layer = &self.layers[j];
            let (oj, ij) = (layer.out, layer.inp);
            // T = G P_j^T  [o, in_j]
            let t = if j == 0 {
                g.clone()
            } else {
                let mut t = vec![0f32; o * ij];
                matmul(
                    &mut t,
                    &g,
                    Op::N,
                    &self.prefix[j - 1],
                    Op::T,
                    (o, ij, i),
                    false,
                );
                t
            };
            // S_j^T e  [out_j]
            let se = match &suffix {
                None => e.clone(),
                Some(sj) => {
                    let mut v = vec![0f32; oj];
                    matmul(&mut v, sj, Op::T, &e, Op::N, (oj, 1, o), false);
                    v
                }
            };
            let mut dw = match &suffix {
                None => t,
                Some(sj) => {
                    let mut w = vec![0f32; oj * ij];
                    matmul(&mut w, sj, Op::T, &t, Op::N, (oj, ij, o), false);
                    w
                }
            };
            // + (S_j^T e) q_j^T
            matmul(
                &mut dw,
                &se,
                Op::N,
                &self.offsets[j],
                Op::N,
                (oj, ij, 1),
                true,
            );
            grads.push(AffineGrads {
                w: dw,
                b: layer.b.as_ref().map(|_| se),
            });
            // S_{j-1} = S_j W_j
            suffix = Some(match &suffix {
                None => layer.w.clone(),
                Some(sj) => {
                    let mut s2 = vec![0f32; o * ij];
                    matmul(&mut s2, sj, Op::N, &layer.w, Op::N, (o, ij, oj), false);
                    s2
                }
            });
        }
        grads.reverse();
        grads
    }
}

/// What the chain's forward reads: its input `s` `[n, in]` and, when given, the running sum
/// `acc` `[n, out]` its output is added to (IISAN sums its heads' outputs into one embedding).
#[derive(Debug, Clone, Copy)]
pub struct HeadInput<'a> {
    /// `[n, in]`.
    pub s: &'a [f32],
    /// `[n, out]` to accumulate into, or `None`.
    pub acc: Option<&'a [f32]>,
}

/// The chain's named gradients.
#[derive(Debug, Clone)]
pub struct HeadGrads {
    /// Per layer, in layer order.
    pub layers: Vec<AffineGrads>,
    /// d loss / d s `[n, in]` (`dY M`).
    pub ds: Vec<f32>,
}

impl Kernel for AffineChain {
    type Input<'a> = HeadInput<'a>;
    /// The output `acc + s M^T + c` `[n, out]`.
    type Saved = Vec<f32>;
    type Grads = HeadGrads;

    fn forward(&self, input: HeadInput<'_>) -> Vec<f32> {
        let (o, i) = (self.out(), self.inp());
        let n = input.s.len() / i;
        let mut y = match input.acc {
            Some(acc) => {
                let mut y = acc.to_vec();
                matmul(&mut y, input.s, Op::N, &self.m, Op::T, (n, o, i), true);
                y
            }
            None => matmul_new(input.s, Op::N, &self.m, Op::T, (n, o, i)),
        };
        add_bias(&mut y, self.offsets.last().expect("c"));
        y
    }

    fn backward(&self, input: HeadInput<'_>, _saved: Vec<f32>, dy: &[f32]) -> HeadGrads {
        let (o, i) = (self.out(), self.inp());
        let n = input.s.len() / i;
        HeadGrads {
            layers: self.layer_grads(input.s, dy),
            ds: matmul_new(dy, Op::N, &self.m, Op::N, (n, i, o)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nn::kernel::{check_against_differences, split};

    /// The collapsed chain's backward against finite differences (the check every kernel
    /// runs): F (4 -> 4, bias), P (4 -> 3, bias), W_c (3 -> 2, no bias) over three rows; θ =
    /// each layer's weight and bias, then the input rows.
    #[test]
    fn the_backward_matches_finite_differences() {
        let shapes = [(4usize, 4usize, true), (3, 4, true), (2, 3, false)];
        let n = 3;
        let mut lens: Vec<usize> = Vec::new();
        for &(o, i, b) in &shapes {
            lens.push(o * i);
            lens.push(if b { o } else { 0 });
        }
        lens.push(n * 4);
        let total: usize = lens.iter().sum();
        let theta: Vec<f32> = (0..total)
            .map(|i| ((i * 31 % 17) as f32 - 8.0) / 6.0)
            .collect();
        let run = |t: &[f32], c: Option<&[f32]>| -> (Vec<f32>, Vec<f32>) {
            let p = split(t, &lens);
            let layers = shapes
                .iter()
                .enumerate()
                .map(|(j, &(out, inp, b))| AffineLayer {
                    w: p[2 * j].to_vec(),
                    out,
                    inp,
                    b: b.then(|| p[2 * j + 1].to_vec()),
                })
                .collect();
            let chain = AffineChain::new(layers);
            let input = HeadInput { s: p[6], acc: None };
            let y = chain.forward(input);
            let Some(c) = c else { return (y, Vec::new()) };
            let g = chain.backward(input, y.clone(), c);
            let mut flat: Vec<f32> = Vec::new();
            for l in &g.layers {
                flat.extend(&l.w);
                flat.extend(l.b.iter().flatten());
            }
            flat.extend(&g.ds);
            (y, flat)
        };
        check_against_differences(
            &theta,
            |t| run(t, None).0,
            |t, c| run(t, Some(c)).1,
            (1e-2, 1e-2, 1),
        );
    }

    fn seq(n: usize, scale: f32, shift: f32) -> Vec<f32> {
        (0..n)
            .map(|i| ((i * 37 % 17) as f32 - 8.0) * scale + shift)
            .collect()
    }

    /// Run the chain layer by layer in f64: outputs and a scalar loss sum(y * w).
    fn naive(layers: &[AffineLayer], s: &[f64], n: usize) -> Vec<f64> {
        let mut x = s.to_vec();
        for l in layers {
            let mut y = vec![0f64; n * l.out];
            for r in 0..n {
                for o in 0..l.out {
                    let mut v = l.b.as_ref().map_or(0.0, |b| b[o] as f64);
                    for c in 0..l.inp {
                        v += l.w[o * l.inp + c] as f64 * x[r * l.inp + c];
                    }
                    y[r * l.out + o] = v;
                }
            }
            x = y;
        }
        x
    }

    fn chain() -> Vec<AffineLayer> {
        vec![
            AffineLayer {
                w: seq(12, 0.1, 0.05),
                out: 4,
                inp: 3,
                b: Some(seq(4, 0.2, 0.0)),
            },
            AffineLayer {
                w: seq(8, 0.15, -0.02),
                out: 2,
                inp: 4,
                b: Some(seq(2, 0.1, 0.3)),
            },
            AffineLayer {
                w: seq(4, 0.2, 0.01),
                out: 2,
                inp: 2,
                b: None,
            },
        ]
    }

    #[test]
    fn collapsed_forward_equals_layer_by_layer() {
        let layers = chain();
        let s = seq(15, 0.3, 0.1); // 5 rows of 3
        let c = AffineChain::new(layers.clone());
        let y = c.forward(HeadInput { s: &s, acc: None });
        let want = naive(&layers, &s.iter().map(|v| *v as f64).collect::<Vec<_>>(), 5);
        for (a, b) in y.iter().zip(&want) {
            assert!((*a as f64 - b).abs() < 1e-5, "{a} vs {b}");
        }
    }

    /// Gradients against central finite differences of `L = sum(y * w)` in f64.
    #[test]
    fn gradients_match_finite_differences() {
        let layers = chain();
        let n = 5;
        let s = seq(n * 3, 0.3, 0.1);
        let wy = seq(n * 2, 0.5, 0.2);
        let loss = |ls: &[AffineLayer], s: &[f32]| -> f64 {
            let y = naive(ls, &s.iter().map(|v| *v as f64).collect::<Vec<_>>(), n);
            y.iter().zip(&wy).map(|(a, b)| a * *b as f64).sum()
        };
        let c = AffineChain::new(layers.clone());
        let input = HeadInput { s: &s, acc: None };
        let HeadGrads { layers: grads, ds } = c.backward(input, c.forward(input), &wy);
        let h = 1e-3f32;
        for (j, g) in grads.iter().enumerate() {
            for idx in 0..layers[j].w.len() {
                let (mut p, mut m) = (layers.clone(), layers.clone());
                p[j].w[idx] += h;
                m[j].w[idx] -= h;
                let fd = (loss(&p, &s) - loss(&m, &s)) / (2.0 * h as f64);
                assert!(
                    (fd - g.w[idx] as f64).abs() < 1e-3,
                    "W{j}[{idx}] {fd} vs {}",
                    g.w[idx]
                );
            }
            assert_eq!(g.b.is_some(), layers[j].b.is_some());
            if let Some(gb) = &g.b {
                for (idx, g) in gb.iter().enumerate() {
                    let (mut p, mut m) = (layers.clone(), layers.clone());
                    p[j].b.as_mut().unwrap()[idx] += h;
                    m[j].b.as_mut().unwrap()[idx] -= h;
                    let fd = (loss(&p, &s) - loss(&m, &s)) / (2.0 * h as f64);
                    assert!((fd - *g as f64).abs() < 1e-3, "b{j}[{idx}]");
                }
            }
        }
        for idx in 0..s.len() {
            let (mut p, mut m) = (s.clone(), s.clone());
            p[idx] += h;
            m[idx] -= h;
            let fd = (loss(&layers, &p) - loss(&layers, &m)) / (2.0 * h as f64);
            assert!((fd - ds[idx] as f64).abs() < 1e-3, "s[{idx}]");
        }
    }
}
