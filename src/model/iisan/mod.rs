//! The IISAN item tower (docs/MODEL.md section 3): intra-modal side networks per modality and an
//! inter-modal one across modalities, reading the frozen towers' cached per-layer [CLS] states
//! ([`crate::cache`]), then the fusion heads into the item embedding.
//!
//! ```text
//! intra:  s_-1 = 0 (h_0 with remove_first);  x_k = g_k h_S[k] + (1 - g_k) s_k-1;  s_k = SANB_k(x_k)
//! inter:  m_-1 = 0;  m_k = SANB_k(m_k-1 + g_k T^I_k(h^I_S[k]) + (1 - g_k) T^T_k(h^T_S[k]))
//! e = W_c [P_img F_img s^I ; P_text F_text s^T ; P_mm F_mm m] + b_c
//! ```
//! `T_k` is identity for equal widths; for towers of different widths (IISAN-Versa) the wider
//! tower's state passes a per-tap Linear(wider -> narrower) and the inter path runs in the
//! narrower width. `fusion = add` replaces the gated mixes by plain sums. Per-tower tap lists
//! may differ in length: the inter path aligns their last K taps (K = the shorter length); the
//! leading unaligned taps feed only their intra path.

pub mod config;
mod fusion;
pub mod heads;
pub mod paths;
pub mod san;
pub mod states;

pub use config::{Fusion, IisanConfig, Modality};

use candle_core::{DType, Device, Tensor};
use candle_nn::Linear;

use self::config::TapPlan;
use self::heads::{Head, HeadSpec};
use self::paths::{InterPath, IntraPath};
use self::san::{Gates, SanBlock};
use self::states::HiddenStates;
use super::method::Method;
use super::tower::ItemTower;
use crate::efficiency::Profile;
use crate::error::{Error, Result};
use crate::nn::{Ctx, Engine, GROUP_DEFAULT, Init, KernelNodes, ParamStore};

/// Learning-rate group of the text head's `F` (the authors' 5e-5; docs/MODEL.md section 5).
pub const GROUP_TEXT_HEAD: &str = "text_head";
/// Learning-rate group of the image head's `F` (the authors' 1e-4).
pub const GROUP_IMAGE_HEAD: &str = "image_head";
/// Learning-rate group of the image intra path's gates (the authors' 1e-4).
pub const GROUP_IMAGE_GATES: &str = "image_gates";

/// The text head: `F` in its own group, `P` as PyTorch's `nn.Linear` initialises it.
const TEXT_HEAD: HeadSpec = HeadSpec {
    f_group: GROUP_TEXT_HEAD,
    p_init: Init::TorchLinear,
};
/// The image head: `F` in its own group, `P` xavier-normal with a zero bias (the authors').
const IMAGE_HEAD: HeadSpec = HeadSpec {
    f_group: GROUP_IMAGE_HEAD,
    p_init: Init::XavierNormal,
};
/// The inter head: the default group, PyTorch's initialiser.
const INTER_HEAD: HeadSpec = HeadSpec {
    f_group: GROUP_DEFAULT,
    p_init: Init::TorchLinear,
};

/// The IISAN item tower over hidden-state caches.
pub struct IisanTower {
    text: Option<Box<dyn HiddenStates>>,
    image: Option<Box<dyn HiddenStates>>,
    taps: TapPlan,
    intra_text: Option<(IntraPath, Head)>,
    intra_image: Option<(IntraPath, Head)>,
    inter: Option<(InterPath, Head)>,
    fuse: Linear,
    dim: usize,
    device: Device,
    /// The precision the graph computes in (the store's; the states are cast to it).
    dtype: DType,
    engine: Engine,
    nodes: KernelNodes,
    /// Whether the states are computed by the towers in the step, and those towers' size.
    uncached: Option<usize>,
}

/// Tap-major text and image states of a batch of items (`None`: not read).
type Gathered = (Option<Vec<f32>>, Option<Vec<f32>>);

/// Which states a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathSource {
    Image,
    Text,
    Inter,
}

/// Owned handles (shared tensors) to one path's parameters, for the CPU kernels' backward.
#[derive(Debug, Clone)]
struct PathHandles {
    source: PathSource,
    blocks: Vec<SanBlock>,
    gates: Option<Gates>,
    map_image: Option<Vec<Linear>>,
    map_text: Option<Vec<Linear>>,
    head: Head,
}

