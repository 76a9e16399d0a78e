//! The fusion of the paths into the item embedding, `e = W_c [head_v; head_t; head_m] + b_c`
//! (docs/MODEL.md section 3), on both engines. On candle ops ([`IisanTower::graph_embed`]) each
//! path runs from its gathered states, through its head, into the fusion. On the CPU kernels
//! the cache rows are gathered tap-major in one pass, each path's SAN chain runs as a
//! [`SanPathKernel`] and each path's head `W_c,p P_p F_p` collapses into one [`AffineChain`];
//! the tower's output joins the graph as one kernel node whose backward records every
//! parameter's gradient. The same function and gradients either way (tests compare both).

use candle_core::Tensor;
use candle_nn::Linear;
use rayon::prelude::*;

use super::heads::{AffineChain, AffineLayer, Head, HeadGrads, HeadInput};
use super::paths::{BlockWeights, IntraPath, SanInput, SanPathKernel, SanPathSaved, Sources};
use super::san::{Gates, SanBlock};
use super::states::HiddenStates;
use super::{IisanTower, PathHandles, PathSource};
use crate::efficiency::Profile;
use crate::error::Result;
use crate::nn::cpu::{Op, add_bias, add_column_sums, matmul, matmul_append};
use crate::nn::{GradSink, Kernel, NodeBackward, Pending};

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
    /// Tap-major states of one tower, and the `[n, D]` start state when it is not zeros.
    Intra {
        states: Vec<f32>,
        init: Option<Vec<f32>>,
    },
    /// Mapped image and text states, and the raw ones when a width map was applied.
    Inter {
        image: Vec<f32>,
        text: Vec<f32>,
        raw_image: Option<Vec<f32>>,
        raw_text: Option<Vec<f32>>,
    },
}

