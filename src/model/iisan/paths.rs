//! The intra- and inter-modal paths (docs/MODEL.md section 3): chains of SAN blocks over a
//! tower's tap states (intra) or over both towers' aligned taps (inter), with their mixes, on
//! both engines: [`IntraPath`] / [`InterPath`] hold the parameters and compose candle ops;
//! [`SanPathKernel`] is the same chain as a CPU kernel with a hand-written backward (the forward
//! keeps each block's input and ReLU activation, the backward returns every block's weight and
//! bias gradients and each gate value's gradient). Tests compare the two and check them against
//! finite differences.
//!
//! Mixes, with `s_{-1} = 0`, or the start state `h_0` for an intra path with `remove_first`:
//! - intra, gated: `x_k = g_k u_k + (1 - g_k) s_{k-1}`; intra, add: `x_k = u_k + s_{k-1}`;
//! - inter, gated: `x_k = s_{k-1} + g_k a_k + (1 - g_k) b_k`; inter, add: `x_k = s_{k-1} + a_k + b_k`,
//!
//! and `s_k = x_k + W_up relu(W_down x_k + b_down) + b_up`.

use candle_core::Tensor;
use candle_nn::Linear;

use super::config::{Fusion, IisanConfig};
use super::san::{Gates, SanBlock};
use crate::error::{Error, Result};
use crate::nn::Kernel;
use crate::nn::cpu::{Op, add_bias, add_bias_relu, add_column_sums, dot, matmul, matmul_append};
use crate::nn::mixed::{broadcast_mul, linear};
use crate::nn::{GROUP_DEFAULT, Init, ParamStore};

#[derive(Debug)]
pub(crate) struct IntraPath {
    pub(crate) blocks: Vec<SanBlock>,
    pub(crate) gates: Option<Gates>,
}

impl IntraPath {
    pub(crate) fn new(
        store: &mut ParamStore,
        name: &str,
        (dim, k): (usize, usize),
        c: &IisanConfig,
        gate_group: &'static str,
    ) -> Result<Self> {
        let blocks = (0..k)
            .map(|j| SanBlock::new(store, &format!("{name}.block{j}"), dim, c.bottleneck))
            .collect::<Result<_>>()?;
        let gates = match c.fusion {
            Fusion::Gate => Some(Gates::new(
                store,
                &format!("{name}.gates"),
                k,
                c.gate_temperature,
                gate_group,
            )?),
            Fusion::Add => None,
        };
        Ok(IntraPath { blocks, gates })
    }

    /// `h` `[n, K, D]` -> last state `[n, D]`, starting from `init` `[n, D]` (`s_{-1}`; `None`:
    /// zeros).
    pub(crate) fn forward(&self, h: &Tensor, init: Option<&Tensor>) -> Result<Tensor> {
        let g = self.gates.as_ref().map(Gates::values).transpose()?;
        let mut s: Option<Tensor> = init.cloned();
        for (k, blk) in self.blocks.iter().enumerate() {
            let hk = h.narrow(1, k, 1)?.squeeze(1)?;
            let x = match (&s, &g) {
                (None, Some(g)) => broadcast_mul(&hk, &g.narrow(0, k, 1)?)?,
                (None, None) => hk,
                (Some(prev), Some(g)) => Gates::mix(g, k, &hk, prev)?,
                (Some(prev), None) => (hk + prev)?,
            };
            s = Some(blk.forward(&x)?);
        }
        s.ok_or_else(|| Error::Internal("empty intra path".into()))
    }
}

#[derive(Debug)]
pub(crate) struct InterPath {
    pub(crate) blocks: Vec<SanBlock>,
    pub(crate) gates: Option<Gates>,
    pub(crate) map_text: Option<Vec<Linear>>,
    pub(crate) map_image: Option<Vec<Linear>>,
    pub(crate) width: usize,
}

