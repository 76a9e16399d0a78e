//! The IISAN item tower (spec section 3): intra-modal side networks per modality and an
//! inter-modal one across modalities, reading the frozen towers' cached per-layer [CLS] states
//! ([`crate::cache`]), then the fusion heads into the item embedding.
//!
//! ```text
//! intra:  s_-1 = 0;  x_k = g_k h_S[k] + (1 - g_k) s_k-1;  s_k = SANB_k(x_k)
//! inter:  m_-1 = 0;  m_k = SANB_k(m_k-1 + g_k T^I_k(h^I_S[k]) + (1 - g_k) T^T_k(h^T_S[k]))
//! e = W_c [P_img F_img s^I ; P_text F_text s^T ; P_mm F_mm m] + b_c
//! ```
//! `T_k` is identity for equal widths; for towers of different widths (IISAN-Versa) the wider
//! tower's state passes a per-tap Linear(wider -> narrower) and the inter path runs in the
//! narrower width. `fusion = add` replaces the gated mixes by plain sums. Per-tower tap lists
//! may differ in length: the inter path aligns their last K taps (K = the shorter length); the
//! leading unaligned taps feed only their intra path.

mod fused;

use candle_core::{Device, Tensor};
use candle_nn::{Linear, Module};
use serde::{Deserialize, Serialize};

use super::layers::Ctx;
use super::params::{GROUP_DEFAULT, Init, ParamStore};
use super::san::{Gates, SanBlock};
use super::states::HiddenStates;
use super::{FusedEmbedding, ItemTower, Method};
use crate::efficiency::Profile;
use crate::error::{Error, Result};

/// Which paths the item embedding uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Both intra paths and the inter path (the paper's default).
    IntraInter,
    /// Both intra paths only.
    Intra,
    /// The inter path only.
    Inter,
    /// The text intra path only.
    Text,
    /// The image intra path only.
    Image,
}

impl Modality {
    /// The option's config name.
    pub fn name(self) -> &'static str {
        match self {
            Modality::IntraInter => "intra_inter",
            Modality::Intra => "intra",
            Modality::Inter => "inter",
            Modality::Text => "text",
            Modality::Image => "image",
        }
    }

    fn uses(self) -> (bool, bool, bool) {
        match self {
            Modality::IntraInter => (true, true, true),
            Modality::Intra => (true, true, false),
            Modality::Inter => (false, false, true),
            Modality::Text => (true, false, false),
            Modality::Image => (false, true, false),
        }
    }

    /// Whether the text cache is read.
    pub fn needs_text(self) -> bool {
        let (t, _, m) = self.uses();
        t || m
    }

    /// Whether the image cache is read.
    pub fn needs_image(self) -> bool {
        let (_, i, m) = self.uses();
        i || m
    }
}

/// How a path combines a backbone state with its running state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fusion {
    /// Learned scalar gates (the paper's).
    Gate,
    /// Plain sums.
    Add,
}

pub use super::kernels::Kernels;

/// IISAN options; defaults are the paper's (with MiniLM + DINOv2-S tap lists).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IisanConfig {
    /// Paths used.
    pub modality: Modality,
    /// Gated or additive mixing.
    pub fusion: Fusion,
    /// Hidden-state indices read from the text cache.
    pub text_taps: Vec<usize>,
    /// Hidden-state indices read from the image cache.
    pub image_taps: Vec<usize>,
    /// Drop the first tap of each list (the embedding output).
    pub remove_first: bool,
    /// SAN bottleneck width r.
    pub bottleneck: usize,
    /// Gate temperature T.
    pub gate_temperature: f64,
    /// Fused CPU kernels or autograd.
    pub kernels: Kernels,
}

impl Default for IisanConfig {
    fn default() -> Self {
        IisanConfig {
            modality: Modality::IntraInter,
            fusion: Fusion::Gate,
            text_taps: (0..=6).collect(),
            image_taps: (0..=12).step_by(2).collect(),
            remove_first: false,
            bottleneck: 64,
            gate_temperature: 0.1,
            kernels: Kernels::Fused,
        }
    }
}

