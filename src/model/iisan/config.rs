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
