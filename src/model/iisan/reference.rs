//! The IISAN side network on candle ops, differentiated by autograd: the reference the CPU
//! kernels ([`super::kernel`]) are tested against, and the path for other devices
//! (`train.kernels = "autograd"`). Equations: docs/MODEL.md section 3.

use candle_core::Tensor;
use candle_nn::{Linear, Module};

use super::config::{Fusion, IisanConfig};
use super::san::{Gates, SanBlock};
use crate::error::{Error, Result};
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
        Ok(self.p.forward(&self.f.forward(x)?)?)
    }
}
