//! Where IISAN's per-layer [CLS] states come from: the hidden-state cache (cached IISAN, the
//! default) or the frozen towers run inside the training step in evaluation mode with no
//! gradient kept (`iisan_uncached`, docs/MODEL.md section 8: it pays the backbone forward every step).

use candle_core::{Device, Tensor};

use std::sync::Arc;

use crate::backbone::encoders::{ImageEncoder, TextEncoder};
use crate::backbone::inputs::{ItemImages, ItemTokens};
use crate::cache::HiddenStateCache;
use crate::error::{Error, Result};
use crate::nn::layers::Ctx;

/// Items' hidden states, `states` per item of `width` values (shared by the threads that
/// embed two halves of a batch at once).
pub trait HiddenStates: Send + Sync {
    /// Hidden states per item.
    fn states(&self) -> usize;

    /// Width of each state.
    fn width(&self) -> usize;

    /// States `taps` of items `ids`, tap-major `[taps.len(), ids.len(), width]`.
    fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>>;

    /// States `taps` of items `ids` as an item-major `[ids.len(), taps.len(), width]` f32 tensor
    /// on `device` (what the candle-ops path reads); sources that already live on a device
    /// override it to stay there.
    fn gather_item_major(&self, ids: &[u32], taps: &[usize], device: &Device) -> Result<Tensor> {
        let v = self.gather_tap_major(ids, taps)?;
        item_major(v, taps.len(), ids.len(), self.width(), device)
    }
}

/// A hidden-state cache uploaded once to a device (docs/GPU.md): the states of the taps the
/// tower reads, for every item, as one `[N + 1, taps, width]` tensor there; a batch is an
/// index-select on the device instead of a copy from the memory-mapped file every step.
pub struct DeviceStates {
    states: usize,
    width: usize,
    /// The uploaded taps, in upload order.
    taps: Vec<usize>,
    all: Tensor,
    /// The source, for the CPU-side `gather_tap_major` (new items, tests).
    source: Box<dyn HiddenStates>,
}

impl DeviceStates {
    /// Upload taps `taps` of every item `0..=items` of `source` to `device`, 4,096 items per
    /// copy (so the host side never holds more than one chunk). When the device cannot hold
    /// them (an allocation fails), the source comes back with the error: the caller streams
    /// each batch from it instead.
    pub fn upload(
        source: Box<dyn HiddenStates>,
        items: usize,
        taps: &[usize],
        device: &Device,
    ) -> std::result::Result<DeviceStates, (Box<dyn HiddenStates>, Error)> {
        const CHUNK: u32 = 4096;
        let n = items as u32 + 1;
        let all = (0..n)
            .step_by(CHUNK as usize)
            .map(|start| {
                let ids: Vec<u32> = (start..(start + CHUNK).min(n)).collect();
                source.gather_item_major(&ids, taps, device)
            })
            .collect::<Result<Vec<_>>>()
            .and_then(|parts| Ok(Tensor::cat(&parts, 0)?));
        match all {
            Ok(all) => Ok(DeviceStates {
                states: source.states(),
                width: source.width(),
                taps: taps.to_vec(),
                all,
                source,
            }),
            Err(e) => Err((source, e)),
        }
    }
}

impl HiddenStates for DeviceStates {
    fn states(&self) -> usize {
        self.states
    }

    fn width(&self) -> usize {
        self.width
    }

    fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
        self.source.gather_tap_major(ids, taps)
    }

    fn gather_item_major(&self, ids: &[u32], taps: &[usize], device: &Device) -> Result<Tensor> {
        let dev = self.all.device();
        let rows = self
            .all
            .index_select(&Tensor::from_slice(ids, ids.len(), dev)?, 0)?;
        let at: Vec<u32> = taps
            .iter()
            .map(|t| {
                self.taps
                    .iter()
                    .position(|u| u == t)
                    .map(|p| p as u32)
                    .ok_or_else(|| Error::Internal(format!("tap {t} was not uploaded")))
            })
            .collect::<Result<_>>()?;
        let in_order =
            at.len() == self.taps.len() && at.iter().enumerate().all(|(i, &p)| i == p as usize);
        let out = if in_order {
            rows
        } else {
            rows.index_select(&Tensor::from_vec(at, taps.len(), dev)?, 1)?
        };
        Ok(out.to_device(device)?)
    }
}

/// Tap-major states `[taps, n, width]` (flattened) as an item-major `[n, taps, width]` tensor.
pub fn item_major(
    v: Vec<f32>,
    taps: usize,
    n: usize,
    width: usize,
    device: &Device,
) -> Result<Tensor> {
    let t = Tensor::from_vec(v, (taps, n, width), device)?;
    Ok(t.transpose(0, 1)?.contiguous()?)
}

impl HiddenStates for HiddenStateCache {
    fn states(&self) -> usize {
        self.header().states
    }

    fn width(&self) -> usize {
        self.header().width
    }

    fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
        HiddenStateCache::gather_tap_major(self, ids, taps)
    }
}

/// `[n, S, D]` states (row-major) -> tap-major `[taps, n, D]`.
fn tap_major(all: &[f32], n: usize, states: usize, width: usize, taps: &[usize]) -> Vec<f32> {
    let mut out = Vec::with_capacity(taps.len() * n * width);
    for &t in taps {
        for i in 0..n {
            let at = (i * states + t) * width;
            out.extend_from_slice(&all[at..at + width]);
        }
    }
    out
}