impl PathKind {
    /// The SAN chain's tap-major sources.
    fn sources(&self) -> Sources<'_> {
        match self {
            PathKind::Intra { states, init } => Sources::Intra {
                states,
                init: init.as_deref(),
            },
            PathKind::Inter { image, text, .. } => Sources::Inter(image, text),
        }
    }
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
    /// The path's block, gate and width-map gradients from `ds` = d loss / d s_{K-1}.
    fn backward(self, ds: &[f32], n: usize, grads: &mut GradSink) -> Result<()> {
        let path = &self.path;
        let input = SanInput {
            src: self.kind.sources(),
            n,
            want_inputs: path.map_image.is_some() || path.map_text.is_some(),
        };
        let g = self.params.kernel().backward(input, self.saved, ds);
        for (blk, gb) in path.blocks.iter().zip(g.blocks) {
            grads.put_linear(blk.down(), gb.wd, Some(gb.bd));
            grads.put_linear(blk.up(), gb.wu, Some(gb.bu));
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

/// The taps from `start` on of tap-major states `h` (`[taps, n, width]`, flattened; `taps` is
/// the number of taps gathered).
fn taps_from(h: &Option<Vec<f32>>, taps: usize, start: usize) -> Result<Vec<f32>> {
    let h = h.as_ref().ok_or_else(missing_cache)?;
    let per = h.len() / taps;
    Ok(h[start * per..].to_vec())
}

/// `[K, n, d_in]` tap-major states through per-tap Linear(d_in -> width) maps.
fn apply_maps(maps: &[Linear], h: &[f32], n: usize) -> Result<Vec<f32>> {
    let mut out = Vec::new();
    for (k, m) in maps.iter().enumerate() {
        let (width, din) = m.weight().dims2()?;
        let w = data(m.weight())?;
        let hk = &h[k * n * din..(k + 1) * n * din];
        matmul_append(&mut out, hk, Op::N, &w, Op::T, (n, width, din));
        if let Some(b) = m.bias() {
            add_bias(&mut out[k * n * width..], &data(b)?);
        }
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
        grads.put_linear(m, gw, Some(gb));
    }
    Ok(())
}

impl IisanTower {
    /// The embeddings `[ids.len(), d]` on candle ops (the graph engine; autograd differentiates
    /// them): each path from its states, its head, then the fusion.
    pub(super) fn graph_embed(&self, ids: &[u32]) -> Result<Tensor> {
        let t = &self.taps;
        let tensor = |h: &Option<Box<dyn HiddenStates>>, taps: &[usize]| {
            h.as_ref()
                .filter(|_| !taps.is_empty())
                .map(|h| -> Result<Tensor> {
                    let states = h.gather_item_major(ids, &t.gathered(taps), &self.device)?;
                    Ok(states.to_dtype(self.dtype)?)
                })
                .transpose()
        };
        let ht = tensor(&self.text, &t.text)?;
        let hi = tensor(&self.image, &t.image)?;
        let lead = t.lead();
        // an intra path reads its taps, and starts from the state gathered ahead of them if any
        let intra = |p: &IntraPath, h: &Tensor, taps: usize| -> Result<Tensor> {
            let init = (lead > 0)
                .then(|| h.narrow(1, 0, 1)?.squeeze(1))
                .transpose()?;
            p.forward(&h.narrow(1, lead, taps)?, init.as_ref())
        };
        let mut parts = Vec::with_capacity(3);
        if let (Some((p, head)), Some(h)) = (&self.intra_image, &hi) {
            parts.push(head.forward(&intra(p, h, t.image.len())?)?);
        }
        if let (Some((p, head)), Some(h)) = (&self.intra_text, &ht) {
            parts.push(head.forward(&intra(p, h, t.text.len())?)?);
        }
        if let (Some((p, head)), Some(ht), Some(hi)) = (&self.inter, &ht, &hi) {
            let (k, (st, si)) = (t.inter(), t.inter_start());
            let t = ht.narrow(1, lead + st, k)?;
            let i = hi.narrow(1, lead + si, k)?;
            parts.push(head.forward(&p.forward(&t, &i)?)?);
        }
        let x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        };
        Ok(crate::nn::mixed::linear(&self.fuse, &x)?)
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
    fn kernel_forward(&self, ids: &[u32], prof: &mut Profile) -> Result<(Vec<f32>, Vec<PathRun>)> {
        let n = ids.len();
        let (ht, hi) = prof.time("gather", || self.gather(ids))?;
        let t0 = std::time::Instant::now();
        let mut runs = Vec::with_capacity(3);
        for (which, path) in self.paths().into_iter().enumerate() {
            let kind = self.path_kind(&path, &ht, &hi, n)?;
            let params = PathParams::read(&path.blocks, &path.gates)?;
            let input = SanInput {
                src: kind.sources(),
                n,
                want_inputs: false,
            };
            let saved = params.kernel().forward(input);
            runs.push((which, kind, params, saved, path));
        }
        prof.add("SAN paths forward", t0.elapsed().as_secs_f64());
        let t1 = std::time::Instant::now();
        let fuse_w = data(self.fuse.weight())?;
        let mut e = Vec::new();
        let mut done = Vec::with_capacity(runs.len());
        for (which, kind, params, saved, path) in runs {
            let chain = self.head_chain(&path.head, which, &fuse_w)?;
            let acc = (which > 0).then_some(e.as_slice());
            e = chain.forward(HeadInput {
                s: saved.output(),
                acc,
            });
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
    /// and image (`hi`) states ([`super::config::TapPlan::gathered`]: the start state, if
    /// any, then the taps): its tower's states and start state for an intra path; for the
    /// inter path the last `K` taps of both, through the width maps where the path has them.
    fn path_kind(
        &self,
        path: &PathHandles,
        ht: &Option<Vec<f32>>,
        hi: &Option<Vec<f32>>,
        n: usize,
    ) -> Result<PathKind> {
        let lead = self.taps.lead();
        let intra = |h: &Option<Vec<f32>>, taps: usize| -> Result<PathKind> {
            let mut states = taps_from(h, lead + taps, 0)?;
            // the start state is gathered first: split it off
            let init = (lead > 0).then(|| states.drain(..states.len() / (taps + 1)).collect());
            Ok(PathKind::Intra { states, init })
        };
        Ok(match path.source {
            PathSource::Image => intra(hi, self.taps.image.len())?,
            PathSource::Text => intra(ht, self.taps.text.len())?,
            PathSource::Inter => {
                let (st, si) = self.taps.inter_start();
                let rt = taps_from(ht, lead + self.taps.text.len(), lead + st)?;
                let ri = taps_from(hi, lead + self.taps.image.len(), lead + si)?;
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

    /// Evaluation-mode embeddings `[ids.len(), d]` on the CPU kernels.
    pub(super) fn kernel_embed(&self, ids: &[u32]) -> Result<Tensor> {
        let (e, _) = self.kernel_forward(ids, &mut Profile::default())?;
        Ok(Tensor::from_vec(e, (ids.len(), self.dim), &self.device)?)
    }

    /// Training-mode embeddings as one kernel node of the graph (it reads no graph tensor: the
    /// states are cached or computed by frozen towers), whose backward records every parameter's
    /// gradient. With more than one compute thread the batch's items are embedded in two halves
    /// at once (every operation of the tower is row-wise, so the halves are independent), and
    /// the backward adds the halves' parameter gradients: one fork per pass instead of one per
    /// matrix product, so the element-wise work runs on both cores too. Phase times are the
    /// first half's (the halves overlap).
    pub(super) fn kernel_train(&self, ids: &[u32], prof: &mut Profile) -> Result<Tensor> {
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
                let (e, runs) = self.kernel_forward(&ids[lo..hi], &mut p)?;
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
        let backward: NodeBackward = Box::new(move |de: &Tensor, pending: &mut Pending| {
            let de = data(de)?;
            let d = fuse.weight().dims2()?.0;
            let done: Vec<(GradSink, Profile)> = parts
                .into_par_iter()
                .map(|((lo, hi), runs)| {
                    let mut p = Profile::default();
                    let sink = part_backward(runs, &fuse, &de[lo * d..hi * d], hi - lo, &mut p)?;
                    Ok((sink, p))
                })
                .collect::<Result<_>>()?;
            let mut done = done.into_iter();
            let (mut sink, p) = done.next().expect("at least one part");
            for (other, _) in done {
                sink.add(other);
            }
            pending.grads.extend(sink);
            pending
                .phases
                .extend(p.phases.into_iter().map(|(name, s, _)| (name, s)));
            Ok(None)
        });
        self.nodes.node(None, emb, backward)
    }
}

/// Items below which a batch is embedded in one piece.
const MIN_SPLIT: usize = 32;

/// The backward of one part of the batch (`n` items, embedding gradients `de`): heads, then
/// every path.
fn part_backward(
    runs: Vec<PathRun>,
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
    for run in &runs {
        let input = HeadInput {
            s: run.saved.output(),
            acc: None,
        };
        let HeadGrads { layers: mut g, ds } = run.chain.backward(input, Vec::new(), de);
        let gc = g.pop().expect("three layers");
        let c0 = run.which * d;
        for r in 0..d {
            fuse_gw[r * cols + c0..r * cols + c0 + d].copy_from_slice(&gc.w[r * d..(r + 1) * d]);
        }
        let gp = g.pop().expect("P");
        let gf = g.pop().expect("F");
        sink.put_linear(&run.path.head.f, gf.w, gf.b);
        sink.put_linear(&run.path.head.p, gp.w, gp.b);
        d_outs.push(ds);
    }
    sink.put_linear(fuse, fuse_gw, Some(fuse_gb));
    prof.add("heads backward", t0.elapsed().as_secs_f64());
    let t1 = std::time::Instant::now();
    for (run, ds) in runs.into_iter().zip(d_outs) {
        run.backward(&ds, n, &mut sink)?;
    }
    prof.add("SAN paths backward", t1.elapsed().as_secs_f64());
    Ok(sink)
}
