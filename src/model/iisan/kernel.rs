//! The IISAN tower on hand-written CPU kernels (`kernels = "fused"`, the default): cache rows
//! gathered tap-major in one pass, each path's SAN chain by [`SanPathKernel`], and each path's
//! head `W_c,p P_p F_p` collapsed by [`AffineChain`]; the backward writes every parameter's
//! gradient into the trainer's [`GradStore`]. Mathematically the same function and gradients
//! as the autograd version in `iisan.rs` (tests compare both).

use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use candle_nn::Linear;
use rayon::prelude::*;

use super::heads::{AffineChain, AffineGrads, AffineLayer};
use super::reference::Head;
use super::san::{Gates, SanBlock};
use super::san_kernel::{BlockWeights, SanPathKernel, SanPathSaved, Sources};
use super::{IisanTower, PathHandles, PathSource};
use crate::efficiency::Profile;
use crate::error::Result;
use crate::model::config::Kernels;
use crate::model::tower::{KernelEmbedding, TowerBackward};
use crate::nn::cpu::{Op, add_bias, add_column_sums, matmul};

fn data(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.flatten_all()?.to_vec1::<f32>()?)
}

fn linear_layer(l: &Linear) -> Result<AffineLayer> {
    let (out, inp) = l.weight().dims2()?;
    Ok(AffineLayer {
        w: data(l.weight())?,
        out,
        inp,
        b: l.bias().map(data).transpose()?,
    })
}

/// Parameter gradients collected by one backward pass over a part of the batch, in the order
/// the pass produces them (the same for every part, so parts add entry by entry).
#[derive(Default)]
struct GradSink(Vec<(Tensor, Vec<f32>)>);

impl GradSink {
    fn put(&mut self, param: &Tensor, g: Vec<f32>) {
        self.0.push((param.clone(), g));
    }

    fn put_linear(&mut self, l: &Linear, g: AffineGrads) {
        self.put(l.weight(), g.w);
        if let (Some(b), Some(gb)) = (l.bias(), g.b) {
            self.put(b, gb);
        }
    }

    /// Add `other`'s gradients (from another part of the batch) into these.
    fn add(&mut self, other: GradSink) {
        assert!(
            self.0.len() == other.0.len()
                && self
                    .0
                    .iter()
                    .zip(&other.0)
                    .all(|(a, b)| a.0.id() == b.0.id()),
            "the halves' gradients are not in the same parameter order"
        );
        for ((_, a), (_, b)) in self.0.iter_mut().zip(other.0) {
            a.iter_mut().zip(b).for_each(|(x, y)| *x += y);
        }
    }

    /// Insert every gradient into candle's store.
    fn insert_into(self, grads: &mut GradStore) -> Result<()> {
        for (param, g) in self.0 {
            let t = Tensor::from_vec(g, param.shape(), param.device())?;
            grads.insert(&param, t);
        }
        Ok(())
    }
}

/// One path's parameters read out of its tensors.
struct PathParams {
    blocks: Vec<BlockWeights>,
    /// Gate values g_k.
    gates: Option<Vec<f32>>,
    dim: usize,
    bottleneck: usize,
}

