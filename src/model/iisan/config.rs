//! IISAN's options (docs/MODEL.md section 3): which paths, gated or additive mixing, the
//! hidden-state taps of each tower, the SAN bottleneck and the gate temperature.

use serde::{Deserialize, Serialize};

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

    pub(crate) fn uses(self) -> (bool, bool, bool) {
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
        }
    }
}

impl IisanConfig {
    /// The taps each path reads: the configured lists with `remove_first` applied (the one
    /// place it is applied).
    pub fn tap_plan(&self) -> TapPlan {
        let cut = |v: &Vec<usize>| {
            if self.remove_first {
                v.iter().skip(1).copied().collect()
            } else {
                v.clone()
            }
        };
        TapPlan {
            text: cut(&self.text_taps),
            image: cut(&self.image_taps),
        }
    }

    /// Check the options.
    pub fn validate(&self) -> Result<()> {
        let taps = self.tap_plan();
        let (ut, ui, _) = self.modality.uses();
        if (ut || self.modality.needs_text()) && taps.text.is_empty()
            || (ui || self.modality.needs_image()) && taps.image.is_empty()
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

/// The hidden-state taps IISAN reads, `remove_first` applied. Each intra path reads its whole
/// list; the inter path aligns the last [`TapPlan::inter`] taps of both lists (K = the shorter
/// length), so the leading unaligned taps of the longer list feed only its intra path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapPlan {
    /// Text hidden-state indices.
    pub text: Vec<usize>,
    /// Image hidden-state indices.
    pub image: Vec<usize>,
}

impl TapPlan {
    /// K: the taps (and SAN blocks) of the inter path.
    pub fn inter(&self) -> usize {
        self.text.len().min(self.image.len())
    }

    /// Where the inter path's K taps start in the text and the image list.
    pub fn inter_start(&self) -> (usize, usize) {
        let k = self.inter();
        (self.text.len() - k, self.image.len() - k)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tap_plan_drops_the_first_tap_once_and_aligns_the_last_k() {
        // text [0..=6] (7 taps), image [0,2,..,12] minus the first with remove_first:
        // text [1..=6] (6), image [2,4,..,12] (6) -> K = 6, both start at 0.
        let c = IisanConfig {
            remove_first: true,
            ..Default::default()
        };
        let p = c.tap_plan();
        assert_eq!(p.text, [1, 2, 3, 4, 5, 6]);
        assert_eq!(p.image, [2, 4, 6, 8, 10, 12]);
        assert_eq!((p.inter(), p.inter_start()), (6, (0, 0)));
        // text 4 taps, image 7: K = 4, the image path's inter taps start at its 4th (7 - 4 = 3).
        let c = IisanConfig {
            text_taps: vec![3, 4, 5, 6],
            ..Default::default()
        };
        let p = c.tap_plan();
        assert_eq!((p.inter(), p.inter_start()), (4, (0, 3)));
    }
}