impl InterPath {
    pub(crate) fn new(
        store: &mut ParamStore,
        dt: usize,
        di: usize,
        k: usize,
        c: &IisanConfig,
    ) -> Result<Self> {
        let width = dt.min(di);
        let maps = |store: &mut ParamStore, d: usize, name: &str| -> Result<Option<Vec<Linear>>> {
            if d == width {
                return Ok(None);
            }
            let v = (0..k)
                .map(|j| {
                    store.linear(
                        &format!("item.inter.{name}{j}"),
                        d,
                        width,
                        true,
                        Init::TorchLinear,
                        GROUP_DEFAULT,
                    )
                })
                .collect::<Result<_>>()?;
            Ok(Some(v))
        };
        let map_text = maps(store, dt, "map_text")?;
        let map_image = maps(store, di, "map_image")?;
        let blocks = (0..k)
            .map(|j| SanBlock::new(store, &format!("item.inter.block{j}"), width, c.bottleneck))
            .collect::<Result<_>>()?;
        let gates = match c.fusion {
            Fusion::Gate => Some(Gates::new(
                store,
                "item.inter.gates",
                k,
                c.gate_temperature,
                GROUP_DEFAULT,
            )?),
            Fusion::Add => None,
        };
        Ok(InterPath {
            blocks,
            gates,
            map_text,
            map_image,
            width,
        })
    }

    /// `ht` `[n, K, Dt]`, `hi` `[n, K, Di]` (aligned taps) -> `[n, width]`.
    pub(crate) fn forward(&self, ht: &Tensor, hi: &Tensor) -> Result<Tensor> {
        let g = self.gates.as_ref().map(Gates::values).transpose()?;
        let pick = |h: &Tensor, maps: &Option<Vec<Linear>>, k: usize| -> Result<Tensor> {
            let x = h.narrow(1, k, 1)?.squeeze(1)?;
            Ok(match maps {
                Some(m) => linear(&m[k], &x)?,
                None => x,
            })
        };
        let mut m: Option<Tensor> = None;
        for (k, blk) in self.blocks.iter().enumerate() {
            let (t, v) = (pick(ht, &self.map_text, k)?, pick(hi, &self.map_image, k)?);
            let mixed = match &g {
                Some(g) => Gates::mix(g, k, &v, &t)?,
                None => (v + t)?,
            };
            let x = match &m {
                Some(prev) => (mixed + prev)?,
                None => mixed,
            };
            m = Some(blk.forward(&x)?);
        }
        m.ok_or_else(|| Error::Internal("empty inter path".into()))
    }
}

/// Rows of tap `j` in a tap-major buffer with `nd` values per tap.
fn tap(s: &[f32], j: usize, nd: usize) -> &[f32] {
    &s[j * nd..(j + 1) * nd]
}

impl<'a> Sources<'a> {
    /// The start state `s_{-1}` when it is not zeros.
    fn init(self) -> Option<&'a [f32]> {
        match self {
            Sources::Intra { init, .. } => init,
            Sources::Inter(..) => None,
        }
    }
}

/// Weights of one SAN block, row-major like `candle_nn::Linear` (`[out, in]`).
#[derive(Debug, Clone)]
pub struct BlockWeights {
    /// `W_down` `[r, D]`.
    pub wd: Vec<f32>,
    /// `b_down` `[r]`.
    pub bd: Vec<f32>,
    /// `W_up` `[D, r]`.
    pub wu: Vec<f32>,
    /// `b_up` `[D]`.
    pub bu: Vec<f32>,
}

/// Gradients of one SAN block, shaped like [`BlockWeights`].
pub type BlockGrads = BlockWeights;

/// The path's inputs: tap-major `[K, n, D]` buffers (tap k's rows contiguous).
#[derive(Debug, Clone, Copy)]
pub enum Sources<'a> {
    /// Intra-modal: one tower's states `u`, and the `[n, D]` state the path starts from
    /// (`s_{-1}`; `None`: zeros).
    Intra {
        /// Tap-major `u`.
        states: &'a [f32],
        /// `s_{-1}`, when not zeros.
        init: Option<&'a [f32]>,
    },
    /// Inter-modal: image states `a` and text states `b` (already mapped to width D).
    Inter(&'a [f32], &'a [f32]),
}

/// A path's blocks, gate values (`None`: the `add` fusion) and widths.
#[derive(Debug)]
pub struct SanPathKernel<'a> {
    /// One entry per block.
    pub blocks: &'a [BlockWeights],
    /// `g_k = sigmoid(theta_k / T)` per block, or `None` for plain sums.
    pub gates: Option<&'a [f32]>,
    /// State width D.
    pub dim: usize,
    /// Bottleneck width r.
    pub bottleneck: usize,
}