impl PathParams {
    fn read(blocks: &[SanBlock], gates: &Option<Gates>) -> Result<PathParams> {
        let blocks_w = blocks
            .iter()
            .map(|b| {
                Ok(BlockWeights {
                    wd: data(b.down().weight())?,
                    bd: data(b.down().bias().expect("SAN blocks have biases"))?,
                    wu: data(b.up().weight())?,
                    bu: data(b.up().bias().expect("SAN blocks have biases"))?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (bottleneck, dim) = blocks[0].down().weight().dims2()?;
        let gates = gates.as_ref().map(|g| data(&g.values()?)).transpose()?;
        Ok(PathParams {
            blocks: blocks_w,
            gates,
            dim,
            bottleneck,
        })
    }

    fn kernel(&self) -> SanPathKernel<'_> {
        SanPathKernel {
            blocks: &self.blocks,
            gates: self.gates.as_deref(),
            dim: self.dim,
            bottleneck: self.bottleneck,
        }
    }
}

/// Which path a run belongs to, with what its backward needs.
enum PathKind {
    /// Tap-major states of one tower.
    Intra { states: Vec<f32> },
    /// Mapped image and text states, and the raw ones when a width map was applied.
    Inter {
        image: Vec<f32>,
        text: Vec<f32>,
        raw_image: Option<Vec<f32>>,
        raw_text: Option<Vec<f32>>,
    },
}

/// Everything one path's forward kept.
struct PathRun {
    /// Index of the path in `IisanTower::paths()` order (its fuse column block).
    which: usize,
    kind: PathKind,
    params: PathParams,
    saved: SanPathSaved,
    chain: AffineChain,
    path: PathHandles,
}

impl PathRun {
    fn sources(&self) -> Sources<'_> {
        match &self.kind {
            PathKind::Intra { states } => Sources::Intra(states),
            PathKind::Inter { image, text, .. } => Sources::Inter(image, text),
        }
    }

    /// The path's block, gate and width-map gradients from `ds` = d loss / d s_{K-1}.
    fn backward(&self, ds: &[f32], n: usize, grads: &mut GradSink) -> Result<()> {
        let path = &self.path;
        let want = path.map_image.is_some() || path.map_text.is_some();
        let g = self
            .params
            .kernel()
            .backward(self.sources(), &self.saved, ds, want);
        for (blk, gb) in path.blocks.iter().zip(g.blocks) {
            let down = AffineGrads {
                w: gb.wd,
                b: Some(gb.bd),
            };
            grads.put_linear(blk.down(), down);
            let up = AffineGrads {
                w: gb.wu,
                b: Some(gb.bu),
            };
            grads.put_linear(blk.up(), up);
        }
        let gv = &self.params.gates;
        if let (Some(gates), Some(gv)) = (&path.gates, gv) {
            // g = sigmoid(theta / T): dg/dtheta = g (1 - g) / T
            let t = gates.temperature();
            let dtheta: Vec<f32> = g
                .gates
                .iter()
                .zip(gv)
                .map(|(dg, g)| (dg * *g as f64 * (1.0 - *g as f64) / t) as f32)
                .collect();
            grads.put(gates.theta(), dtheta);
        }
        if let (
            Some(dx),
            PathKind::Inter {
                raw_image,
                raw_text,
                ..
            },
        ) = (&g.inputs, &self.kind)
        {
            // x_k = s + g a_k + (1 - g) b_k (add: coefficients 1)
            let k = path.blocks.len();
            let coef = |f: fn(f32) -> f32| -> Vec<f32> {
                (0..k)
                    .map(|j| gv.as_ref().map_or(1.0, |g| f(g[j])))
                    .collect()
            };
            if let (Some(m), Some(h)) = (&path.map_image, raw_image) {
                map_grads(grads, m, dx, &coef(|g| g), h, n)?;
            }
            if let (Some(m), Some(h)) = (&path.map_text, raw_text) {
                map_grads(grads, m, dx, &coef(|g| 1.0 - g), h, n)?;
            }
        }
        Ok(())
    }
}

/// The error of a path whose tower states were not gathered.
fn missing_cache() -> crate::error::Error {
    crate::error::Error::Internal("path without its cache".into())
}

/// The last `k` of the `taps` taps of tap-major states `h` (`[taps, n, width]`, flattened).
fn last_taps(h: &Option<Vec<f32>>, taps: usize, k: usize) -> Result<Vec<f32>> {
    let h = h.as_ref().ok_or_else(missing_cache)?;
    let per = h.len() / taps;
    Ok(h[(taps - k) * per..].to_vec())
}

/// `[K, n, d_in]` tap-major states through per-tap Linear(d_in -> width) maps.
fn apply_maps(maps: &[Linear], h: &[f32], n: usize) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (k, m) in maps.iter().enumerate() {
        let (width, din) = m.weight().dims2()?;
        let w = data(m.weight())?;
        let mut y = vec![0f32; n * width];
        matmul(
            &mut y,
            &h[k * n * din..(k + 1) * n * din],
            Op::N,
            &w,
            Op::T,
            (n, width, din),
            false,
        );
        if let Some(b) = m.bias() {
            add_bias(&mut y, &data(b)?);
        }
        out.extend(y);
    }
    Ok(out)
}

/// Gradients of per-tap maps from `d x_k` scaled by `coef`, over raw inputs `h`.
fn map_grads(
    grads: &mut GradSink,
    maps: &[Linear],
    dx: &[f32],
    coef: &[f32],
    h: &[f32],
    n: usize,
) -> Result<()> {
    for (k, m) in maps.iter().enumerate() {
        let (width, din) = m.weight().dims2()?;
        let dy: Vec<f32> = dx[k * n * width..(k + 1) * n * width]
            .iter()
            .map(|v| v * coef[k])
            .collect();
        let mut gw = vec![0f32; width * din];
        let hk = &h[k * n * din..(k + 1) * n * din];
        matmul(&mut gw, &dy, Op::T, hk, Op::N, (width, din, n), false);
        let mut gb = vec![0f32; width];
        add_column_sums(&mut gb, &dy);
        grads.put_linear(m, AffineGrads { w: gw, b: Some(gb) });
    }
    Ok(())
}

impl IisanTower {
    /// Whether the fused kernels run this tower (config and device).
    pub(super) fn uses_kernels(&self) -> bool {
        self.kernels == Kernels::Cpu && matches!(self.device, Device::Cpu)
    }