impl IisanTower {
    /// Build the tower for `c` over the caches (each required when the modality reads it), run
    /// by `engine`; widths and state counts come from the cache headers.
    pub fn new(
        store: &mut ParamStore,
        c: &IisanConfig,
        engine: Engine,
        text: Option<Box<dyn HiddenStates>>,
        image: Option<Box<dyn HiddenStates>>,
        dim: usize,
    ) -> Result<Self> {
        c.validate()?;
        let c = &c.with_depths(
            text.as_ref().map(|h| h.states()),
            image.as_ref().map(|h| h.states()),
        );
        let (ut, ui, um) = c.modality.uses();
        let taps = c.tap_plan();
        let (dt, kt) = needed_states(c.modality.needs_text(), &text, "text", &taps.text)?;
        let (di, ki) = needed_states(c.modality.needs_image(), &image, "image", &taps.image)?;
        let intra_text = if ut {
            Some((
                IntraPath::new(store, "item.text", (dt, kt), c, GROUP_DEFAULT)?,
                Head::new(store, "item.head_text", (dt, dim), TEXT_HEAD)?,
            ))
        } else {
            None
        };
        let intra_image = if ui {
            Some((
                IntraPath::new(store, "item.image", (di, ki), c, GROUP_IMAGE_GATES)?,
                Head::new(store, "item.head_image", (di, dim), IMAGE_HEAD)?,
            ))
        } else {
            None
        };
        let inter = if um {
            debug_assert_eq!(kt.min(ki), taps.inter());
            let p = InterPath::new(store, dt, di, taps.inter(), c)?;
            let w = p.width;
            Some((
                p,
                Head::new(store, "item.head_inter", (w, dim), INTER_HEAD)?,
            ))
        } else {
            None
        };
        let n = [ut, ui, um].iter().filter(|&&b| b).count();
        let fuse = store.linear(
            "item.fuse",
            n * dim,
            dim,
            true,
            Init::TorchLinear,
            GROUP_DEFAULT,
        )?;
        Ok(IisanTower {
            device: store.device().clone(),
            dtype: store.precision(),
            nodes: store.nodes().clone(),
            text,
            image,
            taps,
            intra_text,
            intra_image,
            inter,
            fuse,
            dim,
            engine,
            uncached: None,
        })
    }
}

/// Width and tap count `(width, taps.len())` of the `what` states `src` when the modality
/// reads them (`needed`), `(0, 0)` when it does not; an error when they are needed but absent or
/// a tap lies outside their hidden states.
fn needed_states(
    needed: bool,
    src: &Option<Box<dyn HiddenStates>>,
    what: &str,
    taps: &[usize],
) -> Result<(usize, usize)> {
    if !needed {
        return Ok((0, 0));
    }
    let h = src
        .as_ref()
        .ok_or_else(|| Error::Config(format!("modality needs the {what} states")))?;
    if let Some(&t) = taps.iter().find(|&&t| t >= h.states()) {
        return Err(Error::Config(format!(
            "{what} tap {t} outside the {} hidden states",
            h.states()
        )));
    }
    Ok((h.width(), taps.len()))
}

impl IisanTower {
    /// The tap-major states `[taps, ids.len(), width]` of `ids` that the text and the image
    /// paths read, [`TapPlan::gathered`] (`None` for a tower whose modality does not read them).
    fn gather(&self, ids: &[u32]) -> Result<Gathered> {
        let one = |c: &Option<Box<dyn HiddenStates>>, taps: &[usize]| {
            c.as_ref()
                .filter(|_| !taps.is_empty())
                .map(|c| c.gather_tap_major(ids, taps))
                .transpose()
        };
        let t = &self.taps;
        Ok((
            one(&self.text, &t.gathered(&t.text))?,
            one(&self.image, &t.gathered(&t.image))?,
        ))
    }

    /// Mark the tower as reading live tower states (`iisan_uncached`) from towers of
    /// `frozen_params` parameters.
    pub fn set_uncached(&mut self, frozen_params: usize) {
        self.uncached = Some(frozen_params);
    }

    /// The active paths in fuse-column order `[v; t; u]`.
    fn paths(&self) -> Vec<PathHandles> {
        let intra = |source, p: &IntraPath, head: &Head| PathHandles {
            source,
            blocks: p.blocks.clone(),
            gates: p.gates.clone(),
            map_image: None,
            map_text: None,
            head: head.clone(),
        };
        let mut v = Vec::with_capacity(3);
        if let Some((p, h)) = &self.intra_image {
            v.push(intra(PathSource::Image, p, h));
        }
        if let Some((p, h)) = &self.intra_text {
            v.push(intra(PathSource::Text, p, h));
        }
        if let Some((p, h)) = &self.inter {
            v.push(PathHandles {
                source: PathSource::Inter,
                blocks: p.blocks.clone(),
                gates: p.gates.clone(),
                map_image: p.map_image.clone(),
                map_text: p.map_text.clone(),
                head: h.clone(),
            });
        }
        v
    }
}

impl ItemTower for IisanTower {
    fn method(&self) -> Method {
        match self.uncached {
            Some(_) => Method::IisanUncached,
            None => Method::Iisan,
        }
    }

    fn frozen_params(&self) -> usize {
        self.uncached.unwrap_or(0)
    }

    fn dim(&self) -> usize {
        self.dim
    }

    fn embed_train(&self, ids: &[u32], ctx: &Ctx, prof: &mut Profile) -> Result<Tensor> {
        match self.engine {
            Engine::Kernels => self.kernel_train(ids, prof),
            Engine::Graph => prof.time("item tower forward", || self.embed(ids, ctx)),
        }
    }