/// Run a frozen tower `chunk` items at a time (`run` returns `[n, S, D]` states) and pick
/// `taps` tap-major.
fn run_chunked(
    src: &dyn HiddenStates,
    ids: &[u32],
    taps: &[usize],
    chunk: usize,
    run: impl Fn(&[u32]) -> Result<Tensor>,
) -> Result<Vec<f32>> {
    let (states, width) = (src.states(), src.width());
    let mut all = Vec::with_capacity(ids.len() * states * width);
    for c in ids.chunks(chunk.max(1)) {
        all.extend(run(c)?.flatten_all()?.to_vec1::<f32>()?);
    }
    Ok(tap_major(&all, ids.len(), states, width, taps))
}

/// Run a frozen tower `chunk` items at a time and pick `taps`, staying on the tower's device:
/// an item-major `[ids.len(), taps.len(), D]` tensor moved to `device`.
fn select_on_device(
    ids: &[u32],
    taps: &[usize],
    chunk: usize,
    device: &Device,
    run: impl Fn(&[u32]) -> Result<Tensor>,
) -> Result<Tensor> {
    let parts = ids
        .chunks(chunk.max(1))
        .map(run)
        .collect::<Result<Vec<_>>>()?;
    let all = Tensor::cat(&parts, 0)?.contiguous()?;
    let at: Vec<u32> = taps.iter().map(|&t| t as u32).collect();
    let idx = Tensor::from_vec(at, taps.len(), all.device())?;
    Ok(all.index_select(&idx, 1)?.to_device(device)?)
}

/// A frozen tower that computes its states on demand (the live towers below).
pub(crate) trait OnDemand: Send + Sync {
    /// States per item and their width.
    fn shape(&self) -> (usize, usize);

    /// Items per tower forward.
    fn chunk(&self) -> usize;

    /// The f32 [CLS] states `[n, S, D]` of items `c`, on the tower's device.
    fn run(&self, c: &[u32]) -> Result<Tensor>;
}

impl<T: OnDemand> HiddenStates for T {
    fn states(&self) -> usize {
        self.shape().0
    }

    fn width(&self) -> usize {
        self.shape().1
    }

    fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
        run_chunked(self, ids, taps, self.chunk(), |c| self.run(c))
    }

    fn gather_item_major(&self, ids: &[u32], taps: &[usize], device: &Device) -> Result<Tensor> {
        select_on_device(ids, taps, self.chunk(), device, |c| self.run(c))
    }
}

/// The frozen text tower computing states on demand.
pub struct LiveText {
    /// The tower (shared: a server embedding new items keeps one loaded).
    pub tower: Arc<TextEncoder>,
    /// Every item's tokens.
    pub tokens: ItemTokens,
    /// Items per tower forward.
    pub chunk: usize,
}

impl OnDemand for LiveText {
    fn shape(&self) -> (usize, usize) {
        (self.tower.num_states(), self.tower.width())
    }

    fn chunk(&self) -> usize {
        self.chunk
    }

    fn run(&self, c: &[u32]) -> Result<Tensor> {
        let rows = self.tokens.rows(c);
        self.tower
            .states(&rows, self.tokens.max_tokens(), &Ctx::eval())
    }
}

/// The frozen image tower computing states on demand.
pub struct LiveImage {
    /// The tower (shared, as the text tower).
    pub tower: Arc<ImageEncoder>,
    /// Image loading.
    pub images: ItemImages,
    /// Items per tower forward.
    pub chunk: usize,
}

impl OnDemand for LiveImage {
    fn shape(&self) -> (usize, usize) {
        (self.tower.num_states(), self.tower.width())
    }

    fn chunk(&self) -> usize {
        self.chunk
    }

    fn run(&self, c: &[u32]) -> Result<Tensor> {
        let px = self.images.batch(c, self.tower.device())?;
        self.tower.states(&px, &Ctx::eval())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Item `i`'s state `t` is the width-2 vector `[10 i + t, -(10 i + t)]`.
    struct Toy;

    impl HiddenStates for Toy {
        fn states(&self) -> usize {
            3
        }

        fn width(&self) -> usize {
            2
        }

        fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
            let v = |i: u32, t: usize| (10 * i as usize + t) as f32;
            Ok(taps
                .iter()
                .flat_map(|&t| ids.iter().flat_map(move |&i| [v(i, t), -v(i, t)]))
                .collect())
        }
    }

    #[test]
    fn uploaded_states_gather_what_the_source_gathers() {
        // taps [2, 0] of items 0..=4 uploaded; items [3, 1] at taps [0, 2] and [2]:
        // item 3 tap 0 = [30, -30], tap 2 = [32, -32]; item 1 tap 0 = [10, -10], tap 2 = [12, -12]
        let dev = Device::Cpu;
        let up = DeviceStates::upload(Box::new(Toy), 4, &[2, 0], &dev)
            .map_err(|(_, e)| e)
            .unwrap();
        let got: Vec<f32> = up
            .gather_item_major(&[3, 1], &[0, 2], &dev)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert_eq!(got, [30., -30., 32., -32., 10., -10., 12., -12.]);
        let want = Toy.gather_item_major(&[4], &[2], &dev).unwrap();
        let got = up.gather_item_major(&[4], &[2], &dev).unwrap();
        assert_eq!(
            got.to_vec3::<f32>().unwrap(),
            want.to_vec3::<f32>().unwrap()
        );
        assert!(
            up.gather_item_major(&[1], &[1], &dev).is_err(),
            "tap 1 was not uploaded"
        );
    }

    #[test]
    fn tap_major_reorders_item_major_states() {
        // 2 items x 3 states x width 1: item0 [a0,a1,a2] = [0,1,2], item1 = [10,11,12];
        // taps [2, 0] -> [a2, b2, a0, b0] = [2, 12, 0, 10]
        let all = [0f32, 1., 2., 10., 11., 12.];
        assert_eq!(tap_major(&all, 2, 3, 1, &[2, 0]), [2., 12., 0., 10.]);
    }
}