    /// The head chain of path `p`: F, P, then W_c's column block p (no bias: b_c is added once).
    fn head_chain(&self, head: &Head, p: usize, fuse_w: &[f32]) -> Result<AffineChain> {
        let d = self.dim;
        let cols = fuse_w.len() / d;
        let block: Vec<f32> = (0..d)
            .flat_map(|r| fuse_w[r * cols + p * d..r * cols + (p + 1) * d].to_vec())
            .collect();
        Ok(AffineChain::new(vec![
            linear_layer(&head.f)?,
            linear_layer(&head.p)?,
            AffineLayer {
                w: block,
                out: d,
                inp: d,
                b: None,
            },
        ]))
    }

    /// Forward of every path over `ids`; the item embeddings `[n, d]` and the runs.
    fn fused_forward(&self, ids: &[u32], prof: &mut Profile) -> Result<(Vec<f32>, Vec<PathRun>)> {
        let n = ids.len();
        let gather = |c: &Option<Box<dyn super::states::HiddenStates>>, taps: &[usize]| {
            c.as_ref()
                .filter(|_| !taps.is_empty())
                .map(|c| c.gather_tap_major(ids, taps))
                .transpose()
        };
        let (ht, hi) = prof.time("gather", || -> Result<_> {
            Ok((
                gather(&self.text, &self.text_taps)?,
                gather(&self.image, &self.image_taps)?,
            ))
        })?;
        let t0 = std::time::Instant::now();
        let mut runs = Vec::with_capacity(3);
        for (which, path) in self.paths().into_iter().enumerate() {
            let kind = self.path_kind(&path, &ht, &hi, n)?;
            let params = PathParams::read(&path.blocks, &path.gates)?;
            let src = match &kind {
                PathKind::Intra { states } => Sources::Intra(states),
                PathKind::Inter { image, text, .. } => Sources::Inter(image, text),
            };
            let saved = params.kernel().forward(src, n);
            runs.push((which, kind, params, saved, path));
        }
        prof.add("SAN paths forward", t0.elapsed().as_secs_f64());
        let t1 = std::time::Instant::now();
        let fuse_w = data(self.fuse.weight())?;
        let mut e = vec![0f32; n * self.dim];
        let mut done = Vec::with_capacity(runs.len());
        for (which, kind, params, saved, path) in runs {
            let chain = self.head_chain(&path.head, which, &fuse_w)?;
            chain.forward(saved.output(), &mut e, which > 0);
            done.push(PathRun {
                which,
                kind,
                params,
                saved,
                chain,
                path,
            });
        }
        if let Some(b) = self.fuse.bias() {
            add_bias(&mut e, &data(b)?);
        }
        prof.add("heads forward", t1.elapsed().as_secs_f64());
        Ok((e, done))
    }

    /// The states path `path` reads over `n` items, from the gathered tap-major text (`ht`)
    /// and image (`hi`) states: its tower's states for an intra path; for the inter path the
    /// last `K` taps of both, through the width maps where the path has them.
    fn path_kind(
        &self,
        path: &PathHandles,
        ht: &Option<Vec<f32>>,
        hi: &Option<Vec<f32>>,
        n: usize,
    ) -> Result<PathKind> {
        Ok(match path.source {
            PathSource::Image => PathKind::Intra {
                states: hi.clone().ok_or_else(missing_cache)?,
            },
            PathSource::Text => PathKind::Intra {
                states: ht.clone().ok_or_else(missing_cache)?,
            },
            PathSource::Inter => {
                let k = path.blocks.len();
                let rt = last_taps(ht, self.text_taps.len(), k)?;
                let ri = last_taps(hi, self.image_taps.len(), k)?;
                let (text, raw_text) = match &path.map_text {
                    Some(m) => (apply_maps(m, &rt, n)?, Some(rt)),
                    None => (rt, None),
                };
                let (image, raw_image) = match &path.map_image {
                    Some(m) => (apply_maps(m, &ri, n)?, Some(ri)),
                    None => (ri, None),
                };
                PathKind::Inter {
                    image,
                    text,
                    raw_image,
                    raw_text,
                }
            }
        })
    }