    fn embed_eval(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor> {
        if self.engine == Engine::Kernels {
            self.kernel_embed(ids)
        } else {
            Ok(self.embed(ids, ctx)?.detach())
        }
    }

    fn embed(&self, ids: &[u32], _ctx: &Ctx) -> Result<Tensor> {
        self.graph_embed(ids)
    }

    fn device(&self) -> Device {
        self.device.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 7 states of width 128, all zeros (only the parameters are looked at).
    struct Blank;

    impl HiddenStates for Blank {
        fn states(&self) -> usize {
            7
        }

        fn width(&self) -> usize {
            128
        }

        fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
            Ok(vec![0.0; ids.len() * taps.len() * 128])
        }
    }

    /// The authors' per-head settings: F_text in `text_head`, F_img in `image_head`, the image
    /// gates in `image_gates`, everything else of the heads and the other gates in `default`;
    /// the image head's P xavier-normal (std sqrt(2 / (128 + 64)) = 0.102) with a zero bias.
    #[test]
    fn heads_and_gates_take_the_authors_groups_and_the_image_p_its_init() {
        let mut store = ParamStore::new(1, Device::Cpu);
        let c = IisanConfig {
            image_taps: Some((0..=6).collect()),
            ..Default::default()
        };
        IisanTower::new(
            &mut store,
            &c,
            Engine::Kernels,
            Some(Box::new(Blank)),
            Some(Box::new(Blank)),
            64,
        )
        .unwrap();
        let group = |name: &str| {
            let p = store.params().iter().find(|p| p.name == name);
            p.unwrap_or_else(|| panic!("no {name}")).group
        };
        for (name, want) in [
            ("item.head_text.f.weight", GROUP_TEXT_HEAD),
            ("item.head_text.f.bias", GROUP_TEXT_HEAD),
            ("item.head_image.f.weight", GROUP_IMAGE_HEAD),
            ("item.image.gates.theta", GROUP_IMAGE_GATES),
            ("item.head_text.p.weight", GROUP_DEFAULT),
            ("item.head_image.p.weight", GROUP_DEFAULT),
            ("item.head_inter.f.weight", GROUP_DEFAULT),
            ("item.text.gates.theta", GROUP_DEFAULT),
            ("item.inter.gates.theta", GROUP_DEFAULT),
        ] {
            assert_eq!(group(name), want, "{name}");
        }
        let values = |name: &str| -> Vec<f32> {
            let p = store.params().iter().find(|p| p.name == name).unwrap();
            p.var.as_tensor().flatten_all().unwrap().to_vec1().unwrap()
        };
        assert!(values("item.head_image.p.bias").iter().all(|&b| b == 0.0));
        let w = values("item.head_image.p.weight");
        let std = (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        assert!((std - 0.102).abs() < 0.01, "std {std}");
        assert!(values("item.head_text.p.bias").iter().any(|&b| b != 0.0));
    }

    /// 7 states of width 128: item i's state t is `0.01 (t + 1) (i + 1)` in every entry, plus
    /// `shift` on state 0.
    struct Ramp(f32);

    impl HiddenStates for Ramp {
        fn states(&self) -> usize {
            7
        }

        fn width(&self) -> usize {
            128
        }

        fn gather_tap_major(&self, ids: &[u32], taps: &[usize]) -> Result<Vec<f32>> {
            let v = |i: u32, t: usize| {
                0.01 * (t + 1) as f32 * (i + 1) as f32 + if t == 0 { self.0 } else { 0.0 }
            };
            Ok(taps
                .iter()
                .flat_map(|&t| ids.iter().flat_map(move |&i| [v(i, t); 128]))
                .collect())
        }
    }

    /// With `remove_first` the text path reads taps 1..=6 and starts from state 0, so moving
    /// state 0 alone moves the embedding, on both kernels, and the two kernels agree. The same
    /// seed gives every tower the same parameters.
    #[test]
    fn remove_first_starts_the_intra_path_from_state_0() {
        let embed = |shift: f32, engine: Engine, first: bool| -> Vec<f32> {
            let mut store = ParamStore::new(3, Device::Cpu);
            let c = IisanConfig {
                modality: Modality::Text,
                remove_first: first,
                ..Default::default()
            };
            let t = IisanTower::new(&mut store, &c, engine, Some(Box::new(Ramp(shift))), None, 8)
                .unwrap();
            let e = t.embed_eval(&[1, 4], &Ctx::eval()).unwrap();
            e.flatten_all().unwrap().to_vec1().unwrap()
        };
        for engine in [Engine::Kernels, Engine::Graph] {
            let (a, b) = (embed(0.0, engine, true), embed(0.5, engine, true));
            let moved = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                moved > 1e-4,
                "{engine:?}: state 0 moved the embedding by {moved}"
            );
            let c = embed(0.0, Engine::Graph, true);
            let off = a
                .iter()
                .zip(&c)
                .map(|(a, c)| (a - c).abs())
                .fold(0f32, f32::max);
            assert!(off < 1e-5, "{engine:?} vs graph: {off}");
        }
    }
}