impl IisanConfig {
    /// The tap lists after `remove_first`.
    pub fn taps(&self) -> (Vec<usize>, Vec<usize>) {
        let cut = |v: &Vec<usize>| {
            if self.remove_first {
                v.iter().skip(1).copied().collect()
            } else {
                v.clone()
            }
        };
        (cut(&self.text_taps), cut(&self.image_taps))
    }

    /// Check the options.
    pub fn validate(&self) -> Result<()> {
        let (t, i) = self.taps();
        let (ut, ui, _) = self.modality.uses();
        if (ut || self.modality.needs_text()) && t.is_empty()
            || (ui || self.modality.needs_image()) && i.is_empty()
        {
            return Err(Error::Config(
                "model.iisan tap lists must not be empty for the modalities used".into(),
            ));
        }
        if self.bottleneck == 0
            || !self.gate_temperature.is_finite()
            || self.gate_temperature <= 0.0
        {
            return Err(Error::Config(
                "model.iisan.bottleneck and gate_temperature must be positive".into(),
            ));
        }
        Ok(())
    }
}

#[derive(Debug)]
struct IntraPath {
    blocks: Vec<SanBlock>,
    gates: Option<Gates>,
}

impl IntraPath {
    fn new(
        store: &mut ParamStore,
        name: &str,
        dim: usize,
        k: usize,
        c: &IisanConfig,
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
            )?),
            Fusion::Add => None,
        };
        Ok(IntraPath { blocks, gates })
    }

    /// `h` `[n, K, D]` -> last state `[n, D]`.
    fn forward(&self, h: &Tensor) -> Result<Tensor> {
        let g = self.gates.as_ref().map(Gates::values).transpose()?;
        let mut s: Option<Tensor> = None;
        for (k, blk) in self.blocks.iter().enumerate() {
            let hk = h.narrow(1, k, 1)?.squeeze(1)?;
            let x = match (&s, &g) {
                (None, Some(g)) => hk.broadcast_mul(&g.narrow(0, k, 1)?)?,
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
struct InterPath {
    blocks: Vec<SanBlock>,
    gates: Option<Gates>,
    map_text: Option<Vec<Linear>>,
    map_image: Option<Vec<Linear>>,
    width: usize,
}

impl InterPath {
    fn new(
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
    fn forward(&self, ht: &Tensor, hi: &Tensor) -> Result<Tensor> {
        let g = self.gates.as_ref().map(Gates::values).transpose()?;
        let pick = |h: &Tensor, maps: &Option<Vec<Linear>>, k: usize| -> Result<Tensor> {
            let x = h.narrow(1, k, 1)?.squeeze(1)?;
            Ok(match maps {
                Some(m) => m[k].forward(&x)?,
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

/// A head `P(F(x))`: Linear(D, D) then Linear(D, d).
#[derive(Debug, Clone)]
struct Head {
    f: Linear,
    p: Linear,
}

impl Head {
    fn new(store: &mut ParamStore, name: &str, dim: usize, d: usize) -> Result<Self> {
        Ok(Head {
            f: store.linear(
                &format!("{name}.f"),
                dim,
                dim,
                true,
                Init::TorchLinear,
                GROUP_DEFAULT,
            )?,
            p: store.linear(
                &format!("{name}.p"),
                dim,
                d,
                true,
                Init::TorchLinear,
                GROUP_DEFAULT,
            )?,
        })
    }

    fn forward(&self, x: &Tensor) -> Result<Tensor> {
        Ok(self.p.forward(&self.f.forward(x)?)?)
    }
}

/// The IISAN item tower over hidden-state caches.
pub struct IisanTower {
    text: Option<Box<dyn HiddenStates>>,
    image: Option<Box<dyn HiddenStates>>,
    text_taps: Vec<usize>,
    image_taps: Vec<usize>,
    intra_text: Option<(IntraPath, Head)>,
    intra_image: Option<(IntraPath, Head)>,
    inter: Option<(InterPath, Head)>,
    fuse: Linear,
    dim: usize,
    device: Device,
    kernels: Kernels,
    /// Whether the states are computed by the towers in the step, and those towers' size.
    uncached: Option<usize>,
}

/// Which states a path reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PathSource {
    Image,
    Text,
    Inter,
}

/// Owned handles (shared tensors) to one path's parameters, for the fused kernels' backward.
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
    /// Build the tower for `c` over the caches (each required when the modality reads it);
    /// widths and state counts come from the cache headers.
    pub fn new(
        store: &mut ParamStore,
        c: &IisanConfig,
        text: Option<Box<dyn HiddenStates>>,
        image: Option<Box<dyn HiddenStates>>,
        dim: usize,
    ) -> Result<Self> {
        c.validate()?;
        let (ut, ui, um) = c.modality.uses();
        let (tt, it) = c.taps();
        let need = |src: &Option<Box<dyn HiddenStates>>,
                    what: &str,
                    taps: &[usize]|
         -> Result<(usize, usize)> {
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
        };
        let (dt, kt) = if c.modality.needs_text() {
            need(&text, "text", &tt)?
        } else {
            (0, 0)
        };
        let (di, ki) = if c.modality.needs_image() {
            need(&image, "image", &it)?
        } else {
            (0, 0)
        };
        let intra_text = if ut {
            Some((
                IntraPath::new(store, "item.text", dt, kt, c)?,
                Head::new(store, "item.head_text", dt, dim)?,
            ))
        } else {
            None
        };
        let intra_image = if ui {
            Some((
                IntraPath::new(store, "item.image", di, ki, c)?,
                Head::new(store, "item.head_image", di, dim)?,
            ))
        } else {
            None
        };
        let inter = if um {
            let k = kt.min(ki);
            let p = InterPath::new(store, dt, di, k, c)?;
            let w = p.width;
            Some((p, Head::new(store, "item.head_inter", w, dim)?))
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
            text,
            image,
            text_taps: tt,
            image_taps: it,
            intra_text,
            intra_image,
            inter,
            fuse,
            dim,
            kernels: c.kernels,
            uncached: None,
        })
    }
}

impl IisanTower {
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

    fn embed_fused(&self, ids: &[u32], prof: &mut Profile) -> Result<Option<FusedEmbedding>> {
        if !self.fused() {
            return Ok(None);
        }
        self.fused_train(ids, prof).map(Some)
    }

    fn embed_eval(&self, ids: &[u32], ctx: &Ctx) -> Result<Tensor> {
        if self.fused() {
            self.fused_embed(ids)
        } else {
            Ok(self.embed(ids, ctx)?.detach())
        }
    }

    fn embed(&self, ids: &[u32], _ctx: &Ctx) -> Result<Tensor> {
        let ht = match &self.text {
            Some(c) if !self.text_taps.is_empty() => {
                Some(c.gather(ids, &self.text_taps, &self.device)?)
            }
            _ => None,
        };
        let hi = match &self.image {
            Some(c) if !self.image_taps.is_empty() => {
                Some(c.gather(ids, &self.image_taps, &self.device)?)
            }
            _ => None,
        };
        let mut parts = Vec::with_capacity(3);
        if let (Some((p, head)), Some(h)) = (&self.intra_image, &hi) {
            parts.push(head.forward(&p.forward(h)?)?);
        }
        if let (Some((p, head)), Some(h)) = (&self.intra_text, &ht) {
            parts.push(head.forward(&p.forward(h)?)?);
        }
        if let (Some((p, head)), Some(t), Some(i)) = (&self.inter, &ht, &hi) {
            let k = p.blocks.len();
            let t = t.narrow(1, t.dim(1)? - k, k)?;
            let i = i.narrow(1, i.dim(1)? - k, k)?;
            parts.push(head.forward(&p.forward(&t, &i)?)?);
        }
        let x = if parts.len() == 1 {
            parts.pop().expect("one part")
        } else {
            Tensor::cat(&parts, 1)?
        };
        Ok(self.fuse.forward(&x)?)
    }

    fn device(&self) -> Device {
        self.device.clone()
    }
}