    /// Evaluation-mode embeddings `[ids.len(), d]` on the fused kernels.
    pub(super) fn kernel_embed(&self, ids: &[u32]) -> Result<Tensor> {
        let (e, _) = self.fused_forward(ids, &mut Profile::default())?;
        Ok(Tensor::from_vec(e, (ids.len(), self.dim), &self.device)?)
    }

    /// Training-mode embeddings with their backward. With more than one compute thread the
    /// batch's items are embedded in two halves at once (every operation of the tower is
    /// row-wise, so the halves are independent), and the backward adds the halves' parameter
    /// gradients: one fork per pass instead of one per matrix product, so the element-wise
    /// work runs on both cores too. Phase times are the first half's (the halves overlap).
    pub(super) fn kernel_train(&self, ids: &[u32], prof: &mut Profile) -> Result<KernelEmbedding> {
        let n = ids.len();
        let ranges = if rayon::current_num_threads() > 1 && n >= MIN_SPLIT {
            vec![(0, n / 2), (n / 2, n)]
        } else {
            vec![(0, n)]
        };
        let forward: Vec<(Vec<f32>, Vec<PathRun>, Profile)> = ranges
            .par_iter()
            .map(|&(lo, hi)| {
                let mut p = Profile::default();
                let (e, runs) = self.fused_forward(&ids[lo..hi], &mut p)?;
                Ok((e, runs, p))
            })
            .collect::<Result<_>>()?;
        prof.merge(&forward[0].2);
        let mut e = Vec::with_capacity(n * self.dim);
        let mut parts = Vec::with_capacity(ranges.len());
        for ((pe, runs, _), range) in forward.into_iter().zip(ranges) {
            e.extend(pe);
            parts.push((range, runs));
        }
        let emb = Tensor::from_vec(e, (n, self.dim), &self.device)?;
        let fuse = self.fuse.clone();
        let backward: TowerBackward = Box::new(move |de: &Tensor, grads, prof| {
            let de = data(de)?;
            let d = fuse.weight().dims2()?.0;
            let done: Vec<(GradSink, Profile)> = parts
                .par_iter()
                .map(|((lo, hi), runs)| {
                    let mut p = Profile::default();
                    let sink = part_backward(runs, &fuse, &de[lo * d..hi * d], hi - lo, &mut p)?;
                    Ok((sink, p))
                })
                .collect::<Result<_>>()?;
            let mut done = done.into_iter();
            let (mut sink, p) = done.next().expect("at least one part");
            prof.merge(&p);
            for (other, _) in done {
                sink.add(other);
            }
            sink.insert_into(grads)
        });
        Ok(KernelEmbedding { emb, backward })
    }
}

/// Items below which a batch is embedded in one piece.
const MIN_SPLIT: usize = 32;

/// The backward of one part of the batch (`n` items, embedding gradients `de`): heads, then
/// every path.
fn part_backward(
    runs: &[PathRun],
    fuse: &Linear,
    de: &[f32],
    n: usize,
    prof: &mut Profile,
) -> Result<GradSink> {
    let mut sink = GradSink::default();
    let (d, cols) = fuse.weight().dims2()?;
    let t0 = std::time::Instant::now();
    let mut fuse_gw = vec![0f32; d * cols];
    let mut fuse_gb = vec![0f32; d];
    add_column_sums(&mut fuse_gb, de);
    let mut d_outs = Vec::with_capacity(runs.len());
    for run in runs {
        let mut ds = vec![0f32; run.saved.output().len()];
        let mut g = run.chain.backward(run.saved.output(), de, Some(&mut ds));
        let gc = g.pop().expect("three layers");
        let c0 = run.which * d;
        for r in 0..d {
            fuse_gw[r * cols + c0..r * cols + c0 + d].copy_from_slice(&gc.w[r * d..(r + 1) * d]);
        }
        let gp = g.pop().expect("P");
        let gf = g.pop().expect("F");
        sink.put_linear(&run.path.head.f, gf);
        sink.put_linear(&run.path.head.p, gp);
        d_outs.push(ds);
    }
    sink.put_linear(
        fuse,
        AffineGrads {
            w: fuse_gw,
            b: Some(fuse_gb),
        },
    );
    prof.add("heads backward", t0.elapsed().as_secs_f64());
    let t1 = std::time::Instant::now();
    for (run, ds) in runs.iter().zip(d_outs) {
        run.backward(&ds, n, &mut sink)?;
    }
    prof.add("SAN paths backward", t1.elapsed().as_secs_f64());
    Ok(sink)
}