/// What the forward keeps for the backward.
#[derive(Debug)]
pub struct SanPathSaved {
    n: usize,
    /// n * D.
    nd: usize,
    /// Block inputs `x_k`, `[K, n, D]`.
    xs: Vec<f32>,
    /// Block outputs `s_k`, `[K, n, D]`.
    ys: Vec<f32>,
    /// ReLU activations, `[K, n, r]`.
    acts: Vec<f32>,
}

impl SanPathSaved {
    /// The path's output `s_{K-1}` `[n, D]`.
    pub fn output(&self) -> &[f32] {
        &self.ys[self.ys.len() - self.nd..]
    }
}

/// The gradients of one backward pass.
#[derive(Debug)]
pub struct SanPathGrads {
    /// Per block.
    pub blocks: Vec<BlockGrads>,
    /// d loss / d g_k per block (empty for `add`).
    pub gates: Vec<f64>,
    /// d loss / d x_k, `[K, n, D]`, when asked for (the inter path's width maps need it).
    pub inputs: Option<Vec<f32>>,
}

impl SanPathKernel<'_> {
    fn k(&self) -> usize {
        self.blocks.len()
    }

    /// Forward over `n` items; returns the saved state (its [`SanPathSaved::output`] is `s_{K-1}`).
    /// Every buffer is built by appending (no zeroing pass: each value is written once).
    fn forward_path(&self, src: Sources<'_>, n: usize) -> SanPathSaved {
        let (k, d, r) = (self.k(), self.dim, self.bottleneck);
        let nd = n * d;
        let mut xs = Vec::with_capacity(k * nd);
        let mut ys = Vec::with_capacity(k * nd);
        let mut acts = Vec::with_capacity(k * n * r);
        for j in 0..k {
            let prev = if j == 0 {
                src.init()
            } else {
                Some(&ys[(j - 1) * nd..])
            };
            self.mix(&mut xs, src, j, nd, prev);
            let x = &xs[j * nd..];
            let blk = &self.blocks[j];
            matmul_append(&mut acts, x, Op::N, &blk.wd, Op::T, (n, r, d));
            let a = &mut acts[j * n * r..];
            add_bias_relu(a, &blk.bd);
            ys.extend_from_slice(x);
            let y = &mut ys[j * nd..];
            matmul(y, a, Op::N, &blk.wu, Op::T, (n, d, r), true);
            add_bias(y, &blk.bu);
        }
        SanPathSaved {
            n,
            nd,
            xs,
            ys,
            acts,
        }
    }

    /// Appends block `j`'s input `x_j` (`nd` values) to `xs`.
    fn mix(&self, xs: &mut Vec<f32>, src: Sources<'_>, j: usize, nd: usize, prev: Option<&[f32]>) {
        let g = self.gates.map(|g| g[j]);
        match (src, g) {
            (Sources::Intra { states: u, .. }, Some(g)) => {
                let u = tap(u, j, nd);
                match prev {
                    Some(p) => xs.extend(u.iter().zip(p).map(|(u, p)| g * u + (1.0 - g) * p)),
                    None => xs.extend(u.iter().map(|u| g * u)),
                }
            }
            (Sources::Intra { states: u, .. }, None) => match prev {
                Some(p) => xs.extend(tap(u, j, nd).iter().zip(p).map(|(u, p)| u + p)),
                None => xs.extend_from_slice(tap(u, j, nd)),
            },
            (Sources::Inter(a, b), g) => {
                let (a, b) = (tap(a, j, nd), tap(b, j, nd));
                let (ga, gb) = g.map_or((1.0, 1.0), |g| (g, 1.0 - g));
                let ab = a.iter().zip(b).map(|(a, b)| ga * a + gb * b);
                match prev {
                    Some(p) => xs.extend(ab.zip(p).map(|(v, p)| v + p)),
                    None => xs.extend(ab),
                }
            }
        }
    }

    /// Backward from `d_out` = d loss / d s_{K-1} `[n, D]`.
    fn backward_path(
        &self,
        src: Sources<'_>,
        saved: &SanPathSaved,
        d_out: &[f32],
        want_inputs: bool,
    ) -> SanPathGrads {
        let (k, d, r, n) = (self.k(), self.dim, self.bottleneck, saved.n);
        let nd = n * d;
        let mut blocks: Vec<BlockGrads> = Vec::with_capacity(k);
        let mut gates = vec![0f64; if self.gates.is_some() { k } else { 0 }];
        let mut inputs = want_inputs.then(|| vec![0f32; k * nd]);
        let mut dy = d_out.to_vec();
        let mut da = vec![0f32; n * r];
        for j in (0..k).rev() {
            let blk = &self.blocks[j];
            let x = &saved.xs[j * nd..(j + 1) * nd];
            let a = &saved.acts[j * n * r..(j + 1) * n * r];
            let mut gw = BlockGrads {
                wd: vec![0f32; r * d],
                bd: vec![0f32; r],
                wu: vec![0f32; d * r],
                bu: vec![0f32; d],
            };
            // y = x + a Wu^T + bu: dWu = dy^T a, dbu = sum dy, da = dy Wu
            matmul(&mut gw.wu, &dy, Op::T, a, Op::N, (d, r, n), false);
            add_column_sums(&mut gw.bu, &dy);
            matmul(&mut da, &dy, Op::N, &blk.wu, Op::N, (n, r, d), false);
            // a = relu(z): dz = da where a > 0
            da.iter_mut()
                .zip(a)
                .for_each(|(g, a)| *g = if *a > 0.0 { *g } else { 0.0 });
            // z = x Wd^T + bd: dWd = dz^T x, dbd = sum dz, dx = dy + dz Wd
            matmul(&mut gw.wd, &da, Op::T, x, Op::N, (r, d, n), false);
            add_column_sums(&mut gw.bd, &da);
            let needs_dx = j > 0 || self.gates.is_some() || want_inputs;
            if needs_dx {
                // dy becomes dx in place
                matmul(&mut dy, &da, Op::N, &blk.wd, Op::N, (n, d, r), true);
            }
            blocks.push(gw);
            let g = self.gates.map(|g| g[j]);
            let prev = if j > 0 {
                Some(&saved.ys[(j - 1) * nd..j * nd])
            } else {
                src.init()
            };
            if g.is_some() {
                gates[j] = match src {
                    // d/dg of g u + (1 - g) s = u - s
                    Sources::Intra { states: u, .. } => {
                        let gu = dot(&dy, tap(u, j, nd));
                        gu - prev.map_or(0.0, |p| dot(&dy, p))
                    }
                    // d/dg of g a + (1 - g) b = a - b
                    Sources::Inter(a, b) => dot(&dy, tap(a, j, nd)) - dot(&dy, tap(b, j, nd)),
                };
            }
            if let Some(inp) = inputs.as_mut() {
                inp[j * nd..(j + 1) * nd].copy_from_slice(&dy);
            }
            if j > 0 {
                // d s_{j-1}: (1 - g) dx for the gated intra mix, dx otherwise
                if let (Sources::Intra { .. }, Some(g)) = (src, g) {
                    dy.iter_mut().for_each(|v| *v *= 1.0 - g);
                }
            }
        }
        blocks.reverse();
        SanPathGrads {
            blocks,
            gates,
            inputs,
        }
    }
}

/// What one path's forward reads: its sources over `n` items, and whether its backward should
/// return the inputs' gradient (the inter path's width maps need it).
#[derive(Debug, Clone, Copy)]
pub struct SanInput<'a> {
    /// The tap-major sources.
    pub src: Sources<'a>,
    /// Items.
    pub n: usize,
    /// Return d loss / d x_k from the backward.
    pub want_inputs: bool,
}

impl Kernel for SanPathKernel<'_> {
    type Input<'a> = SanInput<'a>;
    type Saved = SanPathSaved;
    type Grads = SanPathGrads;

    /// Forward over `n` items; the saved state's [`SanPathSaved::output`] is `s_{K-1}`.
    fn forward(&self, input: SanInput<'_>) -> SanPathSaved {
        self.forward_path(input.src, input.n)
    }

    /// Backward from `d_out` = d loss / d s_{K-1} `[n, D]`.
    fn backward(&self, input: SanInput<'_>, saved: SanPathSaved, d_out: &[f32]) -> SanPathGrads {
        self.backward_path(input.src, &saved, d_out, input.want_inputs)
    }
}

#[cfg(test)]
#[path = "paths_tests.rs"]
mod tests;
